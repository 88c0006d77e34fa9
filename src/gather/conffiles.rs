//! systemd's `conf_files_list()` over a root: files with a suffix from several directories,
//! one per name, the first directory winning, in file-name order; a link to `/dev/null` or an
//! empty file masks the name. Used for `*.conf.d/` drop-ins and `verity.d/*.crt`.

use crate::gather::discover::list_dir;
use crate::kernel::root::{Found, Root};
use anyhow::Context;
use rustix::fs::FileType;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What an entry does for its name.
pub enum Entry {
    /// A regular, non-empty file.
    Provides(Found),
    /// A link to `/dev/null` or an empty file: the name is masked.
    Masked,
    /// Missing, or a dangling link: as if absent.
    Ignored,
    /// Something other than a regular file (a directory, a FIFO, a socket).
    NotRegular(Found),
}

/// What [`list`] does with an entry that is not a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonRegular {
    /// Leave it out (`CONF_FILES_REGULAR`: certificates, unit drop-ins).
    Skip,
    /// Fail naming it: systemd's configuration parser opens it and fails (`EISDIR`, …).
    Fail,
}

/// What the entry at `in_root` is for systemd's `null_or_empty()` checks: a file, a mask, or
/// nothing (missing, dangling, not a regular file).
pub fn classify(root: &Root, in_root: &Path) -> anyhow::Result<Entry> {
    if let Ok(link) = root.resolve_nofollow(in_root) {
        if link.file_type() == FileType::Symlink {
            let target = rustix::fs::readlinkat(&link.fd, "", Vec::new())
                .with_context(|| format!("reading link {}", root.show(in_root).display()))?;
            if target.as_bytes() == b"/dev/null" {
                return Ok(Entry::Masked);
            }
        }
    }
    let found = match root.resolve(in_root) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(Entry::Ignored),
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    if found.in_root == Path::new("/dev/null") || found.file_type() == FileType::CharacterDevice {
        return Ok(Entry::Masked);
    }
    Ok(if found.file_type() != FileType::RegularFile {
        Entry::NotRegular(found)
    } else if found.stat.st_size == 0 {
        Entry::Masked
    } else {
        Entry::Provides(found)
    })
}

/// The files named `*<suffix>` in `dirs` (in-root, highest priority first), one per name, in
/// name order. A directory that does not exist is skipped; one that cannot be read is an error;
/// an entry that is not a regular file is left out or an error, as `non_regular` says.
pub fn list(
    root: &Root,
    dirs: &[&str],
    suffix: &str,
    non_regular: NonRegular,
) -> anyhow::Result<Vec<(OsString, Found)>> {
    let mut names: BTreeMap<OsString, Option<Found>> = BTreeMap::new();
    for dir in dirs {
        let resolved = match root.resolve(Path::new(dir)) {
            Ok(r) if r.is_dir() => r,
            Ok(_) => continue,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(anyhow::Error::new(e)),
        };
        let entries = list_dir(&resolved)
            .with_context(|| format!("listing {}", root.show(&resolved.in_root).display()))?;
        for name in entries {
            if !name.as_bytes().ends_with(suffix.as_bytes()) || names.contains_key(&name) {
                continue;
            }
            match classify(root, &resolved.in_root.join(&name))? {
                Entry::Provides(f) => names.insert(name, Some(f)),
                Entry::Masked => names.insert(name, None),
                Entry::Ignored => None,
                Entry::NotRegular(f) => match non_regular {
                    NonRegular::Skip => None,
                    NonRegular::Fail => anyhow::bail!(
                        "{} is not a regular file ({})",
                        root.show(&f.in_root).display(),
                        crate::kernel::root::file_type_name(f.file_type())
                    ),
                },
            };
        }
    }
    Ok(names
        .into_iter()
        .filter_map(|(n, f)| f.map(|f| (n, f)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn first_directory_wins_masks_hide_and_order_is_by_name() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["etc/x.d", "usr/lib/x.d"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("usr/lib/x.d/b.conf"), "lib b").unwrap();
        std::fs::write(r.join("usr/lib/x.d/a.conf"), "lib a").unwrap();
        std::fs::write(r.join("usr/lib/x.d/c.conf"), "lib c").unwrap();
        std::fs::write(r.join("etc/x.d/b.conf"), "etc b").unwrap();
        symlink("/dev/null", r.join("etc/x.d/c.conf")).unwrap();
        std::fs::write(r.join("etc/x.d/d.conf"), "").unwrap();
        std::fs::write(r.join("usr/lib/x.d/d.conf"), "lib d").unwrap();
        std::fs::write(r.join("etc/x.d/ignored.txt"), "x").unwrap();
        symlink("/nowhere", r.join("etc/x.d/e.conf")).unwrap();
        let root = Root::open(r).unwrap();
        let got: Vec<(String, String)> = list(
            &root,
            &["/etc/x.d", "/usr/lib/x.d"],
            ".conf",
            NonRegular::Skip,
        )
        .unwrap()
        .into_iter()
        .map(|(n, f)| {
            (
                n.to_string_lossy().into_owned(),
                f.in_root.display().to_string(),
            )
        })
        .collect();
        assert_eq!(
            got,
            [
                ("a.conf".to_string(), "/usr/lib/x.d/a.conf".to_string()),
                ("b.conf".to_string(), "/etc/x.d/b.conf".to_string()),
            ]
        );
    }
}
