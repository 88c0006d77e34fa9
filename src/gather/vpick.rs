//! Picking the entry of a versioned directory (`NAME.v/`, `NAME.raw.v/`) inside a root: the
//! I/O half of systemd's `path_pick()`; the choice itself is [`crate::decide::vpick`].

use crate::decide::vpick::{architecture_allowed, compare_choices, parse_versioned, VersionedName};
use crate::kernel::root::{ChaseError, Found, Root};
use anyhow::Context;
use rustix::fs::FileType;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Which inode types a versioned directory's entries must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    /// `NAME.v/`: directories.
    Directory,
    /// `NAME.raw.v/`: regular files or block devices.
    FileOrBlock,
}

impl EntryType {
    fn accepts(self, ft: FileType) -> bool {
        match self {
            EntryType::Directory => ft == FileType::Directory,
            EntryType::FileOrBlock => ft == FileType::RegularFile || ft == FileType::BlockDevice,
        }
    }
}

/// The entry chosen in a versioned directory.
#[derive(Debug)]
pub struct Picked {
    /// The entry's file name inside the `.v` directory.
    pub file_name: String,
    /// Its parsed name.
    pub name: VersionedName,
    /// The entry fully resolved inside the root (symlinks followed).
    pub resolved: Found,
}

/// Describe a chase failure with in-root paths, for skip reasons and errors.
pub fn describe_chase_error(root: &Root, err: &ChaseError) -> String {
    let inside = |p: &Path| -> PathBuf {
        match p.strip_prefix(root.path()) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => p.to_path_buf(),
        }
    };
    match err {
        ChaseError::NotFound { path } => format!("{} does not exist", inside(path).display()),
        ChaseError::TooManyLinks { path } => format!(
            "too many levels of symbolic links at {} (symlink loop?)",
            inside(path).display()
        ),
        ChaseError::NotADirectory { path } => {
            format!("{} is not a directory", inside(path).display())
        }
        ChaseError::Io { path, source } => format!("{}: {source}", inside(path).display()),
    }
}

/// Resolve the versioned directory `vdir` (in-root, may be a symlink) and pick its best entry
/// whose resolved type fits `want`; `Ok(None)` when nothing matches.
///
/// As in systemd, entries of the wrong type are passed over, but an entry that matches the
/// name pattern and cannot be resolved (dangling symlink, loop) fails the whole pick.
pub fn pick_in_root(
    root: &Root,
    vdir: &Path,
    basename: &str,
    suffix: &str,
    want: EntryType,
    native_arch: &str,
) -> anyhow::Result<Option<Picked>> {
    let dir = root
        .resolve(vdir)
        .map_err(|e| anyhow::anyhow!("{}", describe_chase_error(root, &e)))
        .with_context(|| format!("cannot resolve versioned directory {}", vdir.display()))?;
    let mut entries = crate::gather::discover::list_dir(&dir)
        .with_context(|| format!("cannot read versioned directory {}", dir.in_root.display()))?;
    // readdir order is arbitrary; sorting makes the (rare) full ties deterministic.
    entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

    let mut best: Option<(Picked, String)> = None;
    for entry in entries {
        // Name parts are ASCII-delimited, so a lossy view parses exactly like the raw bytes.
        let file_name = entry.to_string_lossy().into_owned();
        let Some(name) = parse_versioned(&file_name, basename, suffix) else {
            continue;
        };
        if !architecture_allowed(name.architecture.as_deref(), native_arch) {
            tracing::debug!(
                "{}: architecture {:?} is not ours, ignoring entry",
                dir.in_root.join(&entry).display(),
                name.architecture
            );
            continue;
        }
        let in_root = dir.in_root.join(&entry);
        let resolved = root
            .resolve(&in_root)
            .map_err(|e| anyhow::anyhow!("{}", describe_chase_error(root, &e)))
            .with_context(|| format!("cannot resolve {}", in_root.display()))?;
        if !want.accepts(resolved.file_type()) {
            tracing::debug!("{}: wrong inode type, ignoring entry", in_root.display());
            continue;
        }
        // systemd breaks the last tie on the file name of the resolved path (PICK_RESOLVE).
        let tie = resolved
            .in_root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let better = match &best {
            None => true,
            Some((b, btie)) => compare_choices(&name, &tie, &b.name, btie, native_arch).is_gt(),
        };
        if better {
            best = Some((
                Picked {
                    file_name,
                    name,
                    resolved,
                },
                tie,
            ));
        }
    }
    Ok(best.map(|(p, _)| p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::root::Root;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(t.path()).unwrap();
        (t, r)
    }

    fn handle(r: &Path) -> Root {
        Root::open(r).unwrap()
    }

    #[test]
    fn picks_highest_directory_and_passes_over_wrong_types() {
        let (_t, r) = root();
        std::fs::create_dir_all(r.join("e/foo.v/foo_1.0")).unwrap();
        std::fs::create_dir_all(r.join("e/foo.v/foo_1.2")).unwrap();
        std::fs::write(r.join("e/foo.v/foo_1.9"), "not a dir").unwrap();
        let p = pick_in_root(
            &handle(&r),
            Path::new("/e/foo.v"),
            "foo",
            "",
            EntryType::Directory,
            "x86-64",
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.file_name, "foo_1.2");
        assert_eq!(p.resolved.in_root, PathBuf::from("/e/foo.v/foo_1.2"));
        assert!(p.resolved.is_dir());
    }

    #[test]
    fn resolves_symlinks_inside_root() {
        let (_t, r) = root();
        std::fs::create_dir_all(r.join("store")).unwrap();
        std::fs::write(r.join("store/foo-2.raw"), "").unwrap();
        std::fs::create_dir_all(r.join("e/real.v")).unwrap();
        symlink("/store/foo-2.raw", r.join("e/real.v/foo_2.raw")).unwrap();
        symlink("real.v", r.join("e/foo.raw.v")).unwrap();
        let p = pick_in_root(
            &handle(&r),
            Path::new("/e/foo.raw.v"),
            "foo",
            ".raw",
            EntryType::FileOrBlock,
            "x86-64",
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.name.version, "2");
        assert_eq!(p.resolved.in_root, PathBuf::from("/store/foo-2.raw"));
    }

    #[test]
    fn dangling_matching_entry_fails_the_pick_like_systemd() {
        let (_t, r) = root();
        std::fs::create_dir_all(r.join("e/foo.v/foo_1")).unwrap();
        symlink("/nowhere", r.join("e/foo.v/foo_2")).unwrap();
        let err = pick_in_root(
            &handle(&r),
            Path::new("/e/foo.v"),
            "foo",
            "",
            EntryType::Directory,
            "x86-64",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("/e/foo.v/foo_2"), "{err:#}");
        // a dangling entry that does not match the pattern is never looked at
        std::fs::remove_file(r.join("e/foo.v/foo_2")).unwrap();
        symlink("/nowhere", r.join("e/foo.v/bar_2")).unwrap();
        let p = pick_in_root(
            &handle(&r),
            Path::new("/e/foo.v"),
            "foo",
            "",
            EntryType::Directory,
            "x86-64",
        )
        .unwrap();
        assert_eq!(p.unwrap().file_name, "foo_1");
    }

    #[test]
    fn empty_or_missing_versioned_directory() {
        let (_t, r) = root();
        std::fs::create_dir_all(r.join("e/foo.v")).unwrap();
        assert!(pick_in_root(
            &handle(&r),
            Path::new("/e/foo.v"),
            "foo",
            "",
            EntryType::Directory,
            "x86-64"
        )
        .unwrap()
        .is_none());
        assert!(pick_in_root(
            &handle(&r),
            Path::new("/e/bar.v"),
            "bar",
            "",
            EntryType::Directory,
            "x86-64"
        )
        .is_err());
    }
}
