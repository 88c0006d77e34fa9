//! I/O half of the mutable-mode decision: stat the hierarchy and resolve (or create) the
//! mutable directory inside the root, producing the facts `plan()` decides on.

use super::*;

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
