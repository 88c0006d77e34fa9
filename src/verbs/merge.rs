//! `merge`: assemble each class in a private namespace, then attach one tree per hierarchy.

use crate::assemble::{self, Assembly};
use crate::chase;
use crate::config::ClassSettings;
use crate::discover;
use crate::meta;
use crate::mountns;
use crate::mutable::MutableMode;
use crate::release::{HostInfo, Scope};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::Instant;

/// What a class merge ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Overlays were attached on these hierarchies (host paths).
    Merged(Vec<PathBuf>),
    /// Nothing to merge (no or no suitable extensions, mutable mode off).
    NothingToDo,
}

/// Host path of a hierarchy inside the root (the would-be path if it does not exist yet).
pub fn hierarchy_host_path(s: &ClassSettings, h: &std::path::Path) -> Result<(PathBuf, bool)> {
    let (r, exists) = chase::chase_allow_missing(&s.root, h).with_context(|| {
        format!(
            "resolving hierarchy {} inside {}",
            h.display(),
            s.root.display()
        )
    })?;
    Ok((r.host, exists))
}

/// Merge one class; refuses hierarchies that are already merged (systemd's EBUSY).
pub fn merge_class(s: &ClassSettings) -> Result<Outcome> {
    let started = Instant::now();
    let host = HostInfo::load(&s.root)
        .context("cannot evaluate extensions without the host's os-release")?;
    for h in &s.hierarchies {
        let (p, exists) = hierarchy_host_path(s, h)?;
        if exists && meta::is_ours(&p, s.class)? {
            bail!("Hierarchy '{}' is already merged.", p.display());
        }
    }
    let found = discover::discover(&s.root, s.class, host.scope == Scope::Initrd)?;
    for sk in &found.skipped {
        tracing::debug!("Skipped {}: {}", sk.entry.display(), sk.reason);
    }
    if found.images.is_empty() && s.mutable == MutableMode::No {
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

    let assembly: Assembly = mountns::in_private_namespace(|| {
        assemble::assemble_in_private_namespace(s, &host, &found.images, false)
    })?;
    let ignored = assembly.rejected.iter().filter(|r| !r.error).count();
    if assembly.accepted.is_empty() && s.mutable == MutableMode::No {
        tracing::info!(
            "No suitable extensions found ({ignored} ignored due to incompatible image(s))."
        );
        return Ok(Outcome::NothingToDo);
    }
    if assembly.accepted.is_empty() {
        tracing::info!("No extensions found, proceeding in mutable mode.");
    } else {
        let names: Vec<String> = assembly
            .accepted
            .iter()
            .map(|a| format!("'{}'", a.name))
            .collect();
        tracing::info!("Using extensions {}.", names.join(", "));
    }

    let attached = attach_all(s, &assembly)?;
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

/// Attach every tree; if one fails, detach those already attached so the old state stays.
fn attach_all(s: &ClassSettings, assembly: &Assembly) -> Result<Vec<PathBuf>> {
    let mut done: Vec<PathBuf> = Vec::new();
    for t in &assembly.trees {
        let result = (|| -> Result<PathBuf> {
            let (target, exists) = hierarchy_host_path(s, &t.hierarchy)?;
            if !exists {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(&target)
                    .with_context(|| format!("creating mount point {}", target.display()))?;
            }
            mountns::attach(&t.tree, &target)?;
            Ok(target)
        })();
        match result {
            Ok(target) => {
                tracing::info!(
                    HIERARCHY = %target.display(),
                    LAYERS = t.layers.join(" ").as_str(),
                    "Merged extensions into '{}'{}.",
                    target.display(),
                    if t.self_upper { " (writable, the hierarchy is its own upper dir)" } else if t.writable { " (writable)" } else { "" }
                );
                done.push(target);
            }
            Err(e) => {
                for p in done.iter().rev() {
                    if let Err(e2) = mountns::detach_lazily(p) {
                        tracing::error!("Rolling back {} failed: {e2:#}", p.display());
                    }
                }
                return Err(e.context(format!(
                    "attaching the merged tree for {}; nothing was left attached",
                    t.hierarchy.display()
                )));
            }
        }
    }
    Ok(done)
}

/// `merge` for every selected class (confext first); a failing class does not stop the next.
pub fn run(classes: &[ClassSettings]) -> Result<i32> {
    super::for_each_class_locked(classes, "merge", merge_class)
}
