//! `merge` and `refresh` (and `check`, in [`check`]) as one pipeline over the same steps:
//!
//! 1. in the caller's namespace: the root handle, the current merges ([`unmerge::current`]) and
//!    their records;
//! 2. on a thread with a private mount namespace, where this class's merges are peeled (the
//!    caller still sees them): [`prepare`] (the only writes before gathering), the base OS
//!    ([`base`]), [`snapshot`](crate::gather::snapshot) (gather), the skip decision
//!    ([`decide_refresh`]), [`open`] (every image opened, every tree judged, `Require=`),
//!    conflicts, [`assemble`] (one detached tree per hierarchy);
//! 3. back in the caller's namespace: [`attach`] (a placement that rolls back unless committed)
//!    and [`record`].
//!
//! Nothing is attached until every tree is ready; a failure before that leaves the hierarchies
//! exactly as they were.

pub mod assemble;
pub mod attach;
pub mod base;
pub mod check;
pub mod conflicts;
pub mod list;
pub mod open;
pub mod prepare;
pub mod record;
pub mod status;
pub mod unmerge;

use crate::decide::mutable::MutableMode;
use crate::decide::state::{decide_refresh, Current, Decision, State, StateFile};
use crate::failpoint;
use crate::gather::snapshot::{self, Snapshot};
use crate::kernel::namespace;
use crate::kernel::root::Root;
use crate::log::timed;
use crate::meta::Merged;
use crate::settings::ClassSettings;
use anyhow::{bail, Result};
use assemble::HierarchyTree;
use open::{Opened, Rejected};
use std::path::PathBuf;
use std::time::Instant;

/// What a class merge or refresh ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Overlays were attached (or replaced) on these hierarchies (as shown).
    Merged(Vec<PathBuf>),
    /// Nothing changed since the last merge; nothing was touched.
    Skipped,
    /// Nothing left to merge: these hierarchies were unmerged.
    Unmerged(Vec<PathBuf>),
    /// Nothing to merge (no or no suitable extensions, mutable mode off).
    NothingToDo,
}

/// What the private namespace hands back.
enum Step {
    /// Unchanged: skip.
    Skip,
    /// Nothing to merge (after logging why).
    Nothing,
    /// Trees to place, built from `state`.
    Place {
        trees: Vec<HierarchyTree>,
        state: Box<State>,
        accepted: usize,
    },
}

/// Log what the open step accepted, the way systemd does.
fn log_accepted(s: &ClassSettings, opened: &Opened) {
    let ignored = opened
        .rejected
        .iter()
        .filter(|r| !r.reason.is_error())
        .count();
    if opened.layers.is_empty() && s.mutable == MutableMode::No {
        tracing::info!(
            "No suitable extensions found ({ignored} ignored due to incompatible image(s))."
        );
    } else if opened.layers.is_empty() {
        tracing::info!("No extensions found, proceeding in mutable mode.");
    } else {
        let names: Vec<String> = opened
            .layers
            .iter()
            .map(|l| format!("'{}'", l.name))
            .collect();
        tracing::info!("Using extensions {}.", names.join(", "));
    }
}

/// The required extensions the open step leaves out, each with why: the one place where
/// `Require=` and `--require` are checked, before anything is attached.
fn missing_required(s: &ClassSettings, opened: &Opened) -> Vec<String> {
    s.require
        .iter()
        .filter(|n| !opened.layers.iter().any(|l| &l.name == *n))
        .map(
            |n| match opened.rejected.iter().find(|r: &&Rejected| &r.name == n) {
                Some(r) => format!("'{n}' ({})", r.reason),
                None => format!("'{n}' (not found in any {} directory)", s.class),
            },
        )
        .collect()
}

/// The gather → decide → open → assemble part, run in the private namespace; each phase is
/// timed ([`crate::log::phase`]).
fn build(
    s: &ClassSettings,
    caller: &Root,
    current: &Current,
    busy: &[PathBuf],
    refresh: bool,
    shared: &base::Shared,
) -> Result<Step> {
    let c = s.class.name();
    let root = Root::open(&s.root)?;
    timed(c, "peel", || -> Result<()> {
        if !current.merged.is_empty() {
            // Only this thread's namespace loses the merges: the host hierarchies are the bottom
            // layers again, and the caller keeps seeing the old merge until the new one is placed.
            unmerge::peel_all(&root, s)?;
            failpoint::hit("private-peeled")?;
        }
        Ok(())
    })?;
    timed(c, "prepare", || prepare::prepare(&root, s))?;
    let base = timed(c, "base", || base::read_shared(s, &root, shared))?;
    let snap = timed(c, "gather", || snapshot::take(&root, caller, base, s))?;
    failpoint::hit("snapshot-taken")?;
    // systemd fails the merge when the host has no usable os-release (EINVAL): nothing could be
    // judged, and merging nothing would look like "no suitable extensions".
    if let (Err(e), false, false) = (&snap.base.host, s.force, snap.sources.is_empty()) {
        bail!(
            "cannot judge any {} without the host's os-release: {e}",
            s.class
        );
    }
    if refresh && timed(c, "decide", || decide(s, current, &snap)) == Decision::Skip {
        return Ok(Step::Skip);
    }
    if snap.sources.is_empty() && s.mutable == MutableMode::No {
        if current.merged.is_empty() {
            tracing::info!("No {} found.", s.class.nothing_found());
        }
        return Ok(Step::Nothing);
    }
    let ws = timed(c, "workspace", assemble::workspace)?;
    let mut opened = timed(c, "open", || open::open_all(s, &snap, &root, Some(&ws)))?;
    timed(c, "conflicts", || {
        conflicts::apply(s, &root, &snap, &[], &mut opened)
    })?;
    assemble::apply_layer_limit(&mut opened, s.mutable);
    for r in opened
        .rejected
        .iter()
        .filter(|r| r.reason.kind() == "layer-limit")
    {
        open::log_rejected(s.class, r);
    }
    failpoint::hit("assembled")?;
    log_accepted(s, &opened);
    let missing = missing_required(s, &opened);
    if !missing.is_empty() {
        // Before anything is attached: the hierarchies keep what they have (a previous merge
        // with the required extension stays in place).
        bail!(
            "not merging: required {} cannot be used: {}; the hierarchies are left as they are",
            s.class,
            missing.join("; ")
        );
    }
    if opened.layers.is_empty() && s.mutable == MutableMode::No {
        return Ok(Step::Nothing);
    }
    let trees = timed(c, "assemble", || {
        assemble::assemble(s, &root, &ws, &snap, &opened, busy)
    })?;
    let Snapshot { state, .. } = snap;
    Ok(Step::Place {
        trees,
        state: Box::new(state),
        accepted: opened.layers.len(),
    })
}

/// The skip decision of a refresh, with the reasons for rebuilding logged.
fn decide(s: &ClassSettings, current: &Current, snap: &Snapshot) -> Decision {
    let d = decide_refresh(current, &snap.state, s.always_refresh);
    if let Decision::Rebuild(reasons) = &d {
        for r in reasons {
            tracing::info!(CLASS = s.class.name(), "Refreshing {}: {r}.", s.class);
        }
    }
    d
}

/// What a refresh finds merged now, with each merge's record.
fn current_of(merges: &[Merged], s: &ClassSettings) -> Current {
    Current {
        merged: merges.iter().map(|m| m.hierarchy.clone()).collect(),
        records: merges
            .iter()
            .map(|m| record::read_state(m, s).map_err(|e| format!("{e:#}")))
            .collect(),
    }
}

/// Merge (`refresh == false`: refuses merged hierarchies, as systemd's EBUSY) or refresh one
/// class: skip when nothing changed, else replace each merge atomically, or unmerge what is
/// left without anything to merge.
fn run_class(s: &ClassSettings, refresh: bool, shared: &base::Shared) -> Result<Outcome> {
    let started = Instant::now();
    let c = s.class.name();
    let outcome = run_phases(s, refresh, started, shared);
    crate::log::phase(c, "total", started);
    outcome
}

fn run_phases(
    s: &ClassSettings,
    refresh: bool,
    started: Instant,
    shared: &base::Shared,
) -> Result<Outcome> {
    let c = s.class.name();
    let (root, merges, current) = timed(c, "current", || -> Result<_> {
        let root = Root::open(&s.root)?;
        let merges = if refresh {
            // What is left after the peel is what is merged now: no second look.
            let mut merges = Vec::new();
            for h in &s.hierarchies {
                merges.extend(unmerge::peel_stale_stack(&root, s, h)?);
            }
            merges
        } else {
            unmerge::current(&root, s)?
        };
        if !refresh {
            if let Some(m) = merges.first() {
                bail!("Hierarchy '{}' is already merged.", m.shown.display());
            }
        }
        let current = current_of(&merges, s);
        Ok((root, merges, current))
    })?;
    let busy: Vec<PathBuf> = merges
        .iter()
        .filter_map(|m| m.info.work_dir.clone())
        .collect();
    let (step, ns) = namespace::in_private_namespace_timed(|| {
        build(s, &root, &current, &busy, refresh, shared)
    })?;
    crate::log::phase_took(c, "unshare", ns.enter);
    crate::log::phase_took(c, "teardown", ns.teardown);
    match step {
        Step::Skip => {
            tracing::info!(
                CLASS = c,
                DURATION_US = started.elapsed().as_micros() as u64,
                "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh."
            );
            Ok(Outcome::Skipped)
        }
        Step::Nothing => {
            // systemd's refresh falls back to unmerge(): the service manager's actions are
            // collected from the merges about to go, and asked for once they are gone.
            let actions = crate::manager::collect(&root, s)?;
            let outcome = timed(c, "unmerge", || {
                unmerge_rest(&root, s, &current.merged, &[])
            })?;
            timed(c, "reload", || crate::manager::apply(&actions))?;
            Ok(outcome)
        }
        Step::Place {
            trees,
            state,
            accepted,
        } => {
            let run = Run {
                s,
                root: &root,
                current: &current,
                refresh,
                started,
            };
            place(&run, &trees, *state, accepted)
        }
    }
}

/// What placing needs to know about the run.
struct Run<'a> {
    s: &'a ClassSettings,
    root: &'a Root,
    current: &'a Current,
    refresh: bool,
    started: Instant,
}

/// Put the assembled `trees` in place of the current merges, unmerge what is left, record the
/// state and ask the service manager for what the merged extensions need.
fn place(run: &Run, trees: &[HierarchyTree], state: State, accepted: usize) -> Result<Outcome> {
    let Run {
        s,
        root,
        current,
        refresh,
        started,
    } = *run;
    let c = s.class.name();
    let placed = timed(c, "attach", || -> Result<Vec<PathBuf>> {
        let mut placement = attach::Placement::new(root, s.class);
        for t in trees {
            let replace = current.merged.contains(&t.hierarchy);
            if let Err(e) = placement.place(t, replace) {
                // Dropping the placement rolls back what was placed.
                drop(placement);
                return Err(e.context(format!(
                    "placing the new tree for {}; hierarchies not yet replaced keep the previous merge",
                    root.show(&t.hierarchy).display()
                )));
            }
        }
        placement.commit()
    })?;
    for t in trees {
        attach::log_merged(t, &root.show(&t.hierarchy));
    }
    let kept: Vec<PathBuf> = trees.iter().map(|t| t.hierarchy.clone()).collect();
    timed(c, "unmerge", || {
        unmerge_rest(root, s, &current.merged, &kept)
    })?;
    timed(c, "state", || {
        record::write_run_state(
            s,
            &StateFile {
                state,
                merged: kept,
            },
        )
    });
    tracing::info!(
        CLASS = c,
        DURATION_US = started.elapsed().as_micros() as u64,
        "{} {accepted} {}(s) into {} hierarch{} in {} ms.",
        if refresh { "Refreshed" } else { "Merged" },
        s.class,
        placed.len(),
        if placed.len() == 1 { "y" } else { "ies" },
        started.elapsed().as_millis()
    );
    // What the extensions merged now ask of the service manager (nothing with --no-reload or
    // --root).
    timed(c, "reload", || {
        crate::manager::apply(&crate::manager::collect(root, s)?)
    })?;
    Ok(Outcome::Merged(placed))
}

/// Unmerge the currently merged hierarchies that are not in `keep`.
fn unmerge_rest(
    root: &Root,
    s: &ClassSettings,
    current: &[PathBuf],
    keep: &[PathBuf],
) -> Result<Outcome> {
    let mut gone = Vec::new();
    for h in current.iter().filter(|h| !keep.contains(h)) {
        while crate::meta::inspect(root, h, s.class)?.is_some() {
            unmerge::unmerge_one(root, s.class, h)?;
        }
        gone.push(root.show(h));
    }
    Ok(if gone.is_empty() {
        Outcome::NothingToDo
    } else {
        Outcome::Unmerged(gone)
    })
}

/// Merge one class; refuses hierarchies that are already merged (systemd's EBUSY).
pub fn merge_class(s: &ClassSettings) -> Result<Outcome> {
    run_class(s, false, &base::Shared::default())
}

/// Refresh one class.
pub fn refresh_class(s: &ClassSettings) -> Result<Outcome> {
    run_class(s, true, &base::Shared::default())
}

/// Give each class the `--require` names it discovers; a name no selected class discovers
/// fails the run before anything is touched.
pub fn assign_required(classes: &[ClassSettings]) -> Result<Vec<ClassSettings>> {
    let mut out = classes.to_vec();
    let mut wanted: Vec<String> = Vec::new();
    for n in classes.iter().flat_map(|s| &s.require_any) {
        if !wanted.contains(n) {
            wanted.push(n.clone());
        }
    }
    if wanted.is_empty() {
        return Ok(out);
    }
    let mut found_somewhere = Vec::new();
    for s in &mut out {
        let root = Root::open(&s.root)?;
        let initrd =
            crate::gather::host::host_scope(&root)? == crate::decide::release::Scope::Initrd;
        let found = crate::gather::discover::discover(&root, s.class, initrd)?;
        for n in &wanted {
            if found.images.iter().any(|c| &c.name == n) {
                found_somewhere.push(n.clone());
                if !s.require.contains(n) {
                    s.require.push(n.clone());
                }
            }
        }
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|n| !found_somewhere.contains(n))
        .map(|n| format!("'{n}'"))
        .collect();
    if !missing.is_empty() {
        let kinds: Vec<&str> = classes.iter().map(|s| s.class.name()).collect();
        bail!(
            "required extension(s) {} (--require) not found in any {} directory; nothing was changed",
            missing.join(", "),
            kinds.join(" or ")
        );
    }
    Ok(out)
}

/// `merge` for every selected class (confext first); a failing class does not stop the next.
pub fn run(classes: &[ClassSettings]) -> Result<i32> {
    let classes = assign_required(classes)?;
    let shared = base::Shared::default();
    crate::verbs::for_each_class_locked(&classes, "merge", |s| run_class(s, false, &shared))
        .map(|(code, _)| code)
}

/// `refresh` for every selected class; exits with `skipped` when every class was skipped or
/// had nothing to do and at least one was skipped (systemd exits 0 then; extmerge's own
/// all-classes mode says 77, [`crate::verbs::EXIT_SKIPPED`]).
pub fn run_refresh(classes: &[ClassSettings], skipped: i32) -> Result<i32> {
    run_refresh_shared(classes, skipped, &base::Shared::default())
}

/// [`run_refresh`] with the base read by an earlier run of this process (`initrd-stage` runs
/// one class per step) and kept in `shared`.
pub fn run_refresh_shared(
    classes: &[ClassSettings],
    skipped: i32,
    shared: &base::Shared,
) -> Result<i32> {
    let classes = assign_required(classes)?;
    let (code, outcomes) =
        crate::verbs::for_each_class_locked(&classes, "refresh", |s| run_class(s, true, shared))?;
    let was_skipped = outcomes.contains(&Outcome::Skipped);
    let changed = outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Merged(_) | Outcome::Unmerged(_)));
    Ok(
        if code == crate::verbs::EXIT_SUCCESS && was_skipped && !changed {
            skipped
        } else {
            code
        },
    )
}
