//! `check`: report conflicts between the extensions a merge would use, without merging.
//!
//! Images are opened on a helper thread with its own private mount namespace (as `merge` does),
//! so nothing is ever mounted in the caller's namespace. Directory extensions need no mounts,
//! so checking them works unprivileged.

use crate::class::ImageClass;
use crate::decide::conflicts::{self, Conflict, ConflictPolicy};
use crate::decide::release::{self, HostInfo, Scope, Verdict};
use crate::gather::compat;
use crate::gather::discover::{self, Candidate, ImageKind};
use crate::image::{self, OpenedImage};
use crate::kernel::fscontext::MountFlags;
use crate::kernel::{mounts, namespace};
use crate::meta;
use crate::settings::ClassSettings;
use crate::verbs::{print_json, JsonMode, EXIT_FAILURE, EXIT_SUCCESS};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// An extension left out of the check (incompatible, unreadable, or dropped by `refuse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Image name.
    pub name: String,
    /// Why it is not part of the (checked) merge.
    pub reason: String,
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

/// Check every class; print a table or JSON; exit 1 only under `refuse` with conflicts.
///
/// `off` still reports (checking is what was asked for) but never fails.
pub fn run(classes: &[ClassSettings], policy: ConflictPolicy, json: JsonMode) -> Result<i32> {
    let mut code = EXIT_SUCCESS;
    let mut reports = Vec::new();
    for s in classes {
        match check_class(s, policy) {
            Ok(r) => reports.push(r),
            Err(e) => {
                tracing::error!(CLASS = s.class.name(), "{} check failed: {e:#}", s.class);
                code = EXIT_FAILURE;
            }
        }
    }
    let total: usize = reports.iter().map(|r| r.conflicts.len()).sum();
    if json != JsonMode::Off {
        print_json(json, &reports)?;
    } else {
        print!("{}", render(&reports));
    }
    if policy == ConflictPolicy::Refuse && total > 0 {
        code = EXIT_FAILURE;
    }
    Ok(code)
}

/// Render reports as one aligned table (KIND PATH WINNER PROVIDERS DETAIL), then ignored images.
pub fn render(reports: &[ClassReport]) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    for r in reports {
        for c in &r.conflicts {
            rows.push([
                c.kind.to_string(),
                c.path.clone(),
                c.winner.clone(),
                c.providers.join(","),
                c.detail.clone(),
            ]);
        }
    }
    let mut s = String::new();
    if rows.is_empty() {
        s.push_str("No conflicts found.\n");
    } else {
        rows.insert(
            0,
            ["KIND", "PATH", "WINNER", "PROVIDERS", "DETAIL"].map(String::from),
        );
        let mut widths = [0usize; 4];
        for r in &rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(r[i].chars().count());
            }
        }
        for r in &rows {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                line.push_str(&format!("{:<w$}  ", r[i], w = *w));
            }
            line.push_str(&r[4]);
            s.push_str(line.trim_end());
            s.push('\n');
        }
    }
    for r in reports {
        for i in &r.ignored {
            s.push_str(&format!("Ignored {} '{}': {}\n", r.class, i.name, i.reason));
        }
    }
    s
}

/// Check one class: discover, accept as `merge` would, scan the accepted layers over the host.
pub fn check_class(s: &ClassSettings, policy: ConflictPolicy) -> Result<ClassReport> {
    check_class_against(s, policy, None)
}

/// [`check_class`], also judging every candidate against `next` (an update's os-release).
pub fn check_class_against(
    s: &ClassSettings,
    policy: ConflictPolicy,
    next: Option<&HostInfo>,
) -> Result<ClassReport> {
    let host = HostInfo::load(&s.root).map_err(|e| format!("{e:#}"));
    let initrd = release::host_scope(&s.root) == Scope::Initrd;
    let found = discover::discover(&s.root, s.class, initrd)?;
    for sk in &found.skipped {
        tracing::debug!("Skipped {}: {}", sk.entry.display(), sk.reason);
    }
    let images: Vec<&str> = found
        .images
        .iter()
        .filter(|c| c.kind != ImageKind::Directory)
        .map(|c| c.name.as_str())
        .collect();
    let privileged = rustix::process::geteuid().is_root();
    if !images.is_empty() && !privileged {
        bail!(
            "checking image files needs root: {} must be mounted (in a private mount namespace) to be read; run as root",
            images
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // A merged hierarchy shows the extensions themselves: compare against what lies below it.
    let mut merged = Vec::new();
    for h in &s.hierarchies {
        let p = crate::chase::host_path(&s.root, h);
        if p.exists() && meta::is_ours(&p, s.class).unwrap_or(false) {
            merged.push(h.clone());
        }
    }
    let host = host.as_ref().map_err(|e| e.as_str());
    if privileged && (!images.is_empty() || !merged.is_empty()) {
        namespace::in_private_namespace(|| {
            for h in &merged {
                let p = crate::chase::host_path(&s.root, h);
                // Only this thread's namespace loses the overlay.
                while meta::is_ours(&p, s.class).unwrap_or(false) {
                    mounts::detach_lazily(&p)?;
                }
            }
            check_opened(s, host, next, &found.images, policy, &[])
        })
    } else {
        for h in &merged {
            tracing::warn!(
                "{} is merged: not comparing extensions with the base OS there (run as root to look below the merge).",
                crate::chase::host_path(&s.root, h).display()
            );
        }
        check_opened(s, host, next, &found.images, policy, &merged)
    }
}

/// Open the candidates, accept them, and scan. `no_base`: hierarchies scanned without the host.
fn check_opened(
    s: &ClassSettings,
    host: Result<&HostInfo, &str>,
    next: Option<&HostInfo>,
    candidates: &[Candidate],
    policy: ConflictPolicy,
    no_base: &[PathBuf],
) -> Result<ClassReport> {
    let ws = PathBuf::from(crate::merge::assemble::WORKSPACE).join("check");
    let mut workspace_ready = false;
    // Keeps every image mounted until the scan is done.
    let mut opened: Vec<OpenedImage> = Vec::new();
    let mut layers: Vec<(String, PathBuf)> = Vec::new();
    let mut ignored = Vec::new();
    let mut update = next.map(|_| Vec::new());
    for (i, c) in candidates.iter().enumerate() {
        let root = match c.kind {
            ImageKind::Directory => c.host_path.clone(),
            ImageKind::Raw | ImageKind::Block => {
                if !workspace_ready {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&ws)
                        .with_context(|| format!("creating directory {}", ws.display()))?;
                    mounts::mount_tmpfs(&ws, 0o700)?;
                    workspace_ready = true;
                }
                match open_at(c, &ws.join(i.to_string())) {
                    Ok((img, at)) => {
                        opened.push(img);
                        at
                    }
                    Err(e) => {
                        let reason = format!("cannot open image: {e:#}");
                        if let Some(u) = update.as_mut() {
                            u.push(UpdateVerdict {
                                name: c.name.clone(),
                                matches_now: false,
                                matches_next: false,
                                reason_next: Some(reason.clone()),
                            });
                        }
                        ignored.push(Ignored {
                            name: c.name.clone(),
                            reason,
                        });
                        continue;
                    }
                }
            }
        };
        let verdict = compat::check_tree(host, s.class, &c.name, c.kind, &root, s.force);
        if let (Some(u), Some(next)) = (update.as_mut(), next) {
            let after = compat::check_tree(Ok(next), s.class, &c.name, c.kind, &root, s.force);
            u.push(UpdateVerdict {
                name: c.name.clone(),
                matches_now: verdict == Verdict::Accept,
                matches_next: after == Verdict::Accept,
                reason_next: match after {
                    Verdict::Accept => None,
                    Verdict::Reject(r) => Some(r),
                },
            });
        }
        match verdict {
            Verdict::Accept => layers.push((c.name.clone(), root)),
            Verdict::Reject(reason) => ignored.push(Ignored {
                name: c.name.clone(),
                reason,
            }),
        }
    }

    let with_base: Vec<PathBuf> = s
        .hierarchies
        .iter()
        .filter(|h| !no_base.contains(h))
        .cloned()
        .collect();
    let scan = |l: &[(String, PathBuf)]| -> Result<Vec<Conflict>> {
        let mut all = conflicts::scan(l, Some(&s.root), &with_base)?;
        all.extend(conflicts::scan(l, None, no_base)?);
        all.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
        Ok(all)
    };
    let conflicts = if policy == ConflictPolicy::Refuse {
        let refusal = conflicts::refuse_with(&layers, scan)?;
        ignored.extend(refusal.dropped.into_iter().map(|(name, reason)| Ignored {
            name,
            reason: format!("refused (--check-conflicts=refuse): {reason}"),
        }));
        refusal.conflicts
    } else {
        scan(&layers)?
    };
    drop(opened);
    Ok(ClassReport {
        class: s.class,
        conflicts,
        ignored,
        update,
    })
}

/// Open an image read-only and attach it at `at` (inside the private namespace only).
fn open_at(c: &Candidate, at: &Path) -> Result<(OpenedImage, PathBuf)> {
    // Only read here: no need to execute or honour setuid bits.
    let flags = MountFlags {
        nosuid: true,
        noexec: true,
    };
    let img = image::open_image(&c.host_path, flags)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(at)
        .with_context(|| format!("creating directory {}", at.display()))?;
    mounts::attach(&img.mount, at)?;
    Ok((img, at.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{resolve, CliOptions};

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn settings(root: &Path) -> ClassSettings {
        let cli = CliOptions {
            root: Some(root.to_path_buf()),
            ..Default::default()
        };
        resolve(&cli, ImageClass::Sysext, &|_| None).unwrap()
    }

    /// Directory extensions are checked without any mount (so also unprivileged).
    #[test]
    fn directory_extensions_are_checked_without_mounting() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(root, "usr/lib/os-release", "ID=debian\nVERSION_ID=13\n");
        write(root, "usr/bin/host", "host\n");
        for n in ["a", "b"] {
            let rel =
                format!("var/lib/extensions/{n}/usr/lib/extension-release.d/extension-release.{n}");
            write(root, &rel, "ID=_any\n");
            write(root, &format!("var/lib/extensions/{n}/usr/bin/tool"), n);
        }
        write(root, "var/lib/extensions/b/usr/bin/host", "b\n");
        let rep = check_class(&settings(root), ConflictPolicy::Warn).unwrap();
        let got: Vec<(&str, &str)> = rep
            .conflicts
            .iter()
            .map(|c| (c.kind.as_str(), c.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("shadows-base", "/usr/bin/host"),
                ("same-file", "/usr/bin/tool")
            ]
        );
        let table = render(&[rep]);
        assert!(table.starts_with("KIND"), "{table}");
        assert!(
            table.contains("same-file     /usr/bin/tool  b       a,b"),
            "{table}"
        );
    }

    /// Images are mounted (privately) only as root; otherwise the error says why.
    #[test]
    fn images_need_root_or_are_ignored_when_unreadable() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(root, "usr/lib/os-release", "ID=debian\n");
        write(root, "var/lib/extensions/junk.raw", "not an image");
        let result = check_class(&settings(root), ConflictPolicy::Warn);
        if rustix::process::geteuid().is_root() {
            let rep = result.unwrap();
            assert_eq!(rep.ignored.len(), 1);
            assert!(
                rep.ignored[0].reason.contains("cannot open image"),
                "{rep:?}"
            );
        } else {
            let e = format!("{:#}", result.unwrap_err());
            assert!(e.contains("needs root") && e.contains("'junk'"), "{e}");
        }
    }
}
