//! What a mount unit's `[Mount]` section makes of `What=`, `Where=`, `Type=` and `Options=`,
//! as PID 1 assigns them (`load-fragment-gperf.gperf.in`: `Mount.What`, `Mount.Type` and
//! `Mount.Options` through `config_parse_unit_string_printf()`, `Mount.Where` through
//! `config_parse_unit_path_printf()`), and what `mount_verify()` (`src/core/mount.c`) refuses.
//!
//! * The fragment is read first, then its drop-ins in name order; within and across files the
//!   last assignment of a key wins and an empty one resets it.
//! * Values are taken as written, then `%` specifiers are resolved. Only `%%` is expanded
//!   here; any other specifier is an error rather than a guess, since the booted system would
//!   expand it (`%H`, the host name, …) to something the initrd cannot know for certain.
//! * A `Where=` that is not absolute or not normalised (`..`) is ignored with a warning, as
//!   `path_simplify_and_warn()` does for a non-fatal path setting; without one the path comes
//!   from the unit name (`var.mount` → `/var`).
//! * `mount_verify()`: `Where=` must be the unit's own path ("Where= setting doesn't match unit
//!   name. Refusing.") and `What=` must be set ("What= setting is missing. Refusing."); a unit
//!   refused there mounts nothing in the booted system, so it is an error here.

use crate::ondisk::unitfile::UnitFile;

/// One setting's value and where it was set (`/sysroot/etc/fstab:3`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The value, specifiers resolved.
    pub value: Vec<u8>,
    /// `FILE:LINE` it came from, for messages.
    pub source: String,
}

impl Setting {
    /// A setting read from `source`.
    pub fn new(value: &[u8], source: String) -> Setting {
        Setting {
            value: value.to_vec(),
            source,
        }
    }
}

/// The `[Mount]` settings that decide what `/var` is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountSettings {
    /// `What=`: the device (or `LABEL=`… tag).
    pub what: Option<Setting>,
    /// `Where=`: the mount point; `None` means the unit name's path.
    pub where_: Option<Setting>,
    /// `Type=`: the filesystem type.
    pub fstype: Option<Setting>,
    /// `Options=`: comma-separated mount options.
    pub options: Option<Setting>,
}

impl MountSettings {
    /// Apply the `[Mount]` assignments of one parsed file, named `shown` in messages, in order.
    /// Ignored assignments are added to `warnings`; a specifier we cannot expand is an error.
    pub fn apply(
        &mut self,
        file: &UnitFile,
        shown: &str,
        warnings: &mut Vec<String>,
    ) -> Result<(), String> {
        for a in file.assignments.iter().filter(|a| a.section == "Mount") {
            let source = format!("{shown}:{}", a.line);
            let slot = match a.key.as_str() {
                "What" => &mut self.what,
                "Where" => &mut self.where_,
                "Type" => &mut self.fstype,
                "Options" => &mut self.options,
                _ => continue,
            };
            let value = expand_specifiers(&a.value)
                .map_err(|e| format!("{source}: {}={}: {e}", a.key, a.value))?;
            if value.is_empty() {
                *slot = None;
                continue;
            }
            if a.key == "Where" {
                if let Err(why) = check_path(&value) {
                    warnings.push(format!("{source}: Where={value} {why}, ignoring"));
                    continue;
                }
            }
            *slot = Some(Setting::new(value.as_bytes(), source));
        }
        Ok(())
    }

    /// `mount_verify()` for the unit named by `unit` (a file, for messages), whose own path
    /// is `/var`: `Where=` must be `/var`, `What=` must be set.
    pub fn verify(&self, unit: &str) -> Result<&Setting, String> {
        if let Some(w) = &self.where_ {
            if super::spec::simplify(&w.value) != b"/var" {
                return Err(format!(
                    "{}: Where={} does not match the unit name var.mount; systemd refuses to \
                     load {unit}",
                    w.source,
                    String::from_utf8_lossy(&w.value)
                ));
            }
        }
        self.what
            .as_ref()
            .ok_or_else(|| format!("{unit}: What= is missing; systemd refuses to load the unit"))
    }
}

/// `%%` → `%`; any other specifier is refused (see the module docs).
fn expand_specifiers(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(s) => {
                return Err(format!(
                    "the specifier %{s} is resolved by the booted system's systemd and not \
                     known in the initrd; write the value out"
                ))
            }
            None => return Err("a lone '%' at the end is not a valid specifier".to_string()),
        }
    }
    Ok(out)
}

/// `path_simplify_and_warn(PATH_CHECK_ABSOLUTE)`: absolute and without `..`.
fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("is not an absolute path");
    }
    if path.split('/').any(|c| c == "..") {
        return Err("is not normalized (contains '..')");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::unitfile::parse_unit_file;

    fn settings(files: &[&str]) -> Result<(MountSettings, Vec<String>), String> {
        let mut s = MountSettings::default();
        let mut warnings = Vec::new();
        for (i, text) in files.iter().enumerate() {
            let file = parse_unit_file(text.as_bytes()).map_err(|e| e.to_string())?;
            s.apply(&file, &format!("f{i}"), &mut warnings)?;
        }
        Ok((s, warnings))
    }

    fn value(s: &Option<Setting>) -> Option<(String, String)> {
        s.as_ref().map(|s| {
            (
                String::from_utf8_lossy(&s.value).into_owned(),
                s.source.clone(),
            )
        })
    }

    #[test]
    fn last_assignment_wins_across_drop_ins_and_empty_resets() {
        let (s, w) = settings(&[
            "[Unit]\nWhat=/dev/unit-section\n[Mount]\nWhat=/dev/a\nType=ext4\nOptions=noatime\n\
             What=LABEL=b\n[Install]\nWhat=/dev/install\n",
            "[Mount]\nOptions=\nType=xfs\n",
        ])
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(value(&s.what), Some(("LABEL=b".into(), "f0:7".into())));
        assert_eq!(value(&s.fstype), Some(("xfs".into(), "f1:3".into())));
        assert_eq!(s.options, None);
        assert_eq!(s.verify("f0").map(|w| w.source.clone()), Ok("f0:7".into()));
    }

    #[test]
    fn specifiers_percent_only() {
        let (s, _) = settings(&["[Mount]\nWhat=/dev/disk/by-label/100%%\n"]).unwrap();
        assert_eq!(value(&s.what).unwrap().0, "/dev/disk/by-label/100%");
        let e = settings(&["[Mount]\nWhat=/dev/disk/by-label/%H\n"]).unwrap_err();
        assert_eq!(
            e,
            "f0:2: What=/dev/disk/by-label/%H: the specifier %H is resolved by the booted \
             system's systemd and not known in the initrd; write the value out"
        );
        assert!(settings(&["[Mount]\nOptions=x%\n"])
            .unwrap_err()
            .contains("lone '%'"));
    }

    #[test]
    fn where_must_be_var_and_what_must_be_set() {
        let (s, w) = settings(&["[Mount]\nWhat=/dev/a\nWhere=var\nWhere=/a/../var\n"]).unwrap();
        assert_eq!(
            w,
            [
                "f0:3: Where=var is not an absolute path, ignoring",
                "f0:4: Where=/a/../var is not normalized (contains '..'), ignoring"
            ]
        );
        assert!(
            s.verify("f0").is_ok(),
            "ignored Where= leaves the unit's own path"
        );
        let (s, _) = settings(&["[Mount]\nWhat=/dev/a\nWhere=//var/./\n"]).unwrap();
        assert!(s.verify("f0").is_ok());
        let (s, _) = settings(&["[Mount]\nWhat=/dev/a\nWhere=/srv\n"]).unwrap();
        assert_eq!(
            s.verify("f0").unwrap_err(),
            "f0:3: Where=/srv does not match the unit name var.mount; systemd refuses to load f0"
        );
        let (s, _) = settings(&["[Mount]\nType=ext4\n", "[Mount]\nWhat=/dev/a\nWhat=\n"]).unwrap();
        assert_eq!(
            s.verify("f0").unwrap_err(),
            "f0: What= is missing; systemd refuses to load the unit"
        );
    }
}
