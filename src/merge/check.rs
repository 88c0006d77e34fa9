//! `check`: the merge pipeline up to the conflict step, without writing or attaching anything.
//! It opens images on the same path as `merge` (directories, plain images, verity sidecars,
//! DDIs), compares with the same base, and judges with the same rules; `--os-release=FILE`
//! judges every candidate against an update's os-release too.

use crate::class::ImageClass;
use crate::decide::conflicts::{Conflict, ConflictPolicy};
use crate::decide::release::{judge, HostInfo, Verdict};
use crate::gather::discover::ImageKind;
use crate::gather::snapshot::{self, Base};
use crate::kernel::namespace;
use crate::kernel::root::Root;
use crate::merge::{assemble, base, conflicts, open, unmerge};
use crate::settings::ClassSettings;
use anyhow::{bail, Result};
use serde::Serialize;

/// An extension left out of the check (incompatible, unreadable, or dropped by `refuse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Image name.
    pub name: String,
    /// Why it is not part of the (checked) merge.
    pub reason: String,
    /// The kind of reason (`version`, `unreadable`, `conflict`, …).
    pub kind: String,
}

/// One extension judged against the root's os-release now and against the one of an update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpdateVerdict {
    /// Image name.
    pub name: String,
    /// Matches the root's current os-release (would be merged now).
    pub matches_now: bool,
    /// Matches the new os-release (would be merged after the update).
    pub matches_next: bool,
    /// Why it does not match the new os-release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_next: Option<String>,
}

/// The result of checking one class (stable JSON: fields are only ever added).
#[derive(Clone, Debug, Serialize)]
pub struct ClassReport {
    /// Extension class.
    pub class: ImageClass,
    /// Every conflict among the accepted extensions, sorted by path.
    pub conflicts: Vec<Conflict>,
    /// Extensions a merge would leave out, with the reason.
    pub ignored: Vec<Ignored>,
    /// With `--os-release=FILE`: every candidate judged against the current and the new os-release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<Vec<UpdateVerdict>>,
}

fn run(
    s: &ClassSettings,
    root: &Root,
    base: Base,
    policy: ConflictPolicy,
    next: Option<&HostInfo>,
    ws: Option<&std::path::Path>,
    no_base: &[std::path::PathBuf],
) -> Result<ClassReport> {
    let snap = snapshot::take_for_check(root, base, s)?;
    let mut opened = open::open_all(s, &snap, root, ws)?;
    let update = next.map(|next| {
        snap.sources
            .iter()
            .map(|src| {
                let c = &src.candidate;
                let now = opened.layers.iter().any(|l| l.name == c.name);
                let after = match opened.facts.get(&c.name) {
                    Some(f) => judge(
                        Ok(next),
                        s.class,
                        &c.name,
                        c.kind == ImageKind::Directory,
                        f,
                        s.force,
                    ),
                    None => Verdict::Reject(
                        opened
                            .rejected
                            .iter()
                            .find(|r| r.name == c.name)
                            .map(|r| r.reason.clone())
                            .unwrap_or(crate::decide::reject::Reject::Unreadable(
                                "not opened".into(),
                            )),
                    ),
                };
                UpdateVerdict {
                    name: c.name.clone(),
                    matches_now: now,
                    matches_next: after == Verdict::Accept,
                    reason_next: match after {
                        Verdict::Accept => None,
                        Verdict::Reject(r) => Some(r.to_string()),
                    },
                }
            })
            .collect()
    });
    let settings = ClassSettings {
        check_conflicts: policy,
        ..s.clone()
    };
    let conflicts = conflicts::apply(&settings, root, &snap, no_base, &mut opened)?;
    Ok(ClassReport {
        class: s.class,
        conflicts,
        ignored: opened
            .rejected
            .iter()
            .map(|r| Ignored {
                name: r.name.clone(),
                reason: r.reason.to_string(),
                kind: r.reason.kind().to_string(),
            })
            .collect(),
        update,
    })
}

/// Check one class: discover, open and accept as `merge` would, scan the accepted layers over
/// the base; with `next`, also judge every candidate against an update's os-release.
///
/// As root it runs in a private namespace where the class's merges are peeled (so it compares
/// with what lies below them). Without root only directory extensions can be read, and a merged
/// hierarchy is compared with what the merge shows.
pub fn check_class(
    s: &ClassSettings,
    policy: ConflictPolicy,
    next: Option<&HostInfo>,
) -> Result<ClassReport> {
    if rustix::process::geteuid().is_root() {
        return namespace::in_private_namespace(|| {
            let root = Root::open(&s.root)?;
            unmerge::peel_all(&root, s)?;
            let base = base::read(s, &root)?;
            let ws = assemble::workspace()?;
            run(s, &root, base, policy, next, Some(&ws), &[])
        });
    }
    let root = Root::open(&s.root)?;
    let images: Vec<String> = crate::gather::discover::discover(
        &root,
        s.class,
        crate::gather::host::host_scope(&root)? == crate::decide::release::Scope::Initrd,
    )?
    .images
    .iter()
    .filter(|c| c.kind != ImageKind::Directory)
    .map(|c| format!("'{}'", c.name))
    .collect();
    if !images.is_empty() {
        bail!(
            "checking image files needs root: {} must be mounted (in a private mount namespace) to be read; run as root",
            images.join(", ")
        );
    }
    let mut merged = Vec::new();
    for h in &s.hierarchies {
        if crate::meta::inspect(&root, h, s.class)?.is_some() {
            tracing::warn!(
                "{} is merged: not comparing extensions with the base OS there (run as root to look below the merge).",
                root.show(h).display()
            );
            merged.push(h.clone());
        }
    }
    let base = Base::read(&root)?;
    run(s, &root, base, policy, next, None, &merged)
}
