//! The methods: `org.varlink.service` (GetInfo, GetInterfaceDescription), `io.systemd.sysext`
//! (List, Merge, Unmerge, Refresh) and `io.systemd.SysUpdate.Notify` (OnCompletedUpdate), with
//! systemd 262's parameters, replies and errors (`src/sysext/sysext.c`, `vl_method_*`).
//!
//! Merge, Unmerge and Refresh run extmerge's own pipeline for the class asked for (confext and
//! sysext each under the run lock), so they are atomic and skip unchanged refreshes exactly as
//! the command line verbs are. systemd asks polkit (`io.systemd.sysext.manage`) before acting for
//! a caller that is not root; extmerge has no polkit client and refuses such callers with
//! `org.varlink.service.PermissionDenied`. List is open to everyone (polkit's `read` is `yes`).

use super::params::{self, Kind};
use super::wire::{Call, Reply};
use crate::class::ImageClass;
use crate::merge::{self, unmerge};
use crate::settings::{self, ClassSettings, CliOptions};
use anyhow::Result;
use serde_json::{Map, Value};

const INVALID_PARAMETER: &str = "org.varlink.service.InvalidParameter";
const PERMISSION_DENIED: &str = "org.varlink.service.PermissionDenied";
const EXPECTED_MORE: &str = "org.varlink.service.ExpectedMore";
const AUTH: (&str, Kind) = ("allowInteractiveAuthentication", Kind::Bool);

/// What a call is answered with.
pub enum Answer {
    /// Replies to send (the last one final), unless the call was `oneway`.
    Replies(Vec<Reply>),
    /// No reply at all (a protocol upgrade no method here supports: sd-varlink sends nothing).
    Silent,
}

/// The service's state: the command line it was started with, and the default class.
pub struct Service {
    /// The options of the command line (`--root`, `--force`, `--mutable`, …), the defaults of
    /// every call.
    pub opts: CliOptions,
    /// The class a call without `class` acts on (systemd-sysext: sysext; systemd-confext:
    /// confext).
    pub default_class: ImageClass,
    /// Environment lookup (injected by tests).
    pub env: fn(&str) -> Option<String>,
}

fn invalid(name: &str) -> Answer {
    Answer::Replies(vec![Reply::error_with(
        INVALID_PARAMETER,
        "parameter",
        name,
    )])
}

/// systemd's `io.systemd.System` error for a failure (`errno` as sd-varlink reports it).
fn system_error(errno: i32, name: &str) -> Reply {
    let mut p = Map::new();
    p.insert("origin".into(), "linux".into());
    p.insert("errno".into(), errno.into());
    p.insert("errnoName".into(), name.into());
    Reply::Error {
        name: "io.systemd.System".into(),
        parameters: Some(p),
    }
}

/// A failed merge, refresh or unmerge: systemd's helper process fails, which it reports as
/// `EPROTO`.
fn failed(what: &str, e: anyhow::Error) -> Answer {
    tracing::error!("{what} failed: {e:#}");
    Answer::Replies(vec![system_error(71, "EPROTO")])
}

/// Run `f` for `classes` (with `--require` names assigned) under the run lock, as the command
/// line verbs do; `{}` when every class succeeded.
fn locked(
    what: &str,
    classes: Result<Vec<ClassSettings>>,
    f: fn(&ClassSettings) -> Result<()>,
) -> Answer {
    let verb = what.to_lowercase();
    match classes
        .and_then(|c| merge::assign_required(&c))
        .and_then(|c| crate::verbs::for_each_class_locked(&c, &verb, f))
    {
        Ok((0, _)) => one(Reply::empty()),
        Ok(_) => failed(what, anyhow::anyhow!("see the lines above")),
        Err(e) => failed(what, e),
    }
}

fn one(reply: Reply) -> Answer {
    Answer::Replies(vec![reply])
}

impl Service {
    /// Answer one call from a peer running as `peer_uid`.
    pub fn handle(&self, call: &Call, peer_uid: u32) -> Answer {
        if call.upgrade {
            return Answer::Silent;
        }
        let p = &call.parameters;
        match call.method.as_str() {
            "org.varlink.service.GetInfo" => match params::check(p, &[], &[]) {
                Ok(()) => one(Reply::params(super::idl::info())),
                Err(e) => invalid(&e.0),
            },
            "org.varlink.service.GetInterfaceDescription" => self.describe(p),
            "io.systemd.sysext.List" => self.list(call),
            "io.systemd.sysext.Merge"
            | "io.systemd.sysext.Refresh"
            | "io.systemd.sysext.Unmerge" => self.manage(call, peer_uid),
            "io.systemd.SysUpdate.Notify.OnCompletedUpdate" => self.completed_update(p, peer_uid),
            m => one(Reply::error_with(
                "org.varlink.service.MethodNotFound",
                "method",
                m,
            )),
        }
    }

    fn describe(&self, p: &Map<String, Value>) -> Answer {
        if let Err(e) = params::check(p, &[("interface", Kind::Str)], &["interface"]) {
            return invalid(&e.0);
        }
        let name = params::str_of(p, "interface").unwrap_or_default();
        match super::idl::description(name) {
            Some(text) => {
                let mut o = Map::new();
                o.insert("description".into(), text.into());
                one(Reply::params(o))
            }
            None => one(Reply::error_with(
                "org.varlink.service.InterfaceNotFound",
                "interface",
                name,
            )),
        }
    }

    /// Settings for `class` with the call's overrides applied.
    fn settings(&self, class: ImageClass, p: &Map<String, Value>) -> Result<ClassSettings> {
        let mut opts = self.opts.clone();
        if let Some(b) = params::bool_of(p, "force") {
            opts.force = b;
        }
        if let Some(b) = params::bool_of(p, "noReload") {
            opts.no_reload = b;
        }
        if let Some(b) = params::bool_of(p, "noexec") {
            opts.noexec = Some(b);
        }
        if let Some(b) = params::bool_of(p, "alwaysRefresh") {
            opts.always_refresh = b;
        }
        let env = self.env;
        settings::resolve(&opts, class, &env)
    }

    fn list(&self, call: &Call) -> Answer {
        let p = &call.parameters;
        if let Err(e) = params::check(p, &[("class", Kind::Class), AUTH], &[]) {
            return invalid(&e.0);
        }
        if !call.more {
            return one(Reply::error(EXPECTED_MORE));
        }
        let class = params::class_of(p, self.default_class);
        let items = match self
            .settings(class, p)
            .and_then(|s| super::images::list(&s))
        {
            Ok(items) => items,
            Err(e) => {
                tracing::error!("Failed to discover images: {e:#}");
                return one(system_error(5, "EIO"));
            }
        };
        if items.is_empty() {
            return one(Reply::error("io.systemd.sysext.NoImagesFound"));
        }
        let n = items.len();
        Answer::Replies(
            items
                .into_iter()
                .enumerate()
                .map(|(i, o)| Reply::Ok {
                    parameters: Some(o),
                    continues: i + 1 < n,
                })
                .collect(),
        )
    }

    fn manage(&self, call: &Call, peer_uid: u32) -> Answer {
        let p = &call.parameters;
        let verb = call.method.rsplit('.').next().unwrap_or_default();
        let fields: &[(&str, Kind)] = match verb {
            "Merge" => &[
                ("class", Kind::Class),
                ("force", Kind::Bool),
                ("noReload", Kind::Bool),
                ("noexec", Kind::Bool),
                AUTH,
            ],
            "Unmerge" => &[("class", Kind::Class), ("noReload", Kind::Bool), AUTH],
            _ => &[
                ("class", Kind::Class),
                ("force", Kind::Bool),
                ("noReload", Kind::Bool),
                ("alwaysRefresh", Kind::Bool),
                ("noexec", Kind::Bool),
                AUTH,
            ],
        };
        if let Err(e) = params::check(p, fields, &[]) {
            return invalid(&e.0);
        }
        if peer_uid != 0 {
            return one(Reply::error(PERMISSION_DENIED));
        }
        let class = params::class_of(p, self.default_class);
        let s = match self.settings(class, p) {
            Ok(s) => s,
            Err(e) => return failed(verb, e),
        };
        match verb {
            "Merge" => self.merge(s),
            "Unmerge" => locked(verb, Ok(vec![s]), |s| unmerge::unmerge_class(s).map(|_| ())),
            _ => locked(verb, Ok(vec![s]), |s| merge::refresh_class(s).map(|_| ())),
        }
    }

    /// Merge refuses a merged hierarchy with `io.systemd.sysext.AlreadyMerged{hierarchy}`.
    fn merge(&self, s: ClassSettings) -> Answer {
        let merged =
            crate::kernel::root::Root::open(&s.root).and_then(|root| unmerge::current(&root, &s));
        match merged {
            Ok(m) if !m.is_empty() => {
                return one(Reply::error_with(
                    "io.systemd.sysext.AlreadyMerged",
                    "hierarchy",
                    &m[0].hierarchy.to_string_lossy(),
                ))
            }
            Ok(_) => {}
            Err(e) => return failed("Merge", e),
        }
        locked("Merge", Ok(vec![s]), |s| merge::merge_class(s).map(|_| ()))
    }

    /// After `systemd-sysupdate` installed an update: refresh both classes (confext first), as
    /// systemd-sysext does; only root may ask.
    fn completed_update(&self, p: &Map<String, Value>, peer_uid: u32) -> Answer {
        let fields = [
            ("component", Kind::Str),
            ("version", Kind::Str),
            ("resources", Kind::Resources),
        ];
        if let Err(e) = params::check(p, &fields, &[]) {
            return invalid(&e.0);
        }
        if peer_uid != 0 {
            return one(Reply::error(PERMISSION_DENIED));
        }
        let none = Map::new();
        let classes: Result<Vec<ClassSettings>> = ImageClass::MERGE_ORDER
            .iter()
            .map(|c| self.settings(*c, &none))
            .collect();
        locked("OnCompletedUpdate", classes, |s| {
            merge::refresh_class(s).map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::varlink::wire::parse_call;

    fn service(root: &std::path::Path) -> Service {
        Service {
            opts: CliOptions {
                root: Some(root.to_path_buf()),
                ..Default::default()
            },
            default_class: ImageClass::Sysext,
            env: |_| None,
        }
    }

    fn answer(svc: &Service, msg: &str, uid: u32) -> Vec<Vec<u8>> {
        match svc.handle(&parse_call(msg.as_bytes()).unwrap(), uid) {
            Answer::Replies(r) => r.iter().map(Reply::encode).collect(),
            Answer::Silent => Vec::new(),
        }
    }

    #[test]
    fn an_unprivileged_caller_may_list_but_not_change() {
        let t = tempfile::tempdir().unwrap();
        let svc = service(t.path());
        let denied = b"{\"error\":\"org.varlink.service.PermissionDenied\"}\0".to_vec();
        for m in [
            r#"{"method":"io.systemd.sysext.Merge","parameters":{"noReload":true}}"#,
            r#"{"method":"io.systemd.sysext.Refresh"}"#,
            r#"{"method":"io.systemd.sysext.Unmerge","parameters":{"class":"confext"}}"#,
            r#"{"method":"io.systemd.SysUpdate.Notify.OnCompletedUpdate","parameters":{}}"#,
        ] {
            assert_eq!(answer(&svc, m, 1000), vec![denied.clone()], "{m}");
        }
        // Parameters are checked first, as sd_varlink_dispatch() runs before polkit.
        assert_eq!(
            answer(&svc, r#"{"method":"io.systemd.sysext.Merge","parameters":{"x":1}}"#, 1000),
            vec![b"{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"x\"}}\0".to_vec()]
        );
        // List is everyone's: an empty root has no images.
        assert_eq!(
            answer(
                &svc,
                r#"{"method":"io.systemd.sysext.List","more":true}"#,
                1000
            ),
            vec![b"{\"error\":\"io.systemd.sysext.NoImagesFound\"}\0".to_vec()]
        );
    }

    #[test]
    fn service_methods_answer_as_sd_varlink() {
        let t = tempfile::tempdir().unwrap();
        let svc = service(t.path());
        assert_eq!(
            answer(&svc, r#"{"method":"io.systemd.sysext.List"}"#, 0),
            vec![b"{\"error\":\"org.varlink.service.ExpectedMore\"}\0".to_vec()]
        );
        assert_eq!(
            answer(&svc, r#"{"method":"io.nope.X"}"#, 0),
            vec![b"{\"error\":\"org.varlink.service.MethodNotFound\",\"parameters\":{\"method\":\"io.nope.X\"}}\0".to_vec()]
        );
        assert!(answer(
            &svc,
            r#"{"method":"io.systemd.sysext.List","upgrade":true}"#,
            0
        )
        .is_empty());
        let info = answer(&svc, r#"{"method":"org.varlink.service.GetInfo"}"#, 0);
        assert!(String::from_utf8_lossy(&info[0]).contains(
            r#""interfaces":["io.systemd","io.systemd.SysUpdate.Notify","io.systemd.sysext","org.varlink.service"]"#
        ));
        let desc = answer(
            &svc,
            r#"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"nope"}}"#,
            0,
        );
        assert_eq!(
            desc,
            vec![b"{\"error\":\"org.varlink.service.InterfaceNotFound\",\"parameters\":{\"interface\":\"nope\"}}\0".to_vec()]
        );
    }
}
