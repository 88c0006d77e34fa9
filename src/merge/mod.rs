//! `merge` and `refresh`: assemble each class in a private namespace, then attach one tree per
//! hierarchy — on refresh beneath the current one, so the hierarchy never goes empty.

pub mod assemble;
pub mod unmerge;

use crate::chase;
use crate::decide::mutable::MutableMode;
use crate::decide::state::{self, StateFile, STATE_FILE};
use crate::failpoint;
use crate::gather::identity::HashCache;
use crate::gather::snapshot::{self, Snapshot};
use crate::kernel::lock;
use crate::kernel::mounts::{self, AttachError};
use crate::kernel::namespace;
use crate::meta;
use crate::settings::ClassSettings;
use anyhow::{bail, Context, Result};
use assemble::{AssembleInput, Assembly};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a class merge or refresh ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Overlays were attached (or replaced) on these hierarchies (host paths).
    Merged(Vec<PathBuf>),
    /// Nothing changed since the last merge; nothing was touched.
    Skipped,
    /// Nothing left to merge: these hierarchies were unmerged.
    Unmerged(Vec<PathBuf>),
    /// Nothing to merge (no or no suitable extensions, mutable mode off).
    NothingToDo,
}

/// Host path of a hierarchy inside the root (the would-be path if it does not exist yet).
pub fn hierarchy_host_path(s: &ClassSettings, h: &Path) -> Result<(PathBuf, bool)> {
    let (r, exists) = chase::chase_allow_missing(&s.root, h).with_context(|| {
        format!(
            "resolving hierarchy {} inside {}",
            h.display(),
            s.root.display()
        )
    })?;
    Ok((r.host, exists))
}

fn take_snapshot(s: &ClassSettings) -> Result<Snapshot> {
    let cache_path = chase::host_path(&s.root, &snapshot::hash_cache_path(s.class));
    let mut cache = HashCache::load(&cache_path);
    let snap = snapshot::take(s, &mut cache)?;
    failpoint::hit("snapshot-taken")?;
    // The cache is only an optimisation: failing to save it (even by failpoint) is a warning.
    if let Err(e) = cache
        .save_if_changed(&cache_path)
        .and_then(|_| failpoint::hit("hash-cache-saved"))
    {
        tracing::warn!("Could not save the image hash cache: {e:#}");
    }
    Ok(snap)
}

/// Hierarchies of the class currently merged by us or systemd: (in-root, host path).
fn merged_hierarchies(s: &ClassSettings) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    for h in &s.hierarchies {
        let (p, exists) = hierarchy_host_path(s, h)?;
        if exists && meta::is_ours(&p, s.class)? {
            out.push((h.clone(), p));
        }
    }
    Ok(out)
}

fn read_state_file(p: &Path, s: &ClassSettings) -> Option<StateFile> {
    read_state_record(p, s).ok().flatten()
}

/// The state record of the merge at `p`: `Ok(None)` when there is none (systemd's merge, or
/// an older extmerge), `Err` naming the file when it is there but unreadable or malformed.
fn read_state_record(p: &Path, s: &ClassSettings) -> Result<Option<StateFile>> {
    let f = p.join(s.class.meta_dir_name()).join(STATE_FILE);
    let bytes = match std::fs::read(&f) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", f.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("parsing {}", f.display()))
}

/// Copy of the state for humans and tools, next to the run lock.
fn write_run_state(s: &ClassSettings, sf: &StateFile) {
    let p = lock::lock_path_for(&s.root).with_extension(format!("{}.state.json", s.class));
    if let Err(e) = failpoint::hit("before-write-run-state")
        .and_then(|()| serde_json::to_vec_pretty(sf).map_err(anyhow::Error::from))
        .and_then(|b| std::fs::write(&p, b).with_context(|| format!("writing {}", p.display())))
        .and_then(|()| failpoint::hit("after-write-run-state"))
    {
        tracing::warn!("Could not write {}: {e:#}", p.display());
    }
}

fn assemble_for(
    s: &ClassSettings,
    snap: &Snapshot,
    refresh: bool,
    busy: Vec<PathBuf>,
) -> Result<Assembly> {
    let assembly = namespace::in_private_namespace(|| {
        assemble::assemble_in_private_namespace(
            s,
            AssembleInput {
                host: &snap.host,
                candidates: &snap.found.images,
                origin_ids: &snap.origin_ids,
                state: &snap.state,
                refresh,
                busy_workdirs: busy,
            },
        )
    })?;
    failpoint::hit("assembled")?;
    let ignored = assembly.rejected.iter().filter(|r| !r.error).count();
    if assembly.accepted.is_empty() && s.mutable == MutableMode::No {
        tracing::info!(
            "No suitable extensions found ({ignored} ignored due to incompatible image(s))."
        );
    } else if assembly.accepted.is_empty() {
        tracing::info!("No extensions found, proceeding in mutable mode.");
    } else {
        let names: Vec<String> = assembly
            .accepted
            .iter()
            .map(|a| format!("'{}'", a.name))
            .collect();
        tracing::info!("Using extensions {}.", names.join(", "));
    }
    let missing = missing_required(s, &assembly);
    if !missing.is_empty() {
        // Before anything is attached: the hierarchies keep what they have (a previous merge
        // with the required extension stays in place), and the assembled trees go with `assembly`.
        bail!(
            "not merging: required {} (Require= in {}.conf) cannot be used: {}; the hierarchies are left as they are",
            s.class,
            s.class.config_base(),
            missing.join("; ")
        );
    }
    Ok(assembly)
}

/// The `Require=`d extensions the assembly leaves out, each with why.
fn missing_required(s: &ClassSettings, assembly: &Assembly) -> Vec<String> {
    s.require
        .iter()
        .filter(|n| !assembly.accepted.iter().any(|a| &a.name == *n))
        .map(|n| match assembly.rejected.iter().find(|r| &r.name == n) {
            Some(r) => format!("'{n}' ({})", r.reason),
            None => format!("'{n}' (not found in any {} directory)", s.class),
        })
        .collect()
}

fn log_merged(t: &assemble::HierarchyTree, target: &Path) {
    tracing::info!(
        HIERARCHY = %target.display(),
        LAYERS = t.layers.join(" ").as_str(),
        "Merged extensions into '{}'{}.",
        target.display(),
        if t.self_upper {
            " (writable, the hierarchy is its own upper dir)"
        } else if t.writable {
            " (writable)"
        } else {
            ""
        }
    );
}

/// Detach a mount by the fd it was attached from (it may be covered by another mount).
fn detach_by_fd(fd: &OwnedFd) {
    let p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    // Without UMOUNT_NOFOLLOW: the magic link must be followed to the mount it names.
    if let Err(e) = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH) {
        tracing::error!(
            "Rolling back a placed overlay failed: lazily unmounting {}: {e}",
            p.display()
        );
    }
}

/// Merge one class; refuses hierarchies that are already merged (systemd's EBUSY).
pub fn merge_class(s: &ClassSettings) -> Result<Outcome> {
    let started = Instant::now();
    if let Some((_, p)) = merged_hierarchies(s)?.first() {
        bail!("Hierarchy '{}' is already merged.", p.display());
    }
    let snap = take_snapshot(s)?;
    if snap.found.images.is_empty() && s.mutable == MutableMode::No {
        tracing::info!(
            "No {} found.",
            if s.class == crate::class::ImageClass::Sysext {
                "extensions"
            } else {
                "confexts"
            }
        );
        return Ok(Outcome::NothingToDo);
    }
    let assembly = assemble_for(s, &snap, false, Vec::new())?;
    if assembly.accepted.is_empty() && s.mutable == MutableMode::No {
        return Ok(Outcome::NothingToDo);
    }
    let attached = swap_all(s, &assembly, &[])?;
    write_run_state(
        s,
        &StateFile {
            state: snap.state,
            merged: assembly.trees.iter().map(|t| t.hierarchy.clone()).collect(),
        },
    );
    tracing::info!(
        CLASS = s.class.name(),
        DURATION_US = started.elapsed().as_micros() as u64,
        "Merged {} {}(s) into {} hierarch{} in {} ms.",
        assembly.accepted.len(),
        s.class,
        attached.len(),
        if attached.len() == 1 { "y" } else { "ies" },
        started.elapsed().as_millis()
    );
    Ok(Outcome::Merged(attached))
}

/// Refresh one class: skip if nothing changed, else replace each overlay atomically, or unmerge
/// when nothing is left.
pub fn refresh_class(s: &ClassSettings) -> Result<Outcome> {
    let started = Instant::now();
    let current = merged_hierarchies(s)?;
    for (_, p) in &current {
        peel_stale_stack(s, p)?;
    }
    let snap = take_snapshot(s)?;
    let recorded = current.first().and_then(|(_, p)| read_state_file(p, s));
    match &recorded {
        Some(old) => {
            let diffs = state::differences(&old.state, &snap.state);
            let all_still_ours = old
                .merged
                .iter()
                .all(|h| current.iter().any(|(c, _)| c == h));
            // A run that failed or was killed between hierarchies leaves some new and some old.
            let coherent = current.iter().all(|(h, p)| {
                old.merged.contains(h) && read_state_file(p, s).as_ref() == Some(old)
            });
            if diffs.is_empty() && all_still_ours && coherent && !s.always_refresh {
                tracing::info!(
                    CLASS = s.class.name(),
                    DURATION_US = started.elapsed().as_micros() as u64,
                    "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh."
                );
                return Ok(Outcome::Skipped);
            }
            for d in &diffs {
                tracing::info!(CLASS = s.class.name(), "Refreshing {}: {d}.", s.class);
            }
            if !all_still_ours {
                tracing::info!(
                    CLASS = s.class.name(),
                    "Refreshing {}: a merged hierarchy is no longer ours.",
                    s.class
                );
            }
            if !coherent {
                tracing::info!(
                    CLASS = s.class.name(),
                    "Refreshing {}: the merged hierarchies do not carry the same state.",
                    s.class
                );
            }
        }
        None if !current.is_empty() => {
            match current.first().map(|(_, p)| read_state_record(p, s)) {
                Some(Err(e)) => tracing::warn!(
                    CLASS = s.class.name(),
                    "Refreshing {}: the state record of the current merge is unusable ({e:#}); re-merging.",
                    s.class
                ),
                _ => tracing::info!(
                    CLASS = s.class.name(),
                    "Refreshing {}: the current merge carries no extmerge state.",
                    s.class
                ),
            }
        }
        None => {}
    }
    if snap.found.images.is_empty() && s.mutable == MutableMode::No {
        return unmerge_rest(s, &current, &[]);
    }
    let busy: Vec<PathBuf> = current
        .iter()
        .filter_map(|(_, p)| {
            meta::read(p, s.class)
                .ok()
                .flatten()
                .and_then(|i| i.work_dir)
        })
        .collect();
    let assembly = assemble_for(s, &snap, true, busy)?;
    if assembly.accepted.is_empty() && s.mutable == MutableMode::No {
        return unmerge_rest(s, &current, &[]);
    }
    let swapped = swap_all(s, &assembly, &current)?;
    let kept: Vec<PathBuf> = assembly.trees.iter().map(|t| t.hierarchy.clone()).collect();
    unmerge_rest(s, &current, &kept)?;
    write_run_state(
        s,
        &StateFile {
            state: snap.state,
            merged: kept,
        },
    );
    tracing::info!(
        CLASS = s.class.name(),
        DURATION_US = started.elapsed().as_micros() as u64,
        "Refreshed {} {}(s) in {} ms.",
        assembly.accepted.len(),
        s.class,
        started.elapsed().as_millis()
    );
    Ok(Outcome::Merged(swapped))
}

/// Unmerge the currently merged hierarchies that are not in `keep`.
fn unmerge_rest(
    s: &ClassSettings,
    current: &[(PathBuf, PathBuf)],
    keep: &[PathBuf],
) -> Result<Outcome> {
    let mut gone = Vec::new();
    for (h, p) in current.iter().filter(|(h, _)| !keep.contains(h)) {
        while meta::is_ours(p, s.class)? {
            unmerge::unmerge_one(s, p)?;
        }
        gone.push(h.clone());
    }
    Ok(if gone.is_empty() {
        Outcome::NothingToDo
    } else {
        Outcome::Unmerged(gone)
    })
}

/// Put each new tree in place: beneath the current overlay (then peel the old top), or plainly
/// on a hierarchy that is not merged (`current` empty: a plain merge). All trees are placed
/// before any old overlay is removed; if one cannot be placed, those placed plainly are detached
/// again and those placed beneath are completed (a tree beneath another cannot be taken out
/// alone), so every hierarchy shows exactly its old or its new merge.
fn swap_all(
    s: &ClassSettings,
    assembly: &Assembly,
    current: &[(PathBuf, PathBuf)],
) -> Result<Vec<PathBuf>> {
    let mut placed: Vec<(&OwnedFd, PathBuf, bool)> = Vec::new();
    for t in &assembly.trees {
        let (target, exists) = hierarchy_host_path(s, &t.hierarchy)?;
        let h = t.hierarchy.display();
        let was_ours = current.iter().any(|(h, _)| h == &t.hierarchy);
        let result = if was_ours {
            // Ok(true): placed beneath the old top, which is still to be peeled.
            failpoint::hit_with("before-attach-beneath", &h).and_then(|()| {
                match mounts::attach_beneath(&t.tree, &target) {
                    Ok(()) => Ok(true),
                    Err(AttachError::BeneathUnsupported) => {
                        tracing::warn!(
                            "The kernel lacks MOVE_MOUNT_BENEATH (Linux < 6.5): replacing {} non-atomically.",
                            target.display()
                        );
                        unmerge::peel(&target, s.class)
                            .and_then(|_| mounts::attach(&t.tree, &target))
                            .map(|()| false)
                    }
                    Err(e) => Err(anyhow::Error::new(e)),
                }
            })
        } else {
            (|| {
                if !exists {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(&target)
                        .with_context(|| format!("creating mount point {}", target.display()))?;
                }
                failpoint::hit_with("before-attach", &h)?;
                mounts::attach(&t.tree, &target).map(|()| false)
            })()
        };
        // Once attached, the tree is rolled back with the others if a later step fails.
        let result = result.and_then(|beneath| {
            placed.push((&t.tree, target.clone(), beneath));
            let step = if beneath {
                "after-attach-beneath"
            } else {
                "after-attach"
            };
            failpoint::hit_with(step, h)
        });
        if let Err(e) = result {
            for (fd, target, beneath) in &placed {
                if *beneath {
                    // A tree beneath the old top cannot be taken out without the old top (an
                    // unmount through the fd's magic link even lands on the old top): finish that
                    // hierarchy's replacement instead, so it shows the new merge, not a stack.
                    if let Err(e) = peel_old_top(s, target) {
                        tracing::error!(
                            "Completing the replacement of {}: {e:#}",
                            target.display()
                        );
                    }
                } else {
                    detach_by_fd(fd);
                }
            }
            return Err(e.context(format!(
                "placing the new tree for {}; hierarchies not yet replaced keep the previous merge",
                target.display()
            )));
        }
    }
    let mut out = Vec::new();
    let mut failed = None;
    for ((_, target, beneath), t) in placed.into_iter().zip(&assembly.trees) {
        if beneath {
            let h = t.hierarchy.display();
            // The new overlay is already beneath: removing the old top never exposes the bare
            // hierarchy. A failure here leaves the old one on top; the other hierarchies go on.
            let peeled = failpoint::hit_with("before-unmount-old", &h)
                .and_then(|()| peel_old_top(s, &target))
                .and_then(|()| failpoint::hit_with("after-unmount-old", &h));
            if let Err(e) = peeled {
                let e = e.context(format!(
                    "removing the replaced merge from {}",
                    target.display()
                ));
                tracing::error!("{e:#}");
                failed.get_or_insert(e);
                continue;
            }
        }
        log_merged(t, &target);
        out.push(target);
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Peel the old top off `target`, uncovering the tree beneath it, and remove the work dirs no
/// overlay uses any more (the old one's, and any a failed or killed refresh left behind).
fn peel_old_top(s: &ClassSettings, target: &Path) -> Result<()> {
    let Some(old) = unmerge::peel(target, s.class)? else {
        return Ok(());
    };
    // Without the uncovered merge's meta there is no telling which work dir it uses: keep them.
    let Ok(now) = meta::read(target, s.class) else {
        return Ok(());
    };
    let now = now.and_then(|n| n.work_dir);
    if let Some(w) = old.work_dir.as_ref().or(now.as_ref()) {
        unmerge::remove_stale_workdirs(&s.root, w, now.as_deref());
    }
    Ok(())
}

/// Reduce a stack of our merges on `p` to one. A refresh killed (or failing to unmount the old
/// top) after placing its tree beneath leaves two; every one of them is a complete merge, so
/// peeling the top shows the one beneath, never a bare or half-merged hierarchy.
fn peel_stale_stack(s: &ClassSettings, p: &Path) -> Result<()> {
    let stacked = || -> Result<usize> {
        Ok(mounts::mountinfo()?
            .iter()
            .filter(|m| m.mount_point == p && m.fstype == "overlay")
            .filter(|m| m.source == s.class.overlay_source())
            .count())
    };
    while stacked()? > 1 && meta::is_ours(p, s.class)? {
        tracing::info!(
            "Removing the older of the merges stacked on {} by an interrupted refresh.",
            p.display()
        );
        peel_old_top(s, p)?;
    }
    Ok(())
}

/// `merge` for every selected class (confext first); a failing class does not stop the next.
pub fn run(classes: &[ClassSettings]) -> Result<i32> {
    crate::verbs::for_each_class_locked(classes, "merge", merge_class).map(|(code, _)| code)
}

/// `refresh` for every selected class; exits with [`crate::verbs::EXIT_SKIPPED`] when every class was
/// skipped or had nothing to do and at least one was skipped.
pub fn run_refresh(classes: &[ClassSettings]) -> Result<i32> {
    let (code, outcomes) = crate::verbs::for_each_class_locked(classes, "refresh", refresh_class)?;
    let skipped = outcomes.contains(&Outcome::Skipped);
    let changed = outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Merged(_) | Outcome::Unmerged(_)));
    Ok(
        if code == crate::verbs::EXIT_SUCCESS && skipped && !changed {
            crate::verbs::EXIT_SKIPPED
        } else {
            code
        },
    )
}
