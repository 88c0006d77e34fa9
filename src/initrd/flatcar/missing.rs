//! Missing images: what the selection needs but the root lacks, reported machine-readably and
//! judged by the missing-image policy.
//!
//! Flatcar's `initrd-setup-root-after-ignition` downloads a missing official or OEM image and
//! fails the boot when it cannot (`exit 1 # Fail the boot`). extmerge has no network: it reports
//! each missing image with where it must be placed ([`MissingImage`], `flatcar-select --json`),
//! so a distribution's downloader can place it before the selection runs, and the policy
//! ([`MissingPolicy`]) says whether a boot that still lacks one goes on (`warn`) or fails
//! (`fail`, Flatcar's behaviour).

use super::{join_paths, Action};
use crate::initrd::cmdline::{self, Param};
use serde::Serialize;
use std::path::PathBuf;

/// Kernel command line key of the policy (`rd.extmerge.missing=` in the initrd wins over it).
pub const CMDLINE_MISSING: &str = "extmerge.missing";

/// Whether a missing image is one of Flatcar's official extensions or the OEM's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// `flatcar-NAME`, enabled in `enabled-sysext.conf`, stored in `/etc/flatcar/sysext/`.
    Official,
    /// `oem-ID`, the OEM partition's sysext (`/oem/sysext/`, fallback `/etc/flatcar/oem-sysext/`).
    Oem,
}

impl ImageKind {
    fn describe(self) -> &'static str {
        match self {
            ImageKind::Official => "official",
            ImageKind::Oem => "OEM",
        }
    }
}

/// What a selection that still lacks an image does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MissingPolicy {
    /// Log one warning per missing image and go on without it (the boot continues).
    #[default]
    Warn,
    /// Log one error per missing image and fail (exit 1: the initrd unit fails the boot), as
    /// Flatcar does when its download fails.
    Fail,
}

impl MissingPolicy {
    /// The policy as written on the command lines.
    pub fn name(self) -> &'static str {
        match self {
            MissingPolicy::Warn => "warn",
            MissingPolicy::Fail => "fail",
        }
    }

    fn parse(value: &str) -> Option<MissingPolicy> {
        match value {
            "warn" => Some(MissingPolicy::Warn),
            "fail" => Some(MissingPolicy::Fail),
            _ => None,
        }
    }
}

/// The policy in force and where it came from, for the log lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyChoice {
    /// The policy.
    pub policy: MissingPolicy,
    /// `rd.extmerge.missing=fail`, `--missing=warn` or `the default`.
    pub origin: String,
}

/// The policy: the kernel command line (`rd.extmerge.missing=` in the initrd, else
/// `extmerge.missing=`), then `--missing=`, then `warn`.
///
/// The kernel command line wins because it is the operator's per-boot word, while `--missing=`
/// is fixed in a unit inside the initrd image: a distribution may ship `--missing=fail`, and an
/// operator can still boot past a missing image with `rd.extmerge.missing=warn`. An unusable
/// value is logged and ignored.
pub fn resolve_policy(
    cli: Option<MissingPolicy>,
    params: &[Param],
    in_initrd: bool,
) -> PolicyChoice {
    if let Some(value) = cmdline::get(params, CMDLINE_MISSING, in_initrd) {
        let rd_key = format!("rd.{CMDLINE_MISSING}");
        let key = if in_initrd && cmdline::get(params, &rd_key, false).is_some() {
            rd_key.as_str()
        } else {
            CMDLINE_MISSING
        };
        match value.and_then(MissingPolicy::parse) {
            Some(policy) => {
                let origin = format!("{key}={}", policy.name());
                return PolicyChoice { policy, origin };
            }
            None => tracing::warn!(
                "Ignoring the kernel command line option {key}={}: the missing-image policy is \
                 'warn' or 'fail'.",
                value.unwrap_or_default()
            ),
        }
    }
    match cli {
        Some(policy) => PolicyChoice {
            policy,
            origin: format!("--missing={}", policy.name()),
        },
        None => PolicyChoice {
            policy: MissingPolicy::default(),
            origin: "the default".to_owned(),
        },
    }
}

/// One missing image, as `flatcar-select --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissingImage {
    /// The extension's name: `flatcar-NAME` or `oem-ID` (its link is `/etc/extensions/NAME.raw`).
    pub name: String,
    /// The OS version the image must be built for (os-release `VERSION=`, else `VERSION_ID=`).
    pub version: String,
    /// Where the image must be placed, inside the root (e.g. below `/sysroot` in the initrd).
    pub path: PathBuf,
    /// Official (`enabled-sysext.conf`) or OEM.
    pub kind: ImageKind,
}

/// One [`Action::Missing`] of a plan, borrowed.
struct Lacking<'a> {
    name: &'a str,
    kind: ImageKind,
    expected: &'a [PathBuf],
    url: Option<&'a str>,
}

/// The [`Action::Missing`] entries of a plan, in plan order (the OEM image first, as the
/// script does).
fn lacking(actions: &[Action]) -> impl Iterator<Item = Lacking<'_>> {
    actions.iter().filter_map(|a| match a {
        Action::Missing {
            name,
            kind,
            expected,
            url,
        } => Some(Lacking {
            name,
            kind: *kind,
            expected,
            url: url.as_deref(),
        }),
        _ => None,
    })
}

/// The images a plan lacks, in plan order, each with the place it must go (the preferred one).
pub fn missing_images(actions: &[Action], version: &str) -> Vec<MissingImage> {
    lacking(actions)
        .filter_map(|l| {
            Some(MissingImage {
                name: l.name.to_owned(),
                version: version.to_owned(),
                path: l.expected.first()?.clone(),
                kind: l.kind,
            })
        })
        .collect()
}

/// One line per missing image: its kind, name, version and exactly where to place it (the
/// OEM image's fallback too), then what the policy does about it.
pub fn missing_lines(actions: &[Action], version: &str, choice: &PolicyChoice) -> Vec<String> {
    let outcome = match choice.policy {
        MissingPolicy::Warn => "going on without it",
        MissingPolicy::Fail => "failing",
    };
    lacking(actions)
        .map(|l| {
            let hint = l
                .url
                .map(|u| format!(" (Flatcar downloads {u}, a signed update payload)"))
                .unwrap_or_default();
            format!(
                "Missing {} extension image {} for version {version}: place it at {}{hint}; \
                 {outcome} (missing-image policy {}, {}).",
                l.kind.describe(),
                l.name,
                join_paths(l.expected),
                choice.policy.name(),
                choice.origin,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{plan, Inputs};
    use super::*;
    use crate::initrd::cmdline::parse;

    const V: &str = "4000.0.0";

    /// An OEM root lacking its OEM image and `zfs`, with `python` in place.
    fn lacking_two() -> Vec<Action> {
        let mut i = Inputs {
            version: V.into(),
            user_conf: b"zfs\npython\n".to_vec(),
            oem_id: Some("test".into()),
            oem_active: true,
            board: Some("arm64-usr".into()),
            ..Inputs::default()
        };
        i.present.insert(PathBuf::from(format!(
            "/etc/flatcar/sysext/flatcar-python-{V}.raw"
        )));
        plan(&i)
    }

    #[test]
    fn missing_images_name_version_path_and_kind() {
        assert_eq!(
            missing_images(&lacking_two(), V),
            vec![
                MissingImage {
                    name: "oem-test".into(),
                    version: V.into(),
                    path: format!("/oem/sysext/oem-test-{V}.raw").into(),
                    kind: ImageKind::Oem,
                },
                MissingImage {
                    name: "flatcar-zfs".into(),
                    version: V.into(),
                    path: format!("/etc/flatcar/sysext/flatcar-zfs-{V}.raw").into(),
                    kind: ImageKind::Official,
                },
            ]
        );
        assert_eq!(
            serde_json::to_value(&missing_images(&lacking_two(), V)[1]).unwrap(),
            serde_json::json!({
                "name": "flatcar-zfs",
                "version": V,
                "path": format!("/etc/flatcar/sysext/flatcar-zfs-{V}.raw"),
                "kind": "official",
            })
        );
        let none = plan(&Inputs {
            version: V.into(),
            ..Inputs::default()
        });
        assert_eq!(missing_images(&none, V), vec![]);
    }

    #[test]
    fn one_line_per_missing_image_with_place_and_policy() {
        let fail = PolicyChoice {
            policy: MissingPolicy::Fail,
            origin: "rd.extmerge.missing=fail".into(),
        };
        let url =
            |n: &str| format!("https://update.release.flatcar-linux.net/arm64-usr/{V}/{n}.gz");
        assert_eq!(
            missing_lines(&lacking_two(), V, &fail),
            vec![
                format!(
                    "Missing OEM extension image oem-test for version {V}: place it at \
                     /oem/sysext/oem-test-{V}.raw (preferred) or \
                     /etc/flatcar/oem-sysext/oem-test-{V}.raw (Flatcar downloads {}, a signed \
                     update payload); failing (missing-image policy fail, \
                     rd.extmerge.missing=fail).",
                    url("oem-test")
                ),
                format!(
                    "Missing official extension image flatcar-zfs for version {V}: place it at \
                     /etc/flatcar/sysext/flatcar-zfs-{V}.raw (Flatcar downloads {}, a signed \
                     update payload); failing (missing-image policy fail, \
                     rd.extmerge.missing=fail).",
                    url("flatcar-zfs")
                ),
            ]
        );
        let warn = resolve_policy(None, &[], false);
        let lines = missing_lines(&lacking_two(), V, &warn);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].ends_with("; going on without it (missing-image policy warn, the default)."),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn policy_kernel_command_line_over_option_over_default() {
        use MissingPolicy::{Fail, Warn};
        let both = "rd.extmerge.missing=fail extmerge.missing=warn";
        let rows: &[(Option<MissingPolicy>, &str, bool, MissingPolicy, &str)] = &[
            (None, "", true, Warn, "the default"),
            (Some(Fail), "", true, Fail, "--missing=fail"),
            (
                Some(Warn),
                "quiet rd.extmerge.missing=fail",
                true,
                Fail,
                "rd.extmerge.missing=fail",
            ),
            (
                Some(Fail),
                "extmerge.missing=warn",
                true,
                Warn,
                "extmerge.missing=warn",
            ),
            // In the initrd rd. wins over the plain key; outside it rd. keys do not count.
            (None, both, true, Fail, "rd.extmerge.missing=fail"),
            (None, both, false, Warn, "extmerge.missing=warn"),
            (
                Some(Fail),
                "rd.extmerge.missing=fail",
                false,
                Fail,
                "--missing=fail",
            ),
            // The last occurrence wins; an unusable value is ignored (the option decides).
            (
                None,
                "extmerge.missing=fail extmerge.missing=warn",
                false,
                Warn,
                "extmerge.missing=warn",
            ),
            (
                Some(Fail),
                "rd.extmerge.missing=sometimes",
                true,
                Fail,
                "--missing=fail",
            ),
            (None, "rd.extmerge.missing", true, Warn, "the default"),
        ];
        for (cli, cmdline, initrd, policy, origin) in rows {
            assert_eq!(
                resolve_policy(*cli, &parse(cmdline), *initrd),
                PolicyChoice {
                    policy: *policy,
                    origin: origin.to_string()
                },
                "{cli:?} {cmdline:?} in_initrd={initrd}"
            );
        }
    }
}
