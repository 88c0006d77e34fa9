//! The conflict policy between opening and assembling: report what the accepted layers fight
//! over and, under `refuse`, drop the later extension of each conflict, and any extension the
//! walk cannot judge. One rule for the base in `merge`, `refresh` and `check`: where a hierarchy
//! is its own upper dir (Flatcar's `/etc`), its files win over every extension, so it is not
//! compared as the base there.

use crate::decide::conflicts::{refuse_scanned, Conflict, ConflictPolicy, Scanned};
use crate::decide::reject::Reject;
use crate::gather::conflicts::{scan, LayerTree};
use crate::gather::snapshot::Snapshot;
use crate::gather::walk::Limits;
use crate::kernel::root::Root;
use crate::merge::open::Opened;
use crate::settings::ClassSettings;
use anyhow::Result;
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

/// Scan `layers` over the base `root` (with base) and without it.
fn scan_layers(
    root: &Root,
    (with, without): &(Vec<PathBuf>, Vec<PathBuf>),
    layers: &[(String, LayerTree<'_>)],
) -> Scanned {
    let limits = Limits::default();
    let mut found = scan(layers, Some(root), with, &limits);
    found.absorb(scan(layers, None, without, &limits));
    found
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
    let split = split_by_base(snap, no_base);
    let layers: Vec<(String, LayerTree<'_>)> = opened
        .layers
        .iter()
        .map(|l| {
            let tree = LayerTree {
                root: &l.tree,
                no_xattrs: l.no_xattrs,
            };
            (l.name.clone(), tree)
        })
        .collect();
    let mut looked_up = 0;
    let (found, dropped) = match s.check_conflicts {
        ConflictPolicy::Refuse => {
            let r = refuse_scanned(&layers, |l| {
                let scanned = scan_layers(root, &split, l);
                looked_up += scanned.looked_up;
                Ok::<_, std::convert::Infallible>(scanned)
            });
            let r = match r {
                Ok(r) => r,
                Err(never) => match never {},
            };
            (r.conflicts, r.dropped)
        }
        _ => {
            let found = scan_layers(root, &split, &layers);
            looked_up = found.looked_up;
            for (name, reason) in &found.unjudged {
                tracing::warn!(
                    IMAGE = name.as_str(),
                    "Not checking {} '{name}' for conflicts: {reason}",
                    s.class
                );
            }
            (found.conflicts, Vec::new())
        }
    };
    drop(layers);
    tracing::debug!(
        LOOKED_UP = looked_up,
        "Conflict check of {}: {looked_up} entries looked up.",
        s.class
    );
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
