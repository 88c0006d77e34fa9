//! Taking merges apart: `unmerge`, the peel of a replaced merge during `refresh`, and the work
//! dirs a merge leaves behind. Only overlays whose meta `dev` matches the mount are touched
//! (extmerge's own or systemd-sysext's), each through an fd resolved inside the root.

use crate::class::ImageClass;
use crate::decide::mutable::mutable_dir_for;
use crate::kernel::mounts;
use crate::kernel::root::Root;
use crate::meta::{self, Merged, MetaInfo};
use crate::settings::ClassSettings;
use anyhow::{Context, Result};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The merges of `s.class` on its hierarchies now, in hierarchy order.
pub fn current(root: &Root, s: &ClassSettings) -> Result<Vec<Merged>> {
    let mut out = Vec::new();
    for h in &s.hierarchies {
        if let Some(m) = meta::inspect(root, h, s.class)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// Lazily detach the merge on top of `hierarchy` (if it is one of ours), putting back any
/// submount the detach would take with it; returns what its meta dir said.
pub fn peel(root: &Root, hierarchy: &Path, class: ImageClass) -> Result<Option<MetaInfo>> {
    let Some(m) = meta::inspect(root, hierarchy, class)? else {
        return Ok(None);
    };
    // systemd moves submounts into its overlays: keep copies and put them back where the detach
    // would otherwise lose them (ours leave the originals underneath: nothing to do then).
    let meta_dir = m.shown.join(class.meta_dir_name());
    let mut saved = Vec::new();
    for sub in mounts::submounts(&m.shown)? {
        if sub.starts_with(&meta_dir) {
            continue;
        }
        let Ok(rel) = sub.strip_prefix(&m.shown) else {
            continue;
        };
        let rel = rel.to_path_buf();
        let Ok(found) = root.resolve_nofollow(&hierarchy.join(&rel)) else {
            continue;
        };
        saved.push((rel, mounts::clone_tree_fd(found.fd.as_fd(), &sub)?));
    }
    mounts::detach_fd(m.top.fd.as_fd(), &m.shown)?;
    for (rel, fd) in saved {
        let Ok(target) = root.resolve_nofollow(&hierarchy.join(&rel)) else {
            continue;
        };
        if !mounts::is_mount_point_fd(target.fd.as_fd()).unwrap_or(true) {
            let shown = root.show(&target.in_root);
            if let Err(e) = mounts::attach_at(fd.as_fd(), target.fd.as_fd(), &shown) {
                tracing::warn!(
                    "Could not restore mount {} after unmerge: {e:#}",
                    shown.display()
                );
            }
        }
    }
    Ok(Some(m.info))
}

/// Peel every merge of the class off its hierarchies (in a private namespace: so the host
/// hierarchies are the bottom layers again for assembly; the caller's view is untouched).
pub fn peel_all(root: &Root, s: &ClassSettings) -> Result<()> {
    for h in &s.hierarchies {
        while peel(root, h, s.class)?.is_some() {}
    }
    Ok(())
}

/// Whether a work dir's recorded place is the one the hierarchy's mutable dir gives it now:
/// next to the resolved upper dir. Anything else is not removed.
fn work_dir_in_place(root: &Root, hierarchy: &Path, work: &Path) -> Result<(), String> {
    let md = mutable_dir_for(hierarchy);
    let upper = root.resolve(&md).map_err(|e| {
        format!(
            "its mutable directory {} cannot be resolved ({e})",
            md.display()
        )
    })?;
    if upper.in_root.parent() == work.parent() {
        Ok(())
    } else {
        Err(format!(
            "it is not next to the mutable directory {} (resolved to {})",
            md.display(),
            upper.in_root.display()
        ))
    }
}

/// Remove the work dir `work` (already validated by [`meta::read_info`]) and every work dir a
/// failed or killed refresh left next to it (the same name plus `-` and 16 hex digits), except
/// `keep`, which a mounted overlay uses. Failures are warnings: a leftover work dir costs space,
/// never correctness.
pub fn remove_stale_workdirs(root: &Root, hierarchy: &Path, work: &Path, keep: Option<&Path>) {
    if let Err(why) = work_dir_in_place(root, hierarchy, work) {
        tracing::warn!(
            "Not removing the recorded work dir {}: {why}.",
            root.show(work).display()
        );
        return;
    }
    let (Some(parent), Some(name)) = (work.parent(), work.file_name()) else {
        return;
    };
    let name = name.as_bytes();
    let is_suffix = |x: &[u8]| x.len() == 16 && x.iter().all(u8::is_ascii_hexdigit);
    let base = match name.iter().rposition(|b| *b == b'-') {
        Some(i) if is_suffix(&name[i + 1..]) => &name[..i],
        _ => name,
    };
    let Ok(dir) = root.resolve(parent) else {
        return;
    };
    let Ok(entries) = crate::gather::discover::list_dir(&dir) else {
        return;
    };
    for n in entries {
        let b = n.as_bytes();
        let ours = b == base
            || b.strip_prefix(base)
                .and_then(|x| x.strip_prefix(b"-"))
                .is_some_and(is_suffix);
        let w = parent.join(&n);
        if !ours || Some(w.as_path()) == keep {
            continue;
        }
        match root.remove_tree(parent, &n) {
            Ok(_) => tracing::debug!("Removed work dir {}.", root.show(&w).display()),
            Err(e) => tracing::warn!(
                "Could not remove work dir {}: {e:#}",
                root.show(&w).display()
            ),
        }
    }
}

/// Peel the merge on `hierarchy` and remove the work dirs no overlay uses any more.
pub fn peel_and_clean(root: &Root, hierarchy: &Path, class: ImageClass) -> Result<bool> {
    let Some(old) = peel(root, hierarchy, class)? else {
        return Ok(false);
    };
    // Without the uncovered merge's meta there is no telling which work dir it uses: keep them.
    let now = match meta::inspect(root, hierarchy, class) {
        Ok(now) => now.and_then(|n| n.info.work_dir),
        Err(_) => return Ok(true),
    };
    if let Some(w) = old.work_dir.as_ref().or(now.as_ref()) {
        remove_stale_workdirs(root, hierarchy, w, now.as_deref());
    }
    Ok(true)
}

/// Remove one merged overlay from `hierarchy`, keeping the submounts it carried.
pub fn unmerge_one(root: &Root, class: ImageClass, hierarchy: &Path) -> Result<()> {
    crate::failpoint::hit_with("before-unmerge", hierarchy.display())?;
    let shown = root.show(hierarchy);
    if peel_and_clean(root, hierarchy, class)? {
        crate::failpoint::hit_with("after-unmerge", hierarchy.display())?;
        tracing::info!(HIERARCHY = %shown.display(), "Unmerged '{}'.", shown.display());
    }
    Ok(())
}

/// How many merges of `class` are stacked directly on each other at the top of the mount
/// `top_id` (from the mount table: each one's parent is the merge below it at the same path).
///
/// A copy of a merge propagated to a peer mount (with `/` shared and the hierarchy bind-mounted
/// onto itself, the copy lands on `/` below the bind) is not on the stack: its parent is not a
/// merge. Only a real stack (a refresh killed after placing its tree beneath) counts.
pub fn stack_depth(table: &[mounts::MountInfo], top_id: u64, class: ImageClass) -> usize {
    let ours = |m: &mounts::MountInfo| m.fstype == "overlay" && m.source == class.overlay_source();
    let Some(mut cur) = table.iter().find(|m| m.mount_id == top_id && ours(m)) else {
        return 0;
    };
    let mut depth = 1;
    // Bounded by the table: a malformed (cyclic) table cannot loop forever.
    for _ in 0..table.len() {
        match table.iter().find(|p| {
            p.mount_id == cur.parent_id
                && p.mount_id != cur.mount_id
                && p.mount_point == cur.mount_point
        }) {
            Some(parent) if ours(parent) => {
                depth += 1;
                cur = parent;
            }
            _ => break,
        }
    }
    depth
}

/// Reduce a stack of our merges on `hierarchy` to one. A refresh killed (or failing to
/// unmount the old top) after placing its tree beneath leaves two; every one of them is a
/// complete merge, so peeling the top shows the one beneath, never a bare hierarchy. Returns
/// the merge left on it (as [`current`] would find it), if any.
pub fn peel_stale_stack(
    root: &Root,
    s: &ClassSettings,
    hierarchy: &Path,
) -> Result<Option<Merged>> {
    loop {
        let Some(m) = meta::inspect(root, hierarchy, s.class)? else {
            return Ok(None);
        };
        let id = rustix::fs::statx(
            &m.top.fd,
            "",
            rustix::fs::AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::MNT_ID,
        )
        .map_err(std::io::Error::from)
        .with_context(|| format!("statx {}", m.shown.display()))?
        .stx_mnt_id;
        if stack_depth(&mounts::mountinfo()?, id, s.class) < 2 {
            return Ok(Some(m));
        }
        tracing::info!(
            "Removing the older of the merges stacked on {} by an interrupted refresh.",
            m.shown.display()
        );
        peel_and_clean(root, hierarchy, s.class)?;
    }
}

/// Unmerge every hierarchy of one class, peeling stacked merges; returns what was unmerged.
pub fn unmerge_class(s: &ClassSettings) -> Result<Vec<PathBuf>> {
    let root = Root::open(&s.root)?;
    // What the merged extensions ask of the service manager is read before they go, and asked
    // for once they are gone (nothing with --no-reload or --root).
    let actions = crate::manager::collect(&root, s)?;
    let mut done = Vec::new();
    for h in &s.hierarchies {
        while let Some(m) = meta::inspect(&root, h, s.class)
            .with_context(|| format!("not unmerging {}", root.show(h).display()))?
        {
            unmerge_one(&root, s.class, h)?;
            done.push(m.shown);
        }
    }
    super::record::remove_run_state(s);
    crate::manager::apply(&actions)?;
    Ok(done)
}

/// `unmerge` for every selected class.
pub fn run(classes: &[ClassSettings]) -> Result<i32> {
    crate::verbs::for_each_class_locked(classes, "unmerge", unmerge_class).map(|(code, _)| code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::mounts::parse_mountinfo;

    #[test]
    fn a_propagated_copy_is_not_a_stack_but_a_merge_on_a_merge_is() {
        // `/` shared, /opt bind-mounted read-only onto itself, a sysext merged on /opt: the
        // merge (40, on the bind 30) also propagated onto `/` (41, below the bind).
        let table = parse_mountinfo(
            b"1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n\
              30 1 8:1 /opt /opt ro shared:1 - ext4 /dev/sda1 rw\n\
              41 1 0:50 / /opt ro shared:2 - overlay sysext ro\n\
              40 30 0:50 / /opt ro shared:2 - overlay sysext ro\n",
        )
        .unwrap();
        assert_eq!(stack_depth(&table, 40, ImageClass::Sysext), 1);
        // A killed refresh: the new merge (50) beneath the old top (51).
        let table = parse_mountinfo(
            b"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
              50 1 0:60 / /opt ro - overlay sysext ro\n\
              51 50 0:61 / /opt ro - overlay sysext ro\n",
        )
        .unwrap();
        assert_eq!(stack_depth(&table, 51, ImageClass::Sysext), 2);
        assert_eq!(stack_depth(&table, 51, ImageClass::Confext), 0);
        assert_eq!(stack_depth(&table, 99, ImageClass::Sysext), 0);
    }
}
