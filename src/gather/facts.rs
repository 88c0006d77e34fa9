//! Facts about one hierarchy and its mutable directory, read inside the root: the I/O half of
//! the mutable-mode decision ([`crate::decide::mutable::plan`]). Reads only: the `--mutable=yes`
//! directory is created beforehand by [`crate::merge::prepare`].

use crate::decide::mutable::*;
use crate::kernel::root::{Found, Root};
use anyhow::Context;
use rustix::fs::FileType;
use std::path::Path;

/// systemd `path_is_read_only_fs()`: the mount is read-only, or writing would fail with EROFS.
fn is_read_only_fs(root: &Root, f: &Found) -> anyhow::Result<bool> {
    let st = rustix::fs::fstatvfs(&f.fd).with_context(|| {
        format!(
            "Failed to determine if '{}' is on a read-only file system",
            root.show(&f.in_root).display()
        )
    })?;
    if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Ok(true);
    }
    // statvfs can miss read-only network shares; access(W_OK) catches those.
    let w = rustix::fs::accessat(
        &f.fd,
        "",
        rustix::fs::Access::WRITE_OK,
        rustix::fs::AtFlags::EMPTY_PATH,
    );
    Ok(w == Err(rustix::io::Errno::ROFS))
}

/// Whether a directory has no entries (hidden ones count as entries).
fn is_empty_dir(root: &Root, f: &Found) -> anyhow::Result<bool> {
    let fd = f.open_dir().with_context(|| {
        format!(
            "Failed to check if host hierarchy '{}' is empty",
            root.show(&f.in_root).display()
        )
    })?;
    for e in rustix::fs::Dir::read_from(&fd)
        .with_context(|| format!("Failed to read '{}'", root.show(&f.in_root).display()))?
    {
        let e =
            e.with_context(|| format!("Failed to read '{}'", root.show(&f.in_root).display()))?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Stat the hierarchy inside `root` and resolve `/var/lib/extensions.mutable/<c>`, reading only.
///
/// `no` and `ephemeral` ignore the mutable dir (systemd's ephemeral dirs live on its tmpfs
/// workspace, never in the root); the other modes look it up (a dangling link means "none").
pub fn gather_facts(
    root: &Root,
    hierarchy: &Path,
    mode: MutableMode,
) -> anyhow::Result<HierarchyFacts> {
    let lookup = root
        .lookup(hierarchy)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("Failed to resolve hierarchy '{}'", hierarchy.display()))?;
    let resolved = lookup.in_root().to_path_buf();
    let (exists, hmode, is_empty, read_only_fs, hinode) = match &lookup {
        crate::kernel::root::Lookup::Found(h) => {
            if !h.is_dir() {
                anyhow::bail!(
                    "Hierarchy '{}' ('{}') is not a directory",
                    hierarchy.display(),
                    root.show(&h.in_root).display()
                );
            }
            (
                true,
                h.mode() & 0o777,
                is_empty_dir(root, h)?,
                is_read_only_fs(root, h)?,
                Some(h.inode()),
            )
        }
        crate::kernel::root::Lookup::Missing { .. } => (false, 0o755, false, false, None),
    };

    let md = mutable_dir_for(hierarchy);
    let mutable_dir = match mode {
        MutableMode::No | MutableMode::Ephemeral => None,
        MutableMode::Yes
        | MutableMode::Auto
        | MutableMode::Import
        | MutableMode::EphemeralImport => match root.resolve(&md) {
            Err(e) if e.is_not_found() => {
                tracing::debug!("Mutable directory '{}' does not exist.", md.display());
                None
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)).with_context(|| {
                    format!("Failed to resolve mutable directory '{}'", md.display())
                })
            }
            Ok(m) => {
                if m.file_type() != FileType::Directory {
                    anyhow::bail!(
                        "Mutable directory '{}' ('{}') is not a directory",
                        md.display(),
                        root.show(&m.in_root).display()
                    );
                }
                let same = m.in_root == resolved || hinode == Some(m.inode());
                let parent_same_fs = match m.in_root.parent() {
                    Some(p) => {
                        let parent = root.resolve(p).map_err(anyhow::Error::new)?;
                        parent.stat.st_dev == m.stat.st_dev
                    }
                    None => false,
                };
                Some(MutableDirFacts {
                    mode: m.mode() & 0o777,
                    same_inode_as_hierarchy: same,
                    on_read_only_fs: is_read_only_fs(root, &m)?,
                    parent_same_fs,
                    resolved: m.in_root,
                })
            }
        },
    };

    Ok(HierarchyFacts {
        hierarchy: hierarchy.to_path_buf(),
        resolved,
        exists,
        is_empty,
        mode: hmode,
        read_only_fs,
        mutable_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::mutable::tests::{defaults, ext, must_plan, p};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    // ---- gather_facts(): tempdir trees ----

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    /// Prepare (the writes `--mutable=yes` needs), then gather, as a merge does.
    fn facts(root: &Path, h: &Path, mode: MutableMode) -> anyhow::Result<HierarchyFacts> {
        let root = Root::open(root)?;
        crate::merge::prepare::ensure_mutable_dir(&root, h, mode)?;
        gather_facts(&root, h, mode)
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("opt")).unwrap();
        std::fs::write(t.path().join("opt/host-file"), "h").unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/hostname"), "h").unwrap();
        t
    }

    #[test]
    fn gather_yes_creates_mutable_dir_with_parents_0755_and_hierarchy_mode() {
        // Parents are created 0755 minus umask, like systemd; pin the umask to make that visible.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        let t = tree();
        std::fs::set_permissions(t.path().join("opt"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        let f = facts(t.path(), Path::new("/opt"), MutableMode::Yes).unwrap();
        let md = t.path().join("var/lib/extensions.mutable/opt");
        assert!(md.is_dir());
        assert_eq!(mode_of(&md), 0o750);
        for parent in ["var", "var/lib", "var/lib/extensions.mutable"] {
            assert_eq!(mode_of(&t.path().join(parent)), 0o755, "{parent}");
        }
        assert_eq!(f.mode, 0o750);
        let m = f.mutable_dir.clone().unwrap();
        assert_eq!(m.resolved, p("/var/lib/extensions.mutable/opt"));
        assert_eq!(m.mode, 0o750);
        assert!(!m.same_inode_as_hierarchy && m.parent_same_fs);
        let pl = must_plan(MutableMode::Yes, &f, &ext(&["e"]), None);
        assert!(!pl.read_only && pl.host_is_lower);
    }

    #[test]
    fn gather_yes_creates_dirs_even_for_a_missing_hierarchy() {
        let t = tree();
        let f = facts(t.path(), Path::new("/usr"), MutableMode::Yes).unwrap();
        assert!(!f.exists && f.mode == 0o755);
        assert!(t.path().join("var/lib/extensions.mutable/usr").is_dir());
        assert_eq!(f.resolved, p("/usr"));
    }

    #[test]
    fn gather_auto_import_and_ephemeral_modes_never_create() {
        for mode in [
            MutableMode::Auto,
            MutableMode::Import,
            MutableMode::Ephemeral,
            MutableMode::EphemeralImport,
            MutableMode::No,
        ] {
            let t = tree();
            let f = facts(t.path(), Path::new("/opt"), mode).unwrap();
            assert!(f.mutable_dir.is_none(), "{mode}");
            assert!(
                !t.path().join("var").exists(),
                "{mode} created the mutable dir"
            );
        }
    }

    #[test]
    fn gather_mode_no_and_ephemeral_ignore_an_existing_mutable_dir() {
        let t = tree();
        std::fs::create_dir_all(t.path().join("var/lib/extensions.mutable/opt")).unwrap();
        for mode in [MutableMode::No, MutableMode::Ephemeral] {
            assert!(facts(t.path(), Path::new("/opt"), mode)
                .unwrap()
                .mutable_dir
                .is_none());
        }
        for mode in [
            MutableMode::Auto,
            MutableMode::Import,
            MutableMode::EphemeralImport,
        ] {
            assert!(facts(t.path(), Path::new("/opt"), mode)
                .unwrap()
                .mutable_dir
                .is_some());
        }
    }

    #[test]
    fn gather_symlink_to_hierarchy_is_same_inode_and_plans_like_flatcar() {
        let t = tree();
        std::fs::create_dir_all(t.path().join("var/lib/extensions.mutable")).unwrap();
        // Absolute target, resolved inside the root exactly like Flatcar's initrd link.
        std::os::unix::fs::symlink("/etc", t.path().join("var/lib/extensions.mutable/etc"))
            .unwrap();
        for mode in [MutableMode::Auto, MutableMode::Yes] {
            let f = facts(t.path(), Path::new("/etc"), mode).unwrap();
            let m = f.mutable_dir.clone().unwrap();
            assert_eq!(m.resolved, p("/etc"));
            assert!(m.same_inode_as_hierarchy && m.parent_same_fs);
            let pl = must_plan(mode, &f, &ext(&["00-flatcar-default"]), None);
            assert_eq!(
                pl.upper,
                Some(UpperDir::Persistent {
                    upper: p("/etc"),
                    work: p("/.systemd-etc-workdir")
                })
            );
            assert!(pl.self_upper && !pl.host_is_lower);
            assert_eq!(pl.options, defaults());
            assert!(pl.noatime);
        }
        let f = facts(t.path(), Path::new("/etc"), MutableMode::Import).unwrap();
        assert!(matches!(
            plan(MutableMode::Import, &f, &ext(&["a"]), None),
            Err(PlanError::Loop { .. })
        ));
    }

    #[test]
    fn gather_dangling_symlink_is_no_mutable_dir_for_auto() {
        let t = tree();
        std::fs::create_dir_all(t.path().join("var/lib/extensions.mutable")).unwrap();
        std::os::unix::fs::symlink(
            "/nonexistent",
            t.path().join("var/lib/extensions.mutable/opt"),
        )
        .unwrap();
        let f = facts(t.path(), Path::new("/opt"), MutableMode::Auto).unwrap();
        assert!(f.mutable_dir.is_none());
        assert!(!t.path().join("nonexistent").exists());
        assert!(must_plan(MutableMode::Auto, &f, &ext(&["e"]), None).read_only);
    }

    #[test]
    fn gather_yes_follows_a_dangling_symlink_and_creates_its_target() {
        // CHASE_MKDIR_0755 follows the final symlink, so systemd creates the link target.
        let t = tree();
        std::fs::create_dir_all(t.path().join("var/lib/extensions.mutable")).unwrap();
        std::os::unix::fs::symlink("/upperdir", t.path().join("var/lib/extensions.mutable/opt"))
            .unwrap();
        let f = facts(t.path(), Path::new("/opt"), MutableMode::Yes).unwrap();
        assert!(t.path().join("upperdir").is_dir());
        assert_eq!(f.mutable_dir.unwrap().resolved, p("/upperdir"));
    }

    #[test]
    fn gather_yes_leaves_a_mismatching_existing_dir_alone_and_plan_fails() {
        let t = tree();
        let md = t.path().join("var/lib/extensions.mutable/opt");
        std::fs::create_dir_all(&md).unwrap();
        std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o700)).unwrap();
        let f = facts(t.path(), Path::new("/opt"), MutableMode::Yes).unwrap();
        assert_eq!(mode_of(&md), 0o700);
        assert!(matches!(
            plan(MutableMode::Yes, &f, &ext(&["e"]), None),
            Err(PlanError::ModeMismatch {
                have: 0o700,
                want: 0o755,
                ..
            })
        ));
    }

    #[test]
    fn gather_reports_missing_and_empty_hierarchies() {
        let t = tree();
        let f = facts(t.path(), Path::new("/usr"), MutableMode::No).unwrap();
        assert!(!f.exists && !f.is_empty && f.mode == 0o755);
        std::fs::create_dir(t.path().join("empty")).unwrap();
        assert!(
            facts(t.path(), Path::new("/empty"), MutableMode::No)
                .unwrap()
                .is_empty
        );
        // Hidden files count as content (dir_is_empty(…, ignore_hidden_or_backup=false)).
        std::fs::write(t.path().join("empty/.hidden"), "").unwrap();
        assert!(
            !facts(t.path(), Path::new("/empty"), MutableMode::No)
                .unwrap()
                .is_empty
        );
    }

    #[test]
    fn gather_rejects_a_hierarchy_that_is_not_a_directory() {
        let t = tree();
        std::fs::write(t.path().join("file"), "").unwrap();
        let err = facts(t.path(), Path::new("/file"), MutableMode::No).unwrap_err();
        assert!(format!("{err:#}").contains("not a directory"));
    }
}
