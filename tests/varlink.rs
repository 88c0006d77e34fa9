//! extmerge's Varlink service against systemd 262's (`systemd-sysext` in Varlink mode), both
//! driven by the chroot's `varlinkctl` on the same tree: `varlinkctl introspect` prints the same,
//! and every call of `io.systemd.sysext` and `io.systemd.SysUpdate.Notify` gets the same reply,
//! error and exit status, with the same effect on `/usr` and `/etc`. Each implementation is
//! reached the ways systemd's is: `varlinkctl call exec:PATH` (a connection on fd 3), a socket
//! unit's `Accept=yes` connection (`systemd-socket-activate`; a listening socket is refused by
//! both), and `$SYSTEMD_VARLINK_LISTEN`.
//!
//! The chroot (Debian unstable, `make chroot`) is used as `/` for both, in a private mount
//! namespace: extmerge's build is copied to its `/tmp/bin` under the names `systemd-sysext` and
//! `systemd-confext`, which set the default class as the program name does for systemd.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SD: &str = "/usr/bin/systemd-sysext";
const OURS: &str = "/tmp/bin/systemd-sysext";
const OURS_CONFEXT: &str = "/tmp/bin/systemd-confext";

struct Chroot {
    dir: PathBuf,
    leak: LeakCheck,
}

impl Chroot {
    /// The chroot as a shared mount of its own (systemd's merge child must propagate back)
    /// with fresh /run and /tmp, extmerge in /tmp/bin, and the extensions of the scenario.
    fn new() -> Chroot {
        enter_private_mount_ns();
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/chroot/unstable");
        assert!(
            p.join(".extmerge-ready").exists(),
            "the Debian unstable chroot is missing: run `make chroot` (make test does it)"
        );
        let dir = std::fs::canonicalize(&p).unwrap();
        let leak = LeakCheck::new(&dir.join("tmp"));
        let c = dir.display();
        run(Command::new("sh").args([
            "-euc",
            &format!(
                "mount --bind {c} {c}; mount --make-rshared {c}; mount -t proc proc {c}/proc; \
                 mount --rbind /sys {c}/sys; mount --rbind /dev {c}/dev; \
                 mount -t tmpfs -o mode=755 tmpfs {c}/run; mount -t tmpfs tmpfs {c}/tmp; \
                 mkdir -p {c}/tmp/bin; cp {bin} {c}/tmp/bin/extmerge; \
                 ln -s extmerge {c}/tmp/bin/systemd-sysext; ln -s extmerge {c}/tmp/bin/systemd-confext",
                bin = env!("CARGO_BIN_EXE_extmerge")
            ),
        ]));
        let ch = Chroot { dir, leak };
        for (at, name) in [("run/extensions", "app"), ("run/extensions", "zz-tools")] {
            write_files(
                &ch.dir.join(at).join(name),
                &[
                    (
                        &format!("usr/lib/extension-release.d/extension-release.{name}"),
                        "ID=_any\n",
                    ),
                    (&format!("usr/share/vl-test/{name}"), "sysext\n"),
                ],
            );
        }
        write_files(
            &ch.dir.join("run/confexts/site"),
            &[
                (
                    "etc/extension-release.d/extension-release.site",
                    "ID=_any\n",
                ),
                ("etc/vl-test/site", "confext\n"),
            ],
        );
        ch
    }

    /// Run `args` in the chroot (no environment but PATH and `env`).
    fn sh(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new("chroot");
        c.arg(&self.dir)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/usr/sbin")
            .env("SYSTEMD_LOG_LEVEL", "info");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// `varlinkctl ARGS` against the service at `address`: (exit code, stdout, stderr).
    fn varlinkctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.sh(&[&["varlinkctl"], args].concat(), &[]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Start `args` in the chroot and wait until the socket `sock` (a path in it) exists.
    fn spawn_listening(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        sock: &str,
    ) -> std::process::Child {
        let child = Command::new("chroot")
            .arg(&self.dir)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/usr/sbin")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let path = self.dir.join(sock.trim_start_matches('/'));
        assert!(
            wait_until(std::time::Duration::from_secs(20), || path.exists()),
            "{sock}"
        );
        child
    }

    fn merged(&self, file: &str) -> bool {
        self.dir.join(file).exists()
    }

    fn finish(self) {
        // Nothing may stay merged: unmerge with systemd (it recognises either's merge).
        for class in ["sysext", "confext"] {
            let out = self.sh(
                &[
                    &format!("/usr/bin/systemd-{class}"),
                    "unmerge",
                    "--no-reload",
                ],
                &[],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let c = self.dir.display();
        run(Command::new("sh").args(["-euc", &format!("umount -R -l {c}")]));
        self.leak.assert_clean();
    }
}

/// A varlinkctl run: exit status, stdout lines, varlinkctl's own messages.
type Answer = (i32, Vec<String>, String);

/// `(exit, stdout lines sorted, varlinkctl's own messages)`: List's replies come in hash order
/// from systemd; the service's log lines (its stderr is varlinkctl's) are left out.
fn sorted(r: (i32, String, String)) -> Answer {
    let mut lines: Vec<String> = r.1.lines().map(str::to_string).collect();
    lines.sort();
    let own: Vec<&str> =
        r.2.lines()
            .filter(|l| l.starts_with("Method call"))
            .collect();
    (r.0, lines, own.join("\n"))
}

/// The calls both implementations must answer alike, with the files each leaves in place.
const CALLS: &[(&[&str], &str, &[&str])] = &[
    (&["--more"], "io.systemd.sysext.List", &[]),
    (&[], "io.systemd.sysext.List", &[]),
    (&["--more"], "io.systemd.sysext.List {\"class\":\"confext\"}", &[]),
    (&["--more"], "io.systemd.sysext.List {\"class\":\"bogus\"}", &[]),
    (&["--more"], "io.systemd.sysext.List {\"class\":null}", &[]),
    (&["--more"], "io.systemd.sysext.List {\"foo\":1}", &[]),
    (&[], "io.systemd.sysext.Nope", &[]),
    (
        &[],
        "io.systemd.sysext.Merge {\"noReload\":true}",
        &["usr/share/vl-test/app", "usr/share/vl-test/zz-tools"],
    ),
    (
        &[],
        "io.systemd.sysext.Merge {\"noReload\":true,\"allowInteractiveAuthentication\":false}",
        &["usr/share/vl-test/app", "usr/share/vl-test/zz-tools"],
    ),
    (
        &[],
        "io.systemd.sysext.Refresh {\"noReload\":true,\"alwaysRefresh\":true}",
        &["usr/share/vl-test/app", "usr/share/vl-test/zz-tools"],
    ),
    (
        &[],
        "io.systemd.sysext.Refresh {\"force\":null}",
        &["usr/share/vl-test/app", "usr/share/vl-test/zz-tools"],
    ),
    (&[], "io.systemd.sysext.Unmerge {\"noReload\":true}", &[]),
    (&[], "io.systemd.sysext.Unmerge {\"noReload\":\"x\"}", &[]),
    (
        &[],
        "io.systemd.sysext.Merge {\"class\":\"confext\",\"noReload\":true}",
        &["etc/vl-test/site"],
    ),
    (&[], "io.systemd.sysext.Unmerge {\"class\":\"confext\",\"noReload\":true}", &[]),
    (
        &[],
        "io.systemd.SysUpdate.Notify.OnCompletedUpdate {\"component\":\"os\",\"resources\":[{\"transfer\":\"a\"}]}",
        ALL_FILES,
    ),
    (&[], "io.systemd.SysUpdate.Notify.OnCompletedUpdate {\"component\":5}", ALL_FILES),
    (&[], "io.systemd.SysUpdate.Notify.OnCompletedUpdate {\"foo\":1}", ALL_FILES),
];

/// Every merged file the scenario knows.
const ALL_FILES: &[&str] = &[
    "usr/share/vl-test/app",
    "usr/share/vl-test/zz-tools",
    "etc/vl-test/site",
];

/// Run the calls against `exe` (with `exec:`), returning each answer and what was merged.
fn answers(ch: &Chroot, exe: &str) -> Vec<(Answer, Vec<&'static str>)> {
    let mut out = Vec::new();
    for (flags, call, _) in CALLS {
        let (method, params) = call.split_once(' ').unwrap_or((call, "{}"));
        let addr = format!("exec:{exe}");
        let args: Vec<&str> = [&["call"], *flags, &[addr.as_str(), method, params]].concat();
        let r = sorted(ch.varlinkctl(&args));
        let merged: Vec<&str> = ALL_FILES.iter().copied().filter(|f| ch.merged(f)).collect();
        out.push((r, merged));
    }
    // Leave nothing merged for the next implementation.
    for class in ["sysext", "confext"] {
        let p = format!("{{\"class\":\"{class}\",\"noReload\":true}}");
        let r = ch.varlinkctl(&[
            "call",
            &format!("exec:{exe}"),
            "io.systemd.sysext.Unmerge",
            &p,
        ]);
        assert_eq!(r.0, 0, "{exe}: unmerge {class}: {r:?}");
    }
    out
}

#[test]
fn calls_get_the_replies_and_effects_of_systemd_262() {
    let ch = Chroot::new();
    // A raw image only List sees (merging it would fail systemd's whole merge: a deliberate
    // difference tested elsewhere); removed before the merges.
    std::fs::write(ch.dir.join("run/extensions/img.raw"), b"not an image").unwrap();
    let list = |exe: &str| {
        sorted(ch.varlinkctl(&[
            "call",
            "--more",
            &format!("exec:{exe}"),
            "io.systemd.sysext.List",
            "{}",
        ]))
    };
    let sd_list = list(SD);
    assert_eq!(sd_list.0, 0, "{sd_list:?}");
    assert_eq!(sd_list.1.len(), 3, "{sd_list:?}");
    assert!(
        sd_list.1.iter().any(|l| l.contains("\"Usage\":4096")),
        "{sd_list:?}"
    );
    assert_eq!(list(OURS), sd_list);
    std::fs::remove_file(ch.dir.join("run/extensions/img.raw")).unwrap();

    let sd = answers(&ch, SD);
    let ours = answers(&ch, OURS);
    for (i, ((call, s), o)) in CALLS.iter().zip(&sd).zip(&ours).enumerate() {
        assert_eq!(
            s.1, call.2,
            "call {i} {}: systemd left merged {:?}",
            call.1, s.1
        );
        assert_eq!(
            o, s,
            "call {i} {}: extmerge (left) and systemd (right)",
            call.1
        );
    }
    // The replies seen are the ones the interface defines.
    assert_eq!(
        (sd[7].0 .0, sd[7].0 .1.clone()),
        (0, vec!["{}".to_string()])
    );
    assert!(
        sd[8].0 .1.join("").contains("\"hierarchy\":\"/usr\""),
        "{:?}",
        sd[8]
    );
    assert!(sd[1].0 .2.contains("'more' flag"), "{:?}", sd[1]);
    ch.finish();
}

#[test]
fn introspection_and_the_default_class_match() {
    let ch = Chroot::new();
    let sd = ch.varlinkctl(&["introspect", &format!("exec:{SD}")]);
    assert_eq!(sd.0, 0, "{sd:?}");
    assert!(sd.1.contains("interface io.systemd.sysext"), "{}", sd.1);
    assert_eq!(ch.varlinkctl(&["introspect", &format!("exec:{OURS}")]), sd);
    for iface in [
        "io.systemd.sysext",
        "io.systemd.SysUpdate.Notify",
        "org.varlink.service",
        "nope",
    ] {
        let a = |exe: &str| ch.varlinkctl(&["introspect", &format!("exec:{exe}"), iface]);
        assert_eq!(a(OURS), a(SD), "{iface}");
    }
    // The interfaces GetInfo lists (vendor, product and version are each implementation's own).
    let interfaces = |exe: &str| {
        let (code, out, _) = ch.varlinkctl(&["info", &format!("exec:{exe}")]);
        assert_eq!(code, 0);
        out.split_once("Interfaces:")
            .map(|(_, i)| i.to_string())
            .unwrap_or_default()
    };
    assert_eq!(interfaces(OURS), interfaces(SD));
    // Invoked as systemd-confext, List defaults to confexts (systemd: a link to systemd-sysext).
    let confexts = |exe: &str| {
        ch.varlinkctl(&[
            "call",
            "--more",
            &format!("exec:{exe}"),
            "io.systemd.sysext.List",
            "{}",
        ])
    };
    let sd_c = confexts("/usr/bin/systemd-confext");
    assert!(sd_c.1.contains("\"Name\":\"site\""), "{sd_c:?}");
    assert_eq!(confexts(OURS_CONFEXT), sd_c);
    ch.finish();
}

/// A socket unit's connection (`Accept=yes`) is served, a listening socket refused, and
/// `$SYSTEMD_VARLINK_LISTEN` served until its connection ends, as systemd-sysext does.
#[test]
fn socket_activation_and_listen_variable_serve_and_exit() {
    let ch = Chroot::new();
    for (how, exe) in [("sd", SD), ("ours", OURS)] {
        for accept in [true, false] {
            let sock = format!("/run/{how}-{accept}.sock");
            let mut args = vec!["systemd-socket-activate", "-l", &sock, "--fdname=varlink"];
            if accept {
                args.push("--accept");
            }
            args.push(exe);
            let mut child = ch.spawn_listening(&args, &[], &sock);
            let r = ch.varlinkctl(&[
                "call",
                "--more",
                &format!("unix:{sock}"),
                "io.systemd.sysext.List",
                "{}",
            ]);
            if accept {
                assert_eq!(r.0, 0, "{how}: {r:?}");
                assert!(r.1.contains("\"Name\":\"zz-tools\""), "{how}: {r:?}");
            } else {
                // A listening socket is refused (SD_VARLINK_ALLOW_ACCEPT only): the service
                // exits and the connection is reset.
                assert_eq!(r.0, 1, "{how} (listening socket): {r:?}");
                assert!(r.2.contains("Connection reset by peer"), "{how}: {r:?}");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // $SYSTEMD_VARLINK_LISTEN=PATH: one connection, then the service exits by itself.
        let sock = format!("/run/{how}-listen.sock");
        let mut child = ch.spawn_listening(&[exe], &[("SYSTEMD_VARLINK_LISTEN", &sock)], &sock);
        let r = ch.varlinkctl(&[
            "call",
            &format!("unix:{sock}"),
            "io.systemd.sysext.Unmerge",
            "{\"noReload\":true}",
        ]);
        assert_eq!((r.0, r.1.trim()), (0, "{}"), "{how}: {r:?}");
        let exited = wait_until(std::time::Duration::from_secs(20), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
        }
        assert!(
            exited,
            "{how}: the service did not exit after its connection ended"
        );
    }
    ch.finish();
}
