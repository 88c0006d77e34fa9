//! `merge` and `refresh`: assemble each class in a private namespace, then attach one tree per
//! hierarchy — on refresh beneath the current one, so the hierarchy never goes empty.

use crate::assemble::{self, AssembleInput, Assembly};
use crate::chase;
use crate::config::ClassSettings;
use crate::identity::HashCache;
use crate::lock;
use crate::meta;
use crate::mountns::{self, AttachError};
use crate::mutable::MutableMode;
use crate::snapshot::{self, Snapshot};
use crate::state::{self, StateFile, STATE_FILE};
use crate::verbs::unmerge;
use anyhow::{bail, Context, Result};
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
    let cache_path = chase::host_path(&s.root, Path::new(snapshot::HASH_CACHE));
    let mut cache = HashCache::load(&cache_path);
    let snap = snapshot::take(s, &mut cache)?;
    if let Err(e) = cache.save(&cache_path) {
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
    let f = p.join(s.class.meta_dir_name()).join(STATE_FILE);
    serde_json::from_slice(&std::fs::read(f).ok()?).ok()
}

/// Copy of the state for humans and tools, next to the run lock.
fn write_run_state(s: &ClassSettings, sf: &StateFile) {
    let p = lock::lock_path_for(&s.root).with_extension(format!("{}.state.json", s.class));
    if let Err(e) = serde_json::to_vec_pretty(sf)
        .map_err(anyhow::Error::from)
        .and_then(|b| std::fs::write(&p, b).with_context(|| format!("writing {}", p.display())))
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
    let assembly = mountns::in_private_namespace(|| {
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
    Ok(assembly)
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
    if let Err(e) = mountns::detach_lazily(&p) {
        tracing::error!("Rolling back a placed overlay failed: {e:#}");
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
    let snap = take_snapshot(s)?;
    let recorded = current.first().and_then(|(_, p)| read_state_file(p, s));
    match &recorded {
        Some(old) => {
            let diffs = state::differences(&old.state, &snap.state);
            let all_still_ours = old
                .merged
                .iter()
                .all(|h| current.iter().any(|(c, _)| c == h));
            if diffs.is_empty() && all_still_ours && !s.always_refresh {
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
        }
        None if !current.is_empty() => {
            tracing::info!(
                CLASS = s.class.name(),
                "Refreshing {}: the current merge carries no extmerge state.",
                s.class
            )
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
/// before any old overlay is removed; if one cannot be placed, those placed are detached again.
fn swap_all(
    s: &ClassSettings,
    assembly: &Assembly,
    current: &[(PathBuf, PathBuf)],
) -> Result<Vec<PathBuf>> {
    let mut placed: Vec<(&OwnedFd, PathBuf, bool)> = Vec::new();
    for t in &assembly.trees {
        let (target, exists) = hierarchy_host_path(s, &t.hierarchy)?;
        let was_ours = current.iter().any(|(h, _)| h == &t.hierarchy);
        let result = if was_ours {
            match mountns::attach_beneath(&t.tree, &target) {
                Ok(()) => Ok(()),
                Err(AttachError::BeneathUnsupported) => {
                    tracing::warn!(
                        "The kernel lacks MOVE_MOUNT_BENEATH (Linux < 6.5): replacing {} non-atomically.",
                        target.display()
                    );
                    unmerge::peel(&target, s.class).and_then(|_| mountns::attach(&t.tree, &target))
                }
                Err(e) => Err(anyhow::Error::new(e)),
            }
        } else {
            (|| {
                if !exists {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(&target)
                        .with_context(|| format!("creating mount point {}", target.display()))?;
                }
                mountns::attach(&t.tree, &target)
            })()
        };
        if let Err(e) = result {
            for (fd, _, _) in &placed {
                detach_by_fd(fd);
            }
            return Err(e.context(format!(
                "placing the new tree for {}; the previous merge was left in place",
                target.display()
            )));
        }
        placed.push((&t.tree, target, was_ours));
    }
    let mut out = Vec::new();
    for ((_, target, was_ours), t) in placed.into_iter().zip(&assembly.trees) {
        if was_ours {
            // The new overlay is already beneath: removing the old top never exposes the bare hierarchy.
            let new_work = meta::read(&target, s.class).ok().flatten();
            if let Some(old) = unmerge::peel(&target, s.class)? {
                let now = meta::read(&target, s.class).ok().flatten().or(new_work);
                if let Some(w) = old
                    .work_dir
                    .filter(|w| now.as_ref().and_then(|n| n.work_dir.as_ref()) != Some(w))
                {
                    unmerge::remove_workdir(&s.root, &w);
                }
            }
        }
        log_merged(t, &target);
        out.push(target);
    }
    Ok(out)
}

/// `merge` for every selected class (confext first); a failing class does not stop the next.
pub fn run(classes: &[ClassSettings]) -> Result<i32> {
    super::for_each_class_locked(classes, "merge", merge_class).map(|(code, _)| code)
}

/// `refresh` for every selected class; exits with [`super::EXIT_SKIPPED`] when every class was
/// skipped or had nothing to do and at least one was skipped.
pub fn run_refresh(classes: &[ClassSettings]) -> Result<i32> {
    let (code, outcomes) = super::for_each_class_locked(classes, "refresh", refresh_class)?;
    let skipped = outcomes.contains(&Outcome::Skipped);
    let changed = outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Merged(_) | Outcome::Unmerged(_)));
    Ok(if code == super::EXIT_SUCCESS && skipped && !changed {
        super::EXIT_SKIPPED
    } else {
        code
    })
}
