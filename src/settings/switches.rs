//! Ways an operator turns merging off: kernel command line kill switches and masked units.

use crate::class::ImageClass;
use crate::initrd::cmdline::{self, Param};
use crate::kernel::root::Root;
use crate::settings::ClassSettings;
use std::path::Path;

/// systemd's `invoked_by_systemd()`: `$SYSTEMD_EXEC_PID` names this very process.
pub fn invoked_by_systemd() -> bool {
    std::env::var("SYSTEMD_EXEC_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id())
}

/// The kernel command line to honour, given the result of reading it. One that cannot be read
/// (unreadable, larger than the cap) is a warning and counts as empty, as in systemd-sysext,
/// which logs a failed `proc_cmdline_get_bool()` and proceeds as if no switch were set.
pub fn kernel_cmdline_or_empty(read: anyhow::Result<String>) -> String {
    read.unwrap_or_else(|e| {
        tracing::warn!("Failed to read the kernel command line, ignoring it: {e:#}");
        String::new()
    })
}

/// The kernel command line option that disables `class`, if one does.
///
/// As systemd: `systemd.<class>=0`; in the initrd also `rd.systemd.<class>=0` (systemd's
/// `-sysroot` units honour both) and extmerge's own `rd.extmerge=0` for every class.
/// A value that is not a boolean is ignored; a key without a value means "enabled".
pub fn kill_switch(params: &[Param], class: ImageClass, in_initrd: bool) -> Option<String> {
    let disabled = |key: &str, rd_only: bool| -> Option<String> {
        let v = if rd_only {
            if !in_initrd {
                return None;
            }
            params.iter().rev().find(|p| p.key == key)?.value.clone()
        } else {
            cmdline::get(params, key, in_initrd)?.map(str::to_string)
        };
        // Name the parameter the operator wrote: in the initrd `rd.KEY` wins over `KEY`.
        let rd_key = format!("rd.{key}");
        let shown = if !rd_only && in_initrd && cmdline::get(params, &rd_key, false).is_some() {
            rd_key.as_str()
        } else {
            key
        };
        let v = v?;
        (crate::decide::mutable::parse_boolean(&v) == Some(false)).then(|| format!("{shown}={v}"))
    };
    disabled("rd.extmerge", true).or_else(|| disabled(&format!("systemd.{}", class.name()), false))
}

/// `rd.extmerge=0` (initrd only): every step of extmerge's units is off, including the
/// `/var` mount and the Flatcar selection, not just one class.
pub fn all_disabled(params: &[Param], in_initrd: bool) -> bool {
    in_initrd
        && params
            .iter()
            .rev()
            .find(|p| p.key == "rd.extmerge")
            .and_then(|p| p.value.as_deref())
            .is_some_and(|v| crate::decide::mutable::parse_boolean(v) == Some(false))
}

/// The systemd unit whose masking in the root disables a class (Flatcar's convention).
pub fn unit_for(class: ImageClass) -> &'static str {
    match class {
        ImageClass::Sysext => "systemd-sysext.service",
        ImageClass::Confext => "systemd-confext.service",
    }
}

/// True when `/etc/systemd/system/<unit>` inside `root` is a mask (a link to /dev/null, or an
/// empty file). Absent, dangling or anything else: not masked.
pub fn unit_masked(root: &Root, unit: &str) -> anyhow::Result<bool> {
    use anyhow::Context;
    use rustix::fs::FileType;
    let p = Path::new("/etc/systemd/system").join(unit);
    let found = match root.resolve_nofollow(&p) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    Ok(match found.file_type() {
        FileType::Symlink => {
            rustix::fs::readlinkat(&found.fd, "", Vec::new())
                .map_err(std::io::Error::from)
                .with_context(|| format!("reading link {}", root.show(&p).display()))?
                .as_bytes()
                == b"/dev/null"
        }
        FileType::RegularFile => found.stat.st_size == 0,
        _ => false,
    })
}

/// Whether the class's unit is masked in the settings' root; an error is logged and counts as
/// not masked (the merge then meets the same problem and reports it with its context).
fn masked_in(s: &ClassSettings, unit: &str) -> bool {
    let masked = Root::open(&s.root).and_then(|root| unit_masked(&root, unit));
    masked.unwrap_or_else(|e| {
        tracing::warn!("Cannot tell whether {unit} is masked: {e:#}; assuming it is not.");
        false
    })
}

/// The kernel command line option that turns off the initrd steps that are not about one
/// class (`mount-var`, `flatcar-select`): `rd.extmerge=0`, honoured when systemd started us.
pub fn initrd_step_disabled(kernel_cmdline: &str, in_initrd: bool) -> Option<&'static str> {
    let params = cmdline::parse(kernel_cmdline);
    (invoked_by_systemd() && all_disabled(&params, in_initrd)).then_some("rd.extmerge=0")
}

/// The classes a verb acts on after the operator's switches: when systemd started us, a kernel
/// command line kill switch drops a class; for `merge`/`refresh` with `--root`, a masked
/// `systemd-{sysext,confext}.service` in the root drops it too (Flatcar's convention) unless
/// extensions are required. One log line per class dropped.
pub fn select(
    mut settings: Vec<ClassSettings>,
    kernel_cmdline: &str,
    in_initrd: bool,
    merging: bool,
) -> Vec<ClassSettings> {
    if !invoked_by_systemd() {
        return settings;
    }
    let params = cmdline::parse(kernel_cmdline);
    settings.retain(|s| match kill_switch(&params, s.class, in_initrd) {
        Some(opt) => {
            tracing::info!(
                "Disabled by the kernel command line option {opt}: not touching {}s.",
                s.class
            );
            false
        }
        None => true,
    });
    if merging {
        settings.retain(|s| {
            if !s.root_given {
                return true;
            }
            let unit = unit_for(s.class);
            if !masked_in(s, unit) {
                return true;
            }
            if !s.require_any.is_empty() || !s.require.is_empty() {
                tracing::warn!(
                    "{unit} is masked in {}, but required extensions are configured: merging {}s anyway.",
                    s.root.display(),
                    s.class
                );
                return true;
            }
            tracing::info!(
                "{unit} is masked in {}: not merging {}s.",
                s.root.display(),
                s.class
            );
            false
        });
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rd_extmerge_0_turns_everything_off_in_the_initrd_only() {
        let p = cmdline::parse("quiet rd.extmerge=0");
        assert!(all_disabled(&p, true));
        assert!(!all_disabled(&p, false));
        assert!(!all_disabled(
            &cmdline::parse("rd.extmerge=0 rd.extmerge=1"),
            true
        ));
        assert!(!all_disabled(
            &cmdline::parse("rd.extmerge rd.extmerge=maybe"),
            true
        ));
        assert!(!all_disabled(&cmdline::parse("rd.systemd.sysext=0"), true));
    }

    #[test]
    fn kill_switches_follow_the_initrd_rules() {
        let p = cmdline::parse("systemd.sysext=0 rd.systemd.confext=no");
        assert_eq!(
            kill_switch(&p, ImageClass::Sysext, false).as_deref(),
            Some("systemd.sysext=0")
        );
        assert_eq!(
            kill_switch(&p, ImageClass::Confext, false),
            None,
            "rd. only counts in the initrd"
        );
        assert_eq!(
            kill_switch(&p, ImageClass::Confext, true).as_deref(),
            Some("rd.systemd.confext=no"),
            "the parameter as written"
        );
        let p = cmdline::parse("rd.extmerge=0 systemd.sysext=1");
        assert_eq!(
            kill_switch(&p, ImageClass::Sysext, true).as_deref(),
            Some("rd.extmerge=0")
        );
        assert_eq!(kill_switch(&p, ImageClass::Sysext, false), None);
        let p = cmdline::parse("systemd.sysext systemd.confext=maybe");
        assert_eq!(
            kill_switch(&p, ImageClass::Sysext, false),
            None,
            "present without value = enabled"
        );
        assert_eq!(
            kill_switch(&p, ImageClass::Confext, false),
            None,
            "not a boolean: ignored"
        );
    }

    #[test]
    fn masks_are_dev_null_links_or_empty_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("etc/systemd/system");
        std::fs::create_dir_all(&d).unwrap();
        let root = Root::open(t.path()).unwrap();
        let masked = |unit: &str| unit_masked(&root, unit).unwrap();
        assert!(!masked("systemd-sysext.service"));
        std::os::unix::fs::symlink("/dev/null", d.join("systemd-sysext.service")).unwrap();
        assert!(masked("systemd-sysext.service"));
        std::fs::write(d.join("systemd-confext.service"), "").unwrap();
        assert!(masked("systemd-confext.service"));
        std::fs::write(d.join("systemd-confext.service"), "[Unit]\n").unwrap();
        assert!(!masked("systemd-confext.service"));
        // A dangling link is no mask; the link's target is never followed out of the root.
        std::os::unix::fs::symlink("/nowhere", d.join("x.service")).unwrap();
        assert!(!masked("x.service"));
    }
}
