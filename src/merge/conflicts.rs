//! The conflict policy between opening and assembling: report what the accepted layers fight
//! over and, under `refuse`, drop the later extension of each conflict. One rule for the base
//! in `merge`, `refresh` and `check`: where a hierarchy is its own upper dir (Flatcar's `/etc`),
//! its files win over every extension, so it is not compared as the base there.

use crate::decide::conflicts::{self, Conflict, ConflictPolicy};
use crate::decide::reject::Reject;
use crate::gather::snapshot::Snapshot;
use crate::kernel::root::Root;
use crate::merge::open::Opened;
use crate::settings::ClassSettings;
use anyhow::Result;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The hierarchies whose base is compared, and those that are not: their own upper dir, or
/// named in `no_base` (merged, when `check` cannot look below the merge).
fn split_by_base(snap: &Snapshot, no_base: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for f in &snap.facts {
        let self_upper = f
            .mutable_dir
            .as_ref()
            .is_some_and(|m| m.same_inode_as_hierarchy);
        if self_upper || no_base.contains(&f.hierarchy) {
            without.push(f.hierarchy.clone());
        } else {
            with.push(f.hierarchy.clone());
        }
    }
    (with, without)
}

/// The layers as the scanner takes them: name and a path reaching exactly the layer's tree.
fn layer_paths(opened: &Opened) -> Vec<(String, PathBuf)> {
    opened
        .layers
        .iter()
        .map(|l| {
            (
                l.name.clone(),
                crate::kernel::root::proc_fd_path(l.tree.fd().as_fd()),
            )
        })
        .collect()
}

/// Scan the accepted layers of `opened` over the base `root`.
pub fn scan(
    root: &Root,
    snap: &Snapshot,
    no_base: &[PathBuf],
    layers: &[(String, PathBuf)],
) -> Result<Vec<Conflict>> {
    let (with, without) = split_by_base(snap, no_base);
    let base = crate::kernel::root::proc_fd_path(root.fd());
    let mut all = conflicts::scan(layers, Some(&base), &with)?;
    all.extend(conflicts::scan(layers, None, &without)?);
    all.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
    Ok(all)
}

/// Report conflicts and, under `refuse`, drop extensions from `opened`; returns the conflicts.
pub fn apply(
    s: &ClassSettings,
    root: &Root,
    snap: &Snapshot,
    no_base: &[PathBuf],
    opened: &mut Opened,
) -> Result<Vec<Conflict>> {
    if s.check_conflicts == ConflictPolicy::Off || opened.layers.is_empty() {
        return Ok(Vec::new());
    }
    let layers = layer_paths(opened);
    let (found, dropped) = match s.check_conflicts {
        ConflictPolicy::Refuse => {
            let r = conflicts::refuse_with(&layers, |l| scan(root, snap, no_base, l))?;
            (r.conflicts, r.dropped)
        }
        _ => match scan(root, snap, no_base, &layers) {
            Ok(c) => (c, Vec::new()),
            Err(e) => {
                tracing::warn!("Could not check the {}s for conflicts: {e:#}", s.class);
                (Vec::new(), Vec::new())
            }
        },
    };
    for c in &found {
        tracing::warn!(
            CONFLICT = c.kind.as_str(),
            PATH = c.path.as_str(),
            "Conflict in {}: {c} (winner: {}).",
            s.class,
            c.winner
        );
    }
    for (name, reason) in dropped {
        tracing::warn!(
            IMAGE = name.as_str(),
            "Refusing {} '{name}': {reason}",
            s.class
        );
        opened.reject(&name, Reject::Conflict(reason));
    }
    Ok(found)
}
