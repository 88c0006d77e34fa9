//! Build the merged trees of one class inside a private mount namespace and hand them back as
//! one detached mount fd per hierarchy. Nothing here touches the caller's namespace: if anything
//! fails, the private namespace dies with every mount and loop reference made so far.

use crate::chase::{self, host_path};
use crate::class::ImageClass;
use crate::decide::conflicts::{self, ConflictPolicy};
use crate::decide::mutable::{self, HierarchyPlan, Layer, UpperDir};
use crate::decide::release::{HostInfo, Verdict};
use crate::decide::state::{Origin, OriginId, State, StateFile, STATE_FILE};
use crate::gather::compat;
use crate::gather::discover::{Candidate, ImageKind};
use crate::image::{policy::ImagePolicy, protect, OpenedImage};
use crate::kernel::fscontext::MountFlags as ImageMountFlags;
use crate::kernel::mounts;
use crate::kernel::overlay::{self, OverlaySpec};
use crate::meta::{self, MetaContents};
use crate::ondisk::superblock::FsType;
use crate::settings::ClassSettings;
use anyhow::{anyhow, Context, Result};
use rustix::mount::{MountAttrFlags, MountFlags};
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the private workspace tmpfs is mounted (only ever inside the private namespace).
pub const WORKSPACE: &str = "/run/extmerge/ws";

/// An extension that passed every check and is part of the merge.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// Image name.
    pub name: String,
    /// Image type.
    pub kind: ImageKind,
    /// Resolved path inside the root.
    pub path: PathBuf,
    /// Filesystem of a raw image.
    pub fstype: Option<FsType>,
}

/// An extension left out of the merge, with the reason.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// Image name.
    pub name: String,
    /// Resolved path inside the root.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
    /// True for errors (image unreadable), false for "incompatible" (ignored by design).
    pub error: bool,
}

/// The merged tree for one hierarchy, ready to attach.
#[derive(Debug)]
pub struct HierarchyTree {
    /// Hierarchy as configured, inside the root (e.g. `/usr`).
    pub hierarchy: PathBuf,
    /// Detached mount tree: the overlay plus its read-only meta bind and carried-over submounts.
    pub tree: OwnedFd,
    /// Extensions layered into this hierarchy, top first.
    pub layers: Vec<String>,
    /// Whether the overlay is writable.
    pub writable: bool,
    /// The hierarchy is its own upper dir.
    pub self_upper: bool,
}

/// Result of assembling one class.
#[derive(Debug, Default)]
pub struct Assembly {
    /// Accepted extensions in layer order (bottom first).
    pub accepted: Vec<Accepted>,
    /// Extensions left out.
    pub rejected: Vec<Rejected>,
    /// Trees to attach, in hierarchy order.
    pub trees: Vec<HierarchyTree>,
}

fn mkdir_p(p: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
        .with_context(|| format!("creating directory {}", p.display()))
}

/// Open every candidate (directories as they are, images detached and attached in the workspace)
/// and decide acceptance. Returns the opened images, which must outlive the overlays' creation.
fn open_candidates(
    s: &ClassSettings,
    policy: &ImagePolicy,
    host: &HostInfo,
    candidates: &[Candidate],
    ws: &Path,
    out: &mut Assembly,
) -> Result<Vec<(Accepted, PathBuf, Option<OpenedImage>)>> {
    let mut opened = Vec::new();
    let mut attached_images = open_images_in_parallel(s, policy, candidates, ws);
    for (i, c) in candidates.iter().enumerate() {
        let started = Instant::now();
        let mut protection = None;
        let (layer_root, img) = match c.kind {
            ImageKind::Directory => (c.host_path.clone(), None),
            ImageKind::Raw | ImageKind::Block => {
                let attached = attached_images
                    .get_mut(i)
                    .and_then(Option::take)
                    .unwrap_or_else(|| Err(anyhow::anyhow!("image {i} was not opened")));
                match attached {
                    Ok((at, p)) => {
                        protection = Some((p.protection, p.roothash.clone(), p.signer.clone()));
                        (at, Some(p.image))
                    }
                    Err(e) => {
                        tracing::error!(
                            IMAGE = c.name.as_str(),
                            "Skipping extension '{}' ({}): cannot open image: {e:#}",
                            c.name,
                            c.path.display()
                        );
                        out.rejected.push(Rejected {
                            name: c.name.clone(),
                            path: c.path.clone(),
                            reason: format!("cannot open image: {e:#}"),
                            error: true,
                        });
                        continue;
                    }
                }
            }
        };
        crate::failpoint::hit_with("image-opened", &c.name)?;
        match compat::check_tree(Ok(host), s.class, &c.name, c.kind, &layer_root, s.force) {
            Verdict::Accept => {
                let fstype = img.as_ref().map(|i: &OpenedImage| i.fstype);
                let prot = match &protection {
                    Some((p, Some(h), Some(cert))) => {
                        format!(
                            ", {p} root hash {h} by {}",
                            chase::strip_root(&s.root, cert).display()
                        )
                    }
                    Some((p, Some(h), None)) => format!(", {p} root hash {h}"),
                    Some((p, None, _)) => format!(", {p}"),
                    None => String::new(),
                };
                tracing::info!(
                    IMAGE = c.name.as_str(),
                    IMAGE_PATH = %c.path.display(),
                    ROOTHASH = protection.as_ref().and_then(|(_, h, _)| h.as_deref()).unwrap_or(""),
                    DURATION_US = started.elapsed().as_micros() as u64,
                    "Using {} '{}' ({}{}{}).",
                    s.class,
                    c.name,
                    c.path.display(),
                    fstype.map(|f| format!(", {f}")).unwrap_or_default(),
                    prot
                );
                opened.push((
                    Accepted {
                        name: c.name.clone(),
                        kind: c.kind,
                        path: c.path.clone(),
                        fstype,
                    },
                    layer_root,
                    img,
                ));
            }
            Verdict::Reject(reason) => {
                let (name, path) = (c.name.as_str(), c.path.display());
                if crate::decide::release::is_version_mismatch(&reason) {
                    // After an A/B update the old version's image stays and is silently
                    // unused unless someone says so: this is the line an operator must see.
                    tracing::warn!(
                        IMAGE = name,
                        IMAGE_PATH = %path,
                        "Ignoring {} '{name}' ({path}): it is pinned to another OS version: {reason}. \
                         Stage the image built for this version.",
                        s.class
                    );
                } else {
                    tracing::info!(
                        IMAGE = name,
                        IMAGE_PATH = %path,
                        "Ignoring {} '{name}' ({path}): {reason}",
                        s.class
                    );
                }
                out.rejected.push(Rejected {
                    name: c.name.clone(),
                    path: c.path.clone(),
                    reason,
                    error: false,
                });
            }
        }
    }
    Ok(opened)
}

/// An image opened, protected as the policy demands, and attached in the workspace.
type AttachedImage = Result<(PathBuf, protect::Protected)>;

/// How many images are opened at once: opening is mostly waiting (loop setup, superblock
/// reads through direct-I/O loop devices), so a few more threads than cores overlap it.
const OPEN_THREADS: usize = 4;

/// Open and attach every raw or block image of `candidates` on up to [`OPEN_THREADS`] threads
/// (they inherit this thread's private mount namespace); `None` for directories. The results
/// keep the candidates' order, so decisions and logs stay deterministic.
fn open_images_in_parallel(
    s: &ClassSettings,
    policy: &ImagePolicy,
    candidates: &[Candidate],
    ws: &Path,
) -> Vec<Option<AttachedImage>> {
    let open_one = |i: usize, c: &Candidate| -> AttachedImage {
        let p =
            protect::open_protected(&c.host_path, &s.root, s.class, policy, image_mount_flags(s))?;
        let at = ws.join("images").join(i.to_string());
        mkdir_p(&at, 0o700)?;
        mounts::attach(&p.image.mount, &at)?;
        Ok((at, p))
    };
    let images: Vec<usize> = (0..candidates.len())
        .filter(|i| candidates[*i].kind != ImageKind::Directory)
        .collect();
    let mut out: Vec<Option<AttachedImage>> = candidates.iter().map(|_| None).collect();
    let threads = OPEN_THREADS.min(images.len());
    if threads <= 1 {
        for i in images {
            out[i] = Some(open_one(i, &candidates[i]));
        }
        return out;
    }
    let results: Vec<(usize, AttachedImage)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|k| {
                let mine: Vec<usize> = images.iter().copied().skip(k).step_by(threads).collect();
                let open_one = &open_one;
                scope.spawn(move || {
                    mine.into_iter()
                        .map(|i| (i, open_one(i, &candidates[i])))
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

/// Flags for the image mounts themselves: confext images are also nosuid,noexec unless
/// `--noexec=no`; `--noexec=yes` makes sysext images noexec too.
fn image_mount_flags(s: &ClassSettings) -> ImageMountFlags {
    let confext = s.class == ImageClass::Confext;
    ImageMountFlags {
        nosuid: confext,
        noexec: s.noexec.unwrap_or(confext),
    }
}

/// True when the extension tree contributes non-empty content to `hierarchy` (systemd skips it otherwise).
fn contributes(layer_root: &Path, hierarchy: &Path) -> Option<PathBuf> {
    let r = chase::chase(layer_root, hierarchy).ok()?;
    let mut entries = std::fs::read_dir(&r.host).ok()?;
    entries.next().is_some().then_some(r.host)
}

fn to_attrs(flags: MountFlags, noatime: bool) -> MountAttrFlags {
    let mut a = MountAttrFlags::empty();
    for (f, attr) in [
        (MountFlags::RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
        (MountFlags::NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
        (MountFlags::NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
        (MountFlags::NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
        (
            MountFlags::NODIRATIME,
            MountAttrFlags::MOUNT_ATTR_NODIRATIME,
        ),
        (
            MountFlags::NOSYMFOLLOW,
            MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW,
        ),
    ] {
        if flags.contains(f) {
            a |= attr;
        }
    }
    if noatime || flags.contains(MountFlags::NOATIME) {
        a |= MountAttrFlags::MOUNT_ATTR_NOATIME;
    } else if flags.contains(MountFlags::STRICTATIME) {
        a |= MountAttrFlags::MOUNT_ATTR_STRICTATIME;
    }
    a
}

/// The class's default overlay flags (systemd's image_class_info table).
pub fn class_default_flags(class: ImageClass) -> MountFlags {
    match class {
        ImageClass::Sysext => MountFlags::RDONLY | MountFlags::NODEV,
        ImageClass::Confext => {
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC
        }
    }
}

/// systemd's origin record for the accepted extensions (identities taken before the namespace switch).
pub fn build_origin(
    s: &ClassSettings,
    accepted: &[Accepted],
    mutable_dirs: &[(PathBuf, PathBuf)],
    ids: &BTreeMap<String, OriginId>,
) -> Result<String> {
    let mut extensions = Vec::new();
    for a in accepted {
        let id = ids
            .get(&a.name)
            .cloned()
            .ok_or_else(|| anyhow!("internal: no identity recorded for extension '{}'", a.name))?;
        extensions.push((a.name.clone(), a.path.display().to_string(), id));
    }
    // systemd quirk, copied so its refresh compares equal: for the ephemeral modes the origin
    // names `/run/systemd/sysext/<hierarchy>` for every hierarchy, not the tmpfs actually used.
    let mutable_dirs: Vec<(String, String)> = if matches!(
        s.mutable,
        crate::decide::mutable::MutableMode::Ephemeral
            | crate::decide::mutable::MutableMode::EphemeralImport
    ) {
        s.hierarchies
            .iter()
            .map(|h| {
                (
                    h.display().to_string(),
                    format!("/run/systemd/sysext/{}", mutable::hierarchy_component(h)),
                )
            })
            .collect()
    } else {
        mutable_dirs
            .iter()
            .map(|(h, d)| (h.display().to_string(), d.display().to_string()))
            .collect()
    };
    Ok(Origin {
        mode: s.mutable.as_str().to_string(),
        mutable_dirs,
        mount_options: s.overlay_options.clone(),
        extensions,
    }
    .to_json_text())
}

/// What to assemble, prepared in the caller's namespace.
pub struct AssembleInput<'a> {
    /// The root's os-release data.
    pub host: &'a HostInfo,
    /// Discovered candidates in layer order.
    pub candidates: &'a [Candidate],
    /// systemd origin identity per candidate name.
    pub origin_ids: &'a BTreeMap<String, OriginId>,
    /// Our state record, stored next to systemd's meta files.
    pub state: &'a State,
    /// Refresh: build under the existing merge (detached only in the private namespace first).
    pub refresh: bool,
    /// In-root work dirs still used by the current overlays: a refresh must not reuse them.
    pub busy_workdirs: Vec<PathBuf>,
}

struct Ctx<'a> {
    s: &'a ClassSettings,
    ws: &'a Path,
    accepted_names: Vec<String>,
    origin: String,
    state_text: String,
    busy_workdirs: Vec<PathBuf>,
}

/// A work dir name not used by the overlay being replaced: the old and the new overlay coexist
/// for a moment during an atomic refresh, and overlayfs must not share a work dir.
fn fresh_workdir(work: &Path) -> Result<PathBuf> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom for a unique work dir name")?;
    let mut name = work.file_name().unwrap_or_default().to_os_string();
    name.push(format!("-{}", crate::gather::identity::hex(&bytes)));
    Ok(work.with_file_name(name))
}

/// Build the overlay tree for one hierarchy per `plan`, returning the detached tree fd.
fn build_hierarchy(
    ctx: &Ctx<'_>,
    plan: &HierarchyPlan,
    ext_paths: &[(String, PathBuf)],
) -> Result<OwnedFd> {
    let s = ctx.s;
    let comp = mutable::hierarchy_component(&plan.hierarchy);
    let meta_root = ctx.ws.join("meta").join(&comp);
    mkdir_p(&meta_root, 0o700)?;

    let mut lowers = Vec::new();
    for layer in &plan.lowers {
        lowers.push(match layer {
            Layer::Meta => meta_root.clone(),
            Layer::Import(p) | Layer::Host(p) => host_path(&s.root, p),
            Layer::Extension(name) => ext_paths
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p.clone())
                .ok_or_else(|| anyhow!("internal: no layer path for extension '{name}'"))?,
        });
    }

    let (upper, work) = match &plan.upper {
        None => (None, None),
        Some(UpperDir::Persistent { upper, work }) => {
            let work = if ctx.busy_workdirs.contains(work) {
                fresh_workdir(work)?
            } else {
                work.clone()
            };
            let (u, w) = (host_path(&s.root, upper), host_path(&s.root, &work));
            mkdir_p(&w, 0o700)?;
            (Some(u), Some(w))
        }
        Some(UpperDir::Ephemeral) => {
            let u = ctx.ws.join("ephemeral").join(&comp);
            let w = ctx
                .ws
                .join("ephemeral")
                .join(mutable::work_dir_name(&plan.hierarchy));
            mkdir_p(&u, 0o755)?;
            mkdir_p(&w, 0o700)?;
            (Some(u), Some(w))
        }
    };

    // The merged root shows the top layer's mode: keep the hierarchy's (a 0700 /usr broke Flatcar).
    let top = upper.clone().unwrap_or_else(|| meta_root.clone());
    std::fs::set_permissions(&top, std::fs::Permissions::from_mode(plan.top_mode)).with_context(
        || {
            format!(
                "setting mode {:o} on top layer {}",
                plan.top_mode,
                top.display()
            )
        },
    )?;

    let flags = plan.mount_flags(class_default_flags(s.class), s.noexec);
    let spec = OverlaySpec {
        source: s.class.overlay_source().to_string(),
        lowerdirs: lowers,
        upperdir: upper,
        workdir: work.clone(),
        options: plan.options.clone(),
        attrs: to_attrs(flags, plan.noatime),
        force_legacy_lowerdir: false,
    };
    let fd = overlay::build_detached(&spec)
        .with_context(|| format!("building the overlay for {}", plan.hierarchy.display()))?;
    crate::failpoint::hit_with("overlay-built", plan.hierarchy.display())?;

    let st = rustix::fs::fstat(&fd).context("fstat of the new overlay")?;
    let dev = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    let work_dir = match (&plan.upper, &work) {
        (Some(UpperDir::Persistent { .. }), Some(w)) => Some(chase::strip_root(&s.root, w)),
        _ => None,
    };
    let backing = if plan.host_is_lower {
        std::fs::metadata(host_path(&s.root, &plan.hierarchy))
            .ok()
            .map(|m| (rustix::fs::major(m.dev()), rustix::fs::minor(m.dev())))
            .filter(|d| *d != (0, 0))
    } else {
        None
    };
    // Like systemd, the meta files go into the (still unused) top lower layer right after mounting:
    // only then is the overlay's device number known.
    crate::failpoint::hit_with("before-write-state", plan.hierarchy.display())?;
    meta::write(
        &meta_root,
        s.class,
        &MetaContents {
            extensions: ctx.accepted_names.clone(),
            dev,
            work_dir,
            origin: Some(ctx.origin.clone()),
            backing,
        },
    )?;
    let state_file = meta_root.join(s.class.meta_dir_name()).join(STATE_FILE);
    std::fs::write(&state_file, &ctx.state_text)
        .with_context(|| format!("writing {}", state_file.display()))?;
    crate::failpoint::hit_with("after-write-state", plan.hierarchy.display())?;

    // Assemble the final tree at a workspace path, then clone it as one detached tree.
    let at = ctx.ws.join("overlay").join(&comp);
    mkdir_p(&at, 0o755)?;
    mounts::attach(&fd, &at)?;
    if plan.upper.is_some() {
        mounts::bind_readonly(&at.join(s.class.meta_dir_name()))?;
    }
    carry_submounts(&host_path(&s.root, &plan.hierarchy), &at)?;
    let tree = mounts::clone_tree(&at)?;
    crate::failpoint::hit_with("tree-assembled", plan.hierarchy.display())?;
    Ok(tree)
}

/// Clone the mounts below the host hierarchy onto the new tree (the originals stay underneath,
/// so they reappear unchanged on unmerge).
fn carry_submounts(hierarchy: &Path, tree: &Path) -> Result<()> {
    for sub in mounts::submounts(hierarchy)? {
        let Ok(rel) = sub.strip_prefix(hierarchy) else {
            continue;
        };
        let target = tree.join(rel);
        if std::fs::symlink_metadata(&target).is_err() {
            tracing::warn!(
                "Not carrying mount {} into the merged tree: {} does not exist there.",
                sub.display(),
                target.display()
            );
            continue;
        }
        let clone = mounts::clone_tree(&sub)?;
        mounts::attach(&clone, &target)
            .with_context(|| format!("carrying submount {} into the merged tree", sub.display()))?;
        tracing::debug!("Carried submount {} into the merged tree.", sub.display());
    }
    Ok(())
}

type Opened = (Accepted, PathBuf, Option<OpenedImage>);

/// Report conflicts between the accepted layers (and the host hierarchy underneath) and, under
/// `refuse`, drop the later extension of each. Where the hierarchy is its own upper dir its files
/// win over every extension, so it is not compared as "base" there.
fn apply_conflict_policy(
    s: &ClassSettings,
    facts: &[mutable::HierarchyFacts],
    opened: &mut Vec<Opened>,
    out: &mut Assembly,
) -> Result<()> {
    if s.check_conflicts == ConflictPolicy::Off || opened.is_empty() {
        return Ok(());
    }
    for f in facts {
        let layers: Vec<(String, PathBuf)> = opened
            .iter()
            .map(|(a, root, _)| (a.name.clone(), root.clone()))
            .collect();
        let self_upper = f
            .mutable_dir
            .as_ref()
            .is_some_and(|m| m.same_inode_as_hierarchy);
        let base = (!self_upper).then_some(s.root.as_path());
        let hierarchies = [f.hierarchy.clone()];
        let (found, dropped) = match s.check_conflicts {
            ConflictPolicy::Refuse => {
                let r = conflicts::refuse(&layers, base, &hierarchies)?;
                (r.conflicts, r.dropped)
            }
            _ => match conflicts::scan(&layers, base, &hierarchies) {
                Ok(c) => (c, Vec::new()),
                Err(e) => {
                    tracing::warn!(
                        "Could not check {} for conflicts: {e:#}",
                        f.hierarchy.display()
                    );
                    continue;
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
            if let Some(pos) = opened.iter().position(|(a, _, _)| a.name == name) {
                let (a, _, _) = opened.remove(pos);
                out.rejected.push(Rejected {
                    name: a.name,
                    path: a.path,
                    reason: format!("refused (--check-conflicts=refuse): {reason}"),
                    error: false,
                });
            }
        }
    }
    Ok(())
}

/// Assemble every hierarchy of one class. Must run inside [`namespace::in_private_namespace`].
/// On refresh the existing overlays are peeled off first, in the private namespace only, so the
/// host hierarchy is the bottom layer again; the caller's namespace still shows the old merge.
pub fn assemble_in_private_namespace(
    s: &ClassSettings,
    input: AssembleInput<'_>,
) -> Result<Assembly> {
    let (host, candidates) = (input.host, input.candidates);
    let ws = PathBuf::from(WORKSPACE);
    mkdir_p(&ws, 0o700)?;
    mounts::mount_tmpfs(&ws, 0o700)?;
    let mut out = Assembly::default();

    if input.refresh {
        for h in &s.hierarchies {
            let p = host_path(&s.root, h);
            while meta::is_ours(&p, s.class)? {
                crate::merge::unmerge::peel(&p, s.class)?;
            }
        }
        crate::failpoint::hit("private-peeled")?;
    }

    let policy = ImagePolicy::for_class(s.class, s.image_policy.as_deref())
        .with_context(|| format!("image policy {:?}", s.image_policy.as_deref().unwrap_or("")))?;
    let mut opened = open_candidates(s, &policy, host, candidates, &ws, &mut out)?;
    if opened.is_empty() && s.mutable == crate::decide::mutable::MutableMode::No {
        return Ok(out);
    }

    let mut mutable_dirs = Vec::new();
    let mut facts = Vec::new();
    for h in &s.hierarchies {
        let f = crate::gather::facts::gather_facts(&s.root, h, s.mutable)?;
        if let Some(d) = &f.mutable_dir {
            mutable_dirs.push((h.clone(), d.resolved.clone()));
        }
        facts.push(f);
    }
    apply_conflict_policy(s, &facts, &mut opened, &mut out)?;
    out.accepted = opened.iter().map(|(a, _, _)| a.clone()).collect();
    if out.accepted.is_empty() && s.mutable == crate::decide::mutable::MutableMode::No {
        return Ok(out);
    }
    let ctx = Ctx {
        s,
        ws: &ws,
        accepted_names: out.accepted.iter().map(|a| a.name.clone()).collect(),
        origin: build_origin(s, &out.accepted, &mutable_dirs, input.origin_ids)?,
        state_text: String::new(),
        busy_workdirs: input.busy_workdirs,
    };

    // Plan every hierarchy first: the state record lists which ones get an overlay.
    let mut plans = Vec::new();
    for f in &facts {
        // Top first: the highest name wins.
        let mut used = Vec::new();
        for (a, layer_root, _) in opened.iter().rev() {
            if let Some(p) = contributes(layer_root, &f.hierarchy) {
                used.push((a.name.clone(), p));
            }
        }
        let names: Vec<String> = used.iter().map(|(n, _)| n.clone()).collect();
        let plan = mutable::plan(s.mutable, f, &names, s.overlay_options.as_deref())
            .map_err(|e| anyhow!("{} ({}): {e}", f.hierarchy.display(), e.errno()))?;
        let Some(plan) = plan else { continue };
        plans.push((plan, used, names));
    }
    let mut ctx = ctx;
    ctx.state_text = serde_json::to_string_pretty(&StateFile {
        state: input.state.clone(),
        merged: plans.iter().map(|(p, _, _)| p.hierarchy.clone()).collect(),
    })?;
    for (plan, used, names) in plans {
        let f = facts
            .iter()
            .find(|f| f.hierarchy == plan.hierarchy)
            .ok_or_else(|| anyhow!("internal: no facts for {}", plan.hierarchy.display()))?;
        let tree = build_hierarchy(&ctx, &plan, &used)?;
        out.trees.push(HierarchyTree {
            hierarchy: f.hierarchy.clone(),
            tree,
            layers: names,
            writable: !plan.read_only,
            self_upper: plan.self_upper,
        });
    }
    // Loop devices stay referenced by the overlays' private layer clones; our fds can go now.
    drop(opened);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{resolve, CliOptions};

    fn settings(class: ImageClass, noexec: Option<bool>) -> ClassSettings {
        let t = std::env::temp_dir();
        let cli = CliOptions {
            root: Some(t),
            noexec,
            ..Default::default()
        };
        resolve(&cli, class, &|_| None).unwrap()
    }

    #[test]
    fn image_mounts_follow_the_class_and_noexec_override() {
        let f = image_mount_flags(&settings(ImageClass::Confext, None));
        assert!(f.nosuid && f.noexec);
        let f = image_mount_flags(&settings(ImageClass::Confext, Some(false)));
        assert!(f.nosuid && !f.noexec);
        let f = image_mount_flags(&settings(ImageClass::Sysext, None));
        assert!(!f.nosuid && !f.noexec);
        let f = image_mount_flags(&settings(ImageClass::Sysext, Some(true)));
        assert!(f.noexec);
    }

    #[test]
    fn class_default_flags_match_systemd() {
        assert_eq!(
            class_default_flags(ImageClass::Sysext),
            MountFlags::RDONLY | MountFlags::NODEV
        );
        assert!(class_default_flags(ImageClass::Confext)
            .contains(MountFlags::NOEXEC | MountFlags::NOSUID));
    }

    #[test]
    fn attrs_translate_legacy_flags() {
        let a = to_attrs(
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOEXEC,
            true,
        );
        assert!(a.contains(MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV));
        assert!(a.contains(MountAttrFlags::MOUNT_ATTR_NOEXEC | MountAttrFlags::MOUNT_ATTR_NOATIME));
        assert!(!a.contains(MountAttrFlags::MOUNT_ATTR_NOSUID));
    }

    #[test]
    fn origin_uses_recorded_identities_and_mutable_dirs() {
        let s = settings(ImageClass::Sysext, None);
        let acc = vec![Accepted {
            name: "a".into(),
            kind: ImageKind::Raw,
            path: "/var/lib/extensions/a.raw".into(),
            fstype: None,
        }];
        let mut ids = BTreeMap::new();
        ids.insert("a".to_string(), OriginId::Verity("ab".into()));
        let text = build_origin(
            &s,
            &acc,
            &[("/usr".into(), "/var/lib/extensions.mutable/usr".into())],
            &ids,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["mutable"]["mode"], "no");
        assert_eq!(
            v["mutable"]["mutableDirs"]["/usr"],
            "/var/lib/extensions.mutable/usr"
        );
        assert_eq!(v["extensions"]["a"]["verityHash"], "ab");
        assert!(build_origin(&s, &acc, &[], &BTreeMap::new()).is_err());
    }
}
