//! I/O half of the mutable-mode decision: stat the hierarchy and resolve (or create) the
//! mutable directory inside the root, producing the facts `plan()` decides on.

use crate::decide::mutable::*;
use anyhow::Context;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// systemd `path_is_read_only_fs()`: the mount is read-only, or writing would fail with EROFS.
fn path_is_read_only_fs(path: &Path) -> anyhow::Result<bool> {
    let st = rustix::fs::statvfs(path).with_context(|| {
        format!(
            "Failed to determine if '{}' is on a read-only file system",
            path.display()
        )
    })?;
    if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Ok(true);
    }
    // statvfs can miss read-only network shares; access(W_OK) catches those.
    Ok(rustix::fs::access(path, rustix::fs::Access::WRITE_OK) == Err(rustix::io::Errno::ROFS))
}

/// stat (following symlinks) with the path in the error.
fn stat(path: &Path) -> anyhow::Result<std::fs::Metadata> {
    std::fs::metadata(path).with_context(|| format!("Failed to stat '{}'", path.display()))
}

/// Create `path` and its missing parents with mode 0755, like `CHASE_MKDIR_0755`.
fn mkdir_p_0755(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .with_context(|| format!("Failed to create directory '{}'", path.display()))
}

/// I/O: stat the hierarchy inside root and resolve `<root>/var/lib/extensions.mutable/<c>`.
///
/// `yes` creates a missing mutable dir (parents 0755, following a dangling final symlink to its
/// target like `CHASE_MKDIR_0755`, then chmod to the hierarchy's mode); an existing dir is only
/// chmod'ed when its mode already matches, so `plan` still reports the EINVAL systemd gives.
/// `auto`, `import`, `ephemeral-import` only look; `no` and `ephemeral` ignore it (systemd's
/// ephemeral dirs live on its tmpfs workspace, never in the root). Call it for every configured
/// hierarchy, as systemd does, so `yes` creates the dir even where no extension contributes.
pub fn gather_facts(
    root: &Path,
    hierarchy: &Path,
    mode: MutableMode,
) -> anyhow::Result<HierarchyFacts> {
    let root = std::fs::canonicalize(root)
        .with_context(|| format!("Failed to resolve root '{}'", root.display()))?;

    let (hres, exists) = crate::chase::chase_allow_missing(&root, hierarchy)
        .with_context(|| format!("Failed to resolve hierarchy '{}'", hierarchy.display()))?;
    let (hmode, is_empty, read_only_fs, hmeta) = if exists {
        let m = stat(&hres.host)?;
        if !m.is_dir() {
            anyhow::bail!(
                "Hierarchy '{}' ('{}') is not a directory",
                hierarchy.display(),
                hres.host.display()
            );
        }
        let mut entries = std::fs::read_dir(&hres.host).with_context(|| {
            format!(
                "Failed to check if host hierarchy '{}' is empty",
                hres.host.display()
            )
        })?;
        let empty = match entries.next() {
            None => true,
            Some(Ok(_)) => false,
            Some(Err(e)) => {
                return Err(e).with_context(|| {
                    format!("Failed to read host hierarchy '{}'", hres.host.display())
                })
            }
        };
        (
            m.mode() & 0o777,
            empty,
            path_is_read_only_fs(&hres.host)?,
            Some(m),
        )
    } else {
        (0o755, false, false, None)
    };

    let md = mutable_dir_for(hierarchy);
    let mutable_dir = match mode {
        MutableMode::No | MutableMode::Ephemeral => None,
        MutableMode::Yes
        | MutableMode::Auto
        | MutableMode::Import
        | MutableMode::EphemeralImport => {
            if mode == MutableMode::Yes {
                ensure_mutable_dir(&root, &md, hmode)?;
            }
            match crate::chase::chase(&root, &md) {
                Err(e) if e.is_not_found() => {
                    tracing::debug!("Mutable directory '{}' does not exist.", md.display());
                    None
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("Failed to resolve mutable directory '{}'", md.display())
                    })
                }
                Ok(r) => {
                    let m = stat(&r.host)?;
                    if !m.is_dir() {
                        anyhow::bail!(
                            "Mutable directory '{}' ('{}') is not a directory",
                            md.display(),
                            r.host.display()
                        );
                    }
                    let same = r.in_root == hres.in_root
                        || hmeta
                            .as_ref()
                            .is_some_and(|h| h.dev() == m.dev() && h.ino() == m.ino());
                    let parent_same_fs = match r.host.parent() {
                        Some(p) => stat(p)?.dev() == m.dev(),
                        None => false,
                    };
                    Some(MutableDirFacts {
                        resolved: r.in_root,
                        mode: m.mode() & 0o777,
                        same_inode_as_hierarchy: same,
                        on_read_only_fs: path_is_read_only_fs(&r.host)?,
                        parent_same_fs,
                    })
                }
            }
        }
    };

    Ok(HierarchyFacts {
        hierarchy: hierarchy.to_path_buf(),
        resolved: hres.in_root,
        exists,
        is_empty,
        mode: hmode,
        read_only_fs,
        mutable_dir,
    })
}

/// `--mutable=yes`: create the mutable dir when missing and give it the hierarchy's mode.
fn ensure_mutable_dir(root: &Path, md: &Path, hmode: u32) -> anyhow::Result<()> {
    let (target, exists) = crate::chase::chase_allow_missing(root, md)
        .with_context(|| format!("Failed to chase/create base directory '{}'", md.display()))?;
    if exists {
        match std::fs::metadata(&target.host) {
            // Leave a mismatching dir alone: systemd fails with EINVAL before touching it.
            Ok(m) if m.is_dir() && m.mode() & 0o777 != hmode => return Ok(()),
            Ok(m) if !m.is_dir() => {
                anyhow::bail!(
                    "Mutable directory '{}' ('{}') is not a directory",
                    md.display(),
                    target.host.display()
                )
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("Failed to stat '{}'", target.host.display()))
            }
        }
    } else {
        mkdir_p_0755(&target.host)?;
    }
    std::fs::set_permissions(&target.host, std::fs::Permissions::from_mode(hmode)).with_context(
        || {
            format!(
                "Failed to chmod directory '{}' to {hmode:04o}",
                target.host.display()
            )
        },
    )?;
    tracing::debug!(
        "Mutable directory '{}' is ready ({:04o}).",
        target.in_root.display(),
        hmode
    );
    Ok(())
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
        let f = gather_facts(t.path(), Path::new("/opt"), MutableMode::Yes).unwrap();
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
        let f = gather_facts(t.path(), Path::new("/usr"), MutableMode::Yes).unwrap();
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
            let f = gather_facts(t.path(), Path::new("/opt"), mode).unwrap();
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
            assert!(gather_facts(t.path(), Path::new("/opt"), mode)
                .unwrap()
                .mutable_dir
                .is_none());
        }
        for mode in [
            MutableMode::Auto,
            MutableMode::Import,
            MutableMode::EphemeralImport,
        ] {
            assert!(gather_facts(t.path(), Path::new("/opt"), mode)
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
            let f = gather_facts(t.path(), Path::new("/etc"), mode).unwrap();
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
        let f = gather_facts(t.path(), Path::new("/etc"), MutableMode::Import).unwrap();
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
        let f = gather_facts(t.path(), Path::new("/opt"), MutableMode::Auto).unwrap();
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
        let f = gather_facts(t.path(), Path::new("/opt"), MutableMode::Yes).unwrap();
        assert!(t.path().join("upperdir").is_dir());
        assert_eq!(f.mutable_dir.unwrap().resolved, p("/upperdir"));
    }

    #[test]
    fn gather_yes_leaves_a_mismatching_existing_dir_alone_and_plan_fails() {
        let t = tree();
        let md = t.path().join("var/lib/extensions.mutable/opt");
        std::fs::create_dir_all(&md).unwrap();
        std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o700)).unwrap();
        let f = gather_facts(t.path(), Path::new("/opt"), MutableMode::Yes).unwrap();
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
        let f = gather_facts(t.path(), Path::new("/usr"), MutableMode::No).unwrap();
        assert!(!f.exists && !f.is_empty && f.mode == 0o755);
        std::fs::create_dir(t.path().join("empty")).unwrap();
        assert!(
            gather_facts(t.path(), Path::new("/empty"), MutableMode::No)
                .unwrap()
                .is_empty
        );
        // Hidden files count as content (dir_is_empty(…, ignore_hidden_or_backup=false)).
        std::fs::write(t.path().join("empty/.hidden"), "").unwrap();
        assert!(
            !gather_facts(t.path(), Path::new("/empty"), MutableMode::No)
                .unwrap()
                .is_empty
        );
    }

    #[test]
    fn gather_rejects_a_hierarchy_that_is_not_a_directory() {
        let t = tree();
        std::fs::write(t.path().join("file"), "").unwrap();
        let err = gather_facts(t.path(), Path::new("/file"), MutableMode::No).unwrap_err();
        assert!(format!("{err:#}").contains("not a directory"));
    }
}
