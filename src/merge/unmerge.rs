//! `unmerge`: remove overlays made by extmerge or systemd-sysext (never anything else).

use crate::chase::{self, host_path};
use crate::kernel::mounts;
use crate::meta;
use crate::settings::ClassSettings;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Remove one merged overlay from `p`, keeping the submounts it carried.
pub fn unmerge_one(s: &ClassSettings, p: &Path) -> Result<()> {
    let h = chase::strip_root(&s.root, p);
    crate::failpoint::hit_with("before-unmerge", h.display())?;
    let info = peel(p, s.class)?;
    if let Some(work) = info.and_then(|i| i.work_dir) {
        // A merge still stacked underneath may use one of them.
        let keep = meta::read(p, s.class)
            .ok()
            .flatten()
            .and_then(|i| i.work_dir);
        remove_stale_workdirs(&s.root, &work, keep.as_deref());
    }
    crate::failpoint::hit_with("after-unmerge", h.display())?;
    tracing::info!(HIERARCHY = %p.display(), "Unmerged '{}'.", p.display());
    Ok(())
}

/// Lazily detach the top overlay at `p` (which must be ours), putting back any submount the
/// detach would take with it; returns what its meta dir said.
pub fn peel(p: &Path, class: crate::class::ImageClass) -> Result<Option<meta::MetaInfo>> {
    let info = meta::read(p, class)?;
    let meta_dir = p.join(class.meta_dir_name());
    // systemd moves submounts into its overlays, so keep copies and put them back where the
    // detach would otherwise lose them (ours leave the originals underneath: nothing to do then).
    let mut saved = Vec::new();
    for sub in mounts::submounts(p)? {
        if sub.starts_with(&meta_dir) {
            continue;
        }
        saved.push((sub.clone(), mounts::clone_tree(&sub)?));
    }
    mounts::detach_lazily(p)?;
    for (sub, fd) in saved {
        if sub.exists() && !mounts::is_mount_point(&sub).unwrap_or(true) {
            if let Err(e) = mounts::attach(&fd, &sub) {
                tracing::warn!(
                    "Could not restore mount {} after unmerge: {e:#}",
                    sub.display()
                );
            }
        }
    }
    Ok(info)
}

/// Remove a recorded workdir, but only one that is plainly an overlay workdir inside the root.
pub fn remove_workdir(root: &Path, work: &Path) {
    let name = work
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !(name.starts_with(".systemd-") && name.contains("-workdir")) {
        tracing::warn!(
            "Not removing recorded work dir {}: not an overlay work dir name.",
            work.display()
        );
        return;
    }
    let p = host_path(root, work);
    match std::fs::remove_dir_all(&p) {
        Ok(()) => tracing::debug!("Removed work dir {}.", p.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("Could not remove work dir {}: {e}", p.display()),
    }
}

/// Remove `work` and every work dir a failed or killed refresh left next to it (the same name plus
/// `-` and 16 hex digits: `assemble::fresh_workdir`), except `keep`, which a mounted overlay uses.
pub fn remove_stale_workdirs(root: &Path, work: &Path, keep: Option<&Path>) {
    let (Some(parent), Some(name)) = (work.parent(), work.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let is_suffix = |x: &str| x.len() == 16 && x.bytes().all(|b| b.is_ascii_hexdigit());
    let base = match name.rsplit_once('-') {
        Some((b, x)) if is_suffix(x) => b,
        _ => &name,
    };
    let Ok(entries) = std::fs::read_dir(host_path(root, parent)) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let ours = n == base
            || n.strip_prefix(base)
                .and_then(|x| x.strip_prefix('-'))
                .is_some_and(is_suffix);
        let w = parent.join(&n);
        if ours && Some(w.as_path()) != keep {
            remove_workdir(root, &w);
        }
    }
}

/// Unmerge every hierarchy of one class, peeling stacked merges; returns what was unmerged.
pub fn unmerge_class(s: &ClassSettings) -> Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    for h in &s.hierarchies {
        let p = match chase::chase(&s.root, h) {
            Ok(r) => r.host,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("resolving hierarchy {}", h.display()))
            }
        };
        while meta::is_ours(&p, s.class)? {
            unmerge_one(s, &p)?;
            done.push(p.clone());
        }
    }
    Ok(done)
}

/// `unmerge` for every selected class.
pub fn run(classes: &[ClassSettings]) -> Result<i32> {
    crate::verbs::for_each_class_locked(classes, "unmerge", unmerge_class).map(|(code, _)| code)
}
