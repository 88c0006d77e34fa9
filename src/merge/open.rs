//! Open every candidate of a snapshot (images in parallel, as the image policy allows), read
//! what each tree says about itself and judge it: the one open path of `merge`, `refresh` and
//! `check`. Runs in the private namespace; image mounts are attached only in its workspace.

use crate::class::ImageClass;
use crate::decide::reject::Reject;
use crate::decide::release::{judge, Verdict};
use crate::gather::discover::{Candidate, ImageKind};
use crate::gather::release::tree_facts;
use crate::gather::snapshot::{Handle, Snapshot, Source};
use crate::image::policy::{ImagePolicy, Protection};
use crate::image::protect::{self, OpenError, Protected};
use crate::image::OpenedImage;
use crate::kernel::fscontext::MountFlags;
use crate::kernel::mounts;
use crate::kernel::root::Root;
use crate::ondisk::superblock::FsType;
use crate::settings::ClassSettings;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An extension that passed every check and is part of the merge.
#[derive(Debug)]
pub struct Layer {
    /// Image name.
    pub name: String,
    /// Image type.
    pub kind: ImageKind,
    /// Resolved path inside the root.
    pub path: PathBuf,
    /// Filesystem of an image.
    pub fstype: Option<FsType>,
    /// The image's file system holds no extended attributes at all (`false` when unsure).
    pub no_xattrs: bool,
    /// The extension's tree (a directory, or the image mounted in the workspace).
    pub tree: Root,
}

/// An extension left out of the merge, with the reason.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// Image name.
    pub name: String,
    /// Resolved path inside the root.
    pub path: PathBuf,
    /// Why.
    pub reason: Reject,
}

/// The candidates of one class, opened and judged.
#[derive(Debug, Default)]
pub struct Opened {
    /// Accepted extensions in layer order (bottom first).
    pub layers: Vec<Layer>,
    /// Extensions left out.
    pub rejected: Vec<Rejected>,
    /// The image mounts behind the layers: they must outlive the overlays' creation.
    pub images: Vec<OpenedImage>,
    /// What each opened tree said about itself (for judging again, e.g. against an update).
    pub facts: std::collections::BTreeMap<String, crate::decide::release::TreeFacts>,
}

impl Opened {
    /// Drop an accepted layer (e.g. refused by the conflict policy), recording why.
    pub fn reject(&mut self, name: &str, reason: Reject) {
        if let Some(pos) = self.layers.iter().position(|l| l.name == name) {
            let l = self.layers.remove(pos);
            self.rejected.push(Rejected {
                name: l.name,
                path: l.path,
                reason,
            });
        }
    }
}

/// How many images are opened at once: opening is mostly waiting (loop setup, superblock
/// reads through direct-I/O loop devices), so a few more threads than cores overlap it.
const OPEN_THREADS: usize = 4;

/// Flags for the image mounts themselves: confext images are also nosuid,noexec unless
/// `--noexec=no`; `--noexec=yes` makes sysext images noexec too.
pub fn image_mount_flags(s: &ClassSettings) -> MountFlags {
    let confext = s.class == ImageClass::Confext;
    MountFlags {
        nosuid: confext,
        noexec: s.noexec.unwrap_or(confext),
    }
}

/// Open one image as the policy allows.
fn open_image(
    src: &Source,
    certs: &protect::Certificates,
    policy: &ImagePolicy,
    flags: MountFlags,
) -> Result<Protected, Reject> {
    match &src.handle {
        Ok(Handle::Image(img)) => match protect::open_protected(img, certs, policy, flags) {
            Ok(p) => Ok(p),
            Err(OpenError::Policy(why)) => Err(Reject::Policy(why)),
            Err(OpenError::Failed(e)) => Err(Reject::Unreadable(format!("{e:#}"))),
        },
        Ok(Handle::Dir(_)) => Err(Reject::Unreadable("internal: not an image".into())),
        Err(e) => Err(Reject::Unreadable(e.clone())),
    }
}

/// An image opened (or refused), with how long that took (loop device, verity, mount).
type ImageOpened = (Result<Protected, Reject>, Duration);

/// [`open_image`], timed.
fn open_image_timed(
    src: &Source,
    certs: &protect::Certificates,
    policy: &ImagePolicy,
    flags: MountFlags,
) -> ImageOpened {
    let started = Instant::now();
    let r = open_image(src, certs, policy, flags);
    (r, started.elapsed())
}

/// Open every image of `sources` on up to [`OPEN_THREADS`] threads (they share this thread's
/// private mount namespace); `None` for directories. Results keep the candidates' order.
fn open_images_in_parallel(
    s: &ClassSettings,
    snap: &Snapshot,
    policy: &ImagePolicy,
) -> Vec<Option<ImageOpened>> {
    let flags = image_mount_flags(s);
    let certs = &snap.base.certs;
    let images: Vec<usize> = (0..snap.sources.len())
        .filter(|i| snap.sources[*i].candidate.kind != ImageKind::Directory)
        .collect();
    let mut out: Vec<Option<ImageOpened>> = snap.sources.iter().map(|_| None).collect();
    let threads = OPEN_THREADS.min(images.len());
    if threads <= 1 {
        for i in images {
            out[i] = Some(open_image_timed(&snap.sources[i], certs, policy, flags));
        }
        return out;
    }
    let results: Vec<(usize, ImageOpened)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|k| {
                let mine: Vec<usize> = images.iter().copied().skip(k).step_by(threads).collect();
                scope.spawn(move || {
                    mine.into_iter()
                        .map(|i| (i, open_image_timed(&snap.sources[i], certs, policy, flags)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    for (i, r) in results {
        out[i] = Some(r);
    }
    out
}

/// Log a rejection the way an operator needs it: a version mismatch after an update loudly,
/// broken images as errors, the rest as information.
pub fn log_rejected(class: ImageClass, r: &Rejected) {
    let (name, path) = (r.name.as_str(), r.path.display());
    let reason = &r.reason;
    if reason.is_version_mismatch() || matches!(reason, Reject::LayerLimit { .. }) {
        tracing::warn!(
            IMAGE = name,
            IMAGE_PATH = %path,
            REASON = reason.kind(),
            "Ignoring {class} '{name}' ({path}): {}{reason}{}",
            if reason.is_version_mismatch() { "it is pinned to another OS version: " } else { "" },
            if reason.is_version_mismatch() { ". Stage the image built for this version." } else { "" },
        );
    } else if reason.is_error() {
        tracing::error!(
            IMAGE = name,
            IMAGE_PATH = %path,
            REASON = reason.kind(),
            "Skipping {class} '{name}' ({path}): {reason}"
        );
    } else {
        tracing::info!(
            IMAGE = name,
            IMAGE_PATH = %path,
            REASON = reason.kind(),
            "Ignoring {class} '{name}' ({path}): {reason}"
        );
    }
}

fn describe_protection(root: &Root, p: &Protected) -> String {
    match (&p.protection, &p.roothash, &p.signer) {
        (Protection::Unprotected, _, _) => ", unprotected".into(),
        (prot, Some(h), Some(cert)) => {
            let cert = cert.strip_prefix(root.path()).unwrap_or(cert);
            format!(", {prot} root hash {h} by /{}", cert.display())
        }
        (prot, Some(h), None) => format!(", {prot} root hash {h}"),
        (prot, None, _) => format!(", {prot}"),
    }
}

/// An opened source: its tree, the image's file system, whether that holds no extended
/// attributes at all, and the detail for the "Using" line.
type Tree = (Root, Option<FsType>, bool, String);

/// The tree of one source as the overlay will see it: a directory as it is, an image mounted
/// in the workspace (kept in `out.images`); `Ok(Err(reason))` when it cannot be used.
fn tree_of(
    root: &Root,
    ws: Option<&Path>,
    i: usize,
    src: &Source,
    opened: Option<Result<Protected, Reject>>,
    out: &mut Opened,
) -> Result<Result<Tree, Reject>> {
    let c = &src.candidate;
    match (&src.handle, opened) {
        (Err(e), _) => Ok(Err(Reject::Unreadable(e.clone()))),
        (Ok(Handle::Dir(d)), _) => {
            let fd =
                d.fd.try_clone()
                    .with_context(|| format!("duplicating the fd of {}", c.path.display()))?;
            let tree = Root::from_fd(fd, root.show(&d.in_root))?;
            Ok(Ok((tree, None, false, String::new())))
        }
        (Ok(Handle::Image(_)), Some(Err(reason))) => Ok(Err(reason)),
        (Ok(Handle::Image(_)), Some(Ok(p))) => {
            let Some(ws) = ws else {
                return Ok(Err(Reject::Unreadable("mounting images needs root".into())));
            };
            let at = ws.join("images").join(i.to_string());
            std::fs::create_dir_all(&at)
                .with_context(|| format!("creating directory {}", at.display()))?;
            mounts::attach(&p.image.mount, &at)?;
            let tree = Root::open(&at)?.renamed(root.show(&c.path));
            let detail = format!(", {}{}", p.image.fstype, describe_protection(root, &p));
            let fstype = Some(p.image.fstype);
            let no_xattrs = p.image.no_xattrs;
            out.images.push(p.image);
            Ok(Ok((tree, fstype, no_xattrs, detail)))
        }
        (Ok(Handle::Image(_)), None) => {
            Ok(Err(Reject::Unreadable("internal: image not opened".into())))
        }
    }
}

/// The per-image phase line ([`crate::log::phase`]): how long opening one candidate took, of
/// which `mounting` on an opening thread (loop device, verity, mount; in parallel with others).
fn log_opened(class: ImageClass, name: &str, mounting: Duration, started: Instant) {
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let total = us(mounting + started.elapsed());
    tracing::debug!(
        target: crate::log::PHASE_TARGET,
        CLASS = class.name(),
        PHASE = "open.image",
        IMAGE = name,
        MOUNT_US = us(mounting),
        DURATION_US = total,
        "Phase open.image of {class} ({name}): {total} us."
    );
}

/// Open and judge every candidate of `snap`, attaching image mounts below `ws/images` (without
/// a workspace, images are left out as unreadable: only root can mount them).
pub fn open_all(
    s: &ClassSettings,
    snap: &Snapshot,
    root: &Root,
    ws: Option<&Path>,
) -> Result<Opened> {
    let policy = ImagePolicy::for_class(s.class, s.image_policy.as_deref())
        .with_context(|| format!("image policy {:?}", s.image_policy.as_deref().unwrap_or("")))?;
    let mut images = if ws.is_some() {
        open_images_in_parallel(s, snap, &policy)
    } else {
        snap.sources.iter().map(|_| None).collect()
    };
    let mut out = Opened::default();
    let host = snap.base.host.as_ref().map_err(String::as_str);
    for (i, src) in snap.sources.iter().enumerate() {
        let started = Instant::now();
        let c: &Candidate = &src.candidate;
        let reject = |out: &mut Opened, reason: Reject| {
            let r = Rejected {
                name: c.name.clone(),
                path: c.path.clone(),
                reason,
            };
            log_rejected(s.class, &r);
            out.rejected.push(r);
        };
        let (opened, mounting) = match images.get_mut(i).and_then(Option::take) {
            Some((r, took)) => (Some(r), took),
            None => (None, Duration::ZERO),
        };
        let tree = tree_of(root, ws, i, src, opened, &mut out);
        log_opened(s.class, &c.name, mounting, started);
        let (tree, fstype, no_xattrs, detail) = match tree? {
            Ok(t) => t,
            Err(reason) => {
                reject(&mut out, reason);
                continue;
            }
        };
        crate::failpoint::hit_with("image-opened", &c.name)?;
        let facts = tree_facts(&tree, s.class, &c.name, &s.hierarchies);
        let verdict = judge(
            host,
            s.class,
            &c.name,
            c.kind == ImageKind::Directory,
            &facts,
            s.force,
        );
        out.facts.insert(c.name.clone(), facts);
        match verdict {
            Verdict::Accept => {
                tracing::info!(
                    IMAGE = c.name.as_str(),
                    IMAGE_PATH = %c.path.display(),
                    ROOTHASH = src.roothash.as_deref().unwrap_or(""),
                    DURATION_US = started.elapsed().as_micros() as u64,
                    "Using {} '{}' ({}{detail}).",
                    s.class,
                    c.name,
                    c.path.display(),
                );
                out.layers.push(Layer {
                    name: c.name.clone(),
                    kind: c.kind,
                    path: c.path.clone(),
                    fstype,
                    no_xattrs,
                    tree,
                });
            }
            Verdict::Reject(reason) => reject(&mut out, reason),
        }
    }
    Ok(out)
}
