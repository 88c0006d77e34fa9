//! Build the merged tree of every hierarchy of one class from the opened layers, inside the
//! private namespace, and hand each back as one detached mount fd. Every directory given to
//! overlayfs (layers, upper and work dirs) is an fd resolved inside the root, passed as its
//! `/proc/thread-self/fd/N` magic link: nothing is looked up by name at mount time.

use crate::class::ImageClass;
use crate::decide::mountopts::MountFlags;
use crate::decide::mutable::{self, HierarchyPlan, Layer, UpperDir};
use crate::decide::origin;
use crate::decide::reject::Reject;
use crate::decide::skip_record::{Choice, SkipRecord};
use crate::decide::state::{StateFile, STATE_FILE};
use crate::gather::snapshot::Snapshot;
use crate::kernel::mounts;
use crate::kernel::overlay::{self, OverlaySpec, MAX_LOWER_LAYERS};
use crate::kernel::root::{Found, Root};
use crate::merge::open::Opened;
use crate::meta::{self, MetaContents};
use crate::settings::ClassSettings;
use anyhow::{anyhow, Context, Result};
use rustix::fs::FileType;
use std::cell::Cell;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the private workspace tmpfs is mounted (only ever inside the private namespace).
pub const WORKSPACE: &str = "/run/extmerge/ws";

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

fn mkdir_p(p: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
        .with_context(|| format!("creating directory {}", p.display()))
}

/// Mount the private workspace tmpfs (call inside the private namespace only).
pub fn workspace() -> Result<PathBuf> {
    let ws = PathBuf::from(WORKSPACE);
    mkdir_p(&ws, 0o700)?;
    mounts::mount_tmpfs(&ws, 0o700)?;
    Ok(ws)
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

/// systemd's refresh-skip record for the accepted extensions, in the form the root's systemd
/// reads (identities taken before the namespace switch); `None` when it reads none.
fn skip_record_text(
    s: &ClassSettings,
    snap: &Snapshot,
    accepted: &[(String, PathBuf)],
    mutable_dirs: &[(PathBuf, PathBuf)],
) -> Result<Option<String>> {
    let format = snap.state.skip_record.record;
    if format == SkipRecord::NoSkipLogic {
        return Ok(None);
    }
    let origin = origin::origin_of(
        s.mutable,
        &s.hierarchies,
        s.overlay_options.as_deref(),
        accepted,
        mutable_dirs,
        &snap.origin_ids,
    )
    .map_err(anyhow::Error::msg)?;
    Ok(origin.to_json_text(format))
}

/// One line on which refresh-skip record is written and why. Where the root's systemd has no
/// skip logic, the booted system's refresh undoes the merge: that is worth a warning, once a run.
fn log_skip_record(s: &ClassSettings, c: &Choice) {
    tracing::info!(
        CLASS = s.class.name(),
        SKIP_RECORD = c.record.as_str(),
        "Writing {} for the booted system's {} refresh: {}.",
        c.record.describe(),
        s.class,
        c.reason
    );
    static WARNED: std::sync::Once = std::sync::Once::new();
    if c.record == SkipRecord::NoSkipLogic {
        WARNED.call_once(|| {
            tracing::warn!(
                "The root's systemd cannot skip an unchanged refresh: the booted system's stock systemd-sysext/systemd-confext refresh will unmerge and merge again (remounting /usr, /opt and /etc). extmerge's booted-system units avoid that: see README, 'In the booted system'."
            )
        });
    }
}

/// A work dir name not used by the overlay being replaced: the old and the new overlay coexist
/// for a moment during an atomic refresh, and overlayfs must not share a work dir. Never a
/// blocking `getrandom`: in the initrd's first refresh that waited 1.1 s for the entropy pool.
fn fresh_workdir(work: &Path) -> PathBuf {
    let bytes = crate::kernel::unique::unique_bytes();
    let mut name = work.file_name().unwrap_or_default().to_os_string();
    name.push(format!("-{}", crate::ondisk::bytes::hex(&bytes)));
    work.with_file_name(name)
}

/// What the extension trees contribute to `hierarchy`: the non-empty directory each has there
/// (systemd leaves a layer out of a hierarchy it does not populate), top first.
fn contributions(opened: &Opened, hierarchy: &Path) -> Vec<(String, Found)> {
    let mut out = Vec::new();
    for l in opened.layers.iter().rev() {
        let Ok(d) = l.tree.resolve(hierarchy) else {
            continue;
        };
        let non_empty =
            d.is_dir() && crate::gather::discover::list_dir(&d).is_ok_and(|e| !e.is_empty());
        if non_empty {
            out.push((l.name.clone(), d));
        }
    }
    out
}

/// Leave out the lowest-priority extensions that overlayfs cannot stack: the others merge.
/// The meta layer and the host hierarchy take one slot each, an imported mutable dir one more.
pub fn apply_layer_limit(opened: &mut Opened, mode: mutable::MutableMode) {
    let import = matches!(
        mode,
        mutable::MutableMode::Import | mutable::MutableMode::EphemeralImport
    );
    let room = MAX_LOWER_LAYERS - 2 - usize::from(import);
    while opened.layers.len() > room {
        let name = opened.layers[0].name.clone();
        opened.reject(
            &name,
            Reject::LayerLimit {
                limit: MAX_LOWER_LAYERS,
            },
        );
    }
}

/// Everything one hierarchy's tree is built from.
struct Build<'a> {
    s: &'a ClassSettings,
    root: &'a Root,
    ws: &'a Path,
    meta: MetaContents,
    state_text: &'a str,
    busy_workdirs: &'a [PathBuf],
    /// Time spent mounting overlays and writing the records, over all hierarchies (phases
    /// `assemble.overlay` and `assemble.record`).
    spent: Cell<(Duration, Duration)>,
}

impl Build<'_> {
    fn add_overlay(&self, since: Instant) {
        let (o, r) = self.spent.get();
        self.spent.set((o + since.elapsed(), r));
    }

    fn add_record(&self, since: Instant) {
        let (o, r) = self.spent.get();
        self.spent.set((o, r + since.elapsed()));
    }
}

/// Resolve an in-root directory for overlayfs; it must be a directory.
fn layer_dir(root: &Root, p: &Path, what: &str) -> Result<Found> {
    let f = root
        .resolve(p)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("resolving the {what} {}", p.display()))?;
    if f.file_type() != FileType::Directory {
        anyhow::bail!(
            "the {what} {} is not a directory",
            root.show(&f.in_root).display()
        );
    }
    Ok(f)
}

/// Build the overlay tree for one hierarchy per `plan`, returning the detached tree fd.
fn build_hierarchy(
    b: &Build<'_>,
    plan: &HierarchyPlan,
    ext: &[(String, Found)],
) -> Result<OwnedFd> {
    let s = b.s;
    let comp = mutable::hierarchy_component(&plan.hierarchy);
    let meta_root = b.ws.join("meta").join(&comp);
    mkdir_p(&meta_root, 0o700)?;

    // The fds behind the magic links must stay open until the overlay exists.
    let mut keep: Vec<Found> = Vec::new();
    let (lowers, host_dev) = lower_paths(b.root, plan, ext, &meta_root, &mut keep)?;
    let upper = upper_paths(b, plan, &comp, &meta_root, &mut keep)?;

    // The merged root shows the top layer's mode: keep the hierarchy's (a 0700 /usr broke Flatcar).
    std::fs::set_permissions(&upper.top, std::fs::Permissions::from_mode(plan.top_mode))
        .with_context(|| {
            format!(
                "setting mode {:o} on the top layer of {}",
                plan.top_mode,
                plan.hierarchy.display()
            )
        })?;

    let flags = plan.mount_flags(class_default_flags(s.class), s.noexec);
    let spec = OverlaySpec {
        source: s.class.overlay_source().to_string(),
        lowerdirs: lowers,
        upperdir: upper.upper,
        workdir: upper.work,
        options: plan.options.clone(),
        attrs: overlay::mount_attrs(flags, plan.noatime),
        force_legacy_lowerdir: false,
    };
    let mounting = Instant::now();
    let fd = overlay::build_detached(&spec)
        .with_context(|| format!("building the overlay for {}", plan.hierarchy.display()))?;
    b.add_overlay(mounting);
    crate::failpoint::hit_with("overlay-built", plan.hierarchy.display())?;
    drop(keep);
    let recording = Instant::now();
    write_meta(b, plan, &fd, &meta_root, host_dev, upper.work_in_root)?;
    b.add_record(recording);

    // Assemble the final tree at a workspace path, then clone it as one detached tree.
    let at = b.ws.join("overlay").join(&comp);
    mkdir_p(&at, 0o755)?;
    mounts::attach(&fd, &at)?;
    let meta_name = s.class.meta_dir_name();
    if plan.upper.is_some() {
        // The meta layer's own directory, not the merged path: a stale copy in the upper dir
        // (Flatcar's /etc is its own upper) must not be what the merge says about itself.
        mounts::bind_readonly(&meta_root.join(meta_name), &at.join(meta_name))?;
    }
    carry_submounts(b.root, &plan.hierarchy, &at)?;
    let tree = mounts::clone_tree(&at)?;
    crate::failpoint::hit_with("tree-assembled", plan.hierarchy.display())?;
    Ok(tree)
}

/// A device number as (major, minor).
type DevNum = (u32, u32);

/// The lower layers as paths the kernel can open (the meta layer in the workspace, the others
/// as magic links to fds kept in `keep`), and the host hierarchy's device.
fn lower_paths(
    root: &Root,
    plan: &HierarchyPlan,
    ext: &[(String, Found)],
    meta_root: &Path,
    keep: &mut Vec<Found>,
) -> Result<(Vec<PathBuf>, Option<DevNum>)> {
    let mut host_dev = None;
    let mut lowers = Vec::new();
    for layer in &plan.lowers {
        lowers.push(match layer {
            Layer::Meta => meta_root.to_path_buf(),
            Layer::Import(p) => {
                let f = layer_dir(root, p, "imported mutable directory")?;
                let path = f.proc_path();
                keep.push(f);
                path
            }
            Layer::Host(p) => {
                let f = layer_dir(root, p, "host hierarchy")?;
                let path = f.proc_path();
                host_dev = Some((
                    rustix::fs::major(f.stat.st_dev),
                    rustix::fs::minor(f.stat.st_dev),
                ));
                keep.push(f);
                path
            }
            Layer::Extension(name) => ext
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, f)| f.proc_path())
                .ok_or_else(|| anyhow!("internal: no layer for extension '{name}'"))?,
        });
    }
    Ok((lowers, host_dev.filter(|d| *d != (0, 0))))
}

/// Where writes go: the upper and work dirs for the kernel, the directory whose mode the merged
/// root shows, and the work dir's in-root path for the meta record.
struct UpperPaths {
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
    top: PathBuf,
    work_in_root: Option<PathBuf>,
}

fn upper_paths(
    b: &Build<'_>,
    plan: &HierarchyPlan,
    comp: &str,
    meta_root: &Path,
    keep: &mut Vec<Found>,
) -> Result<UpperPaths> {
    let root = b.root;
    match &plan.upper {
        None => Ok(UpperPaths {
            upper: None,
            work: None,
            top: meta_root.to_path_buf(),
            work_in_root: None,
        }),
        Some(UpperDir::Persistent { upper, work }) => {
            let work = if b.busy_workdirs.contains(work) {
                fresh_workdir(work)
            } else {
                work.clone()
            };
            let u = layer_dir(root, upper, "mutable directory")?;
            let w = root
                .mkdir_all(&work, 0o700)
                .with_context(|| format!("creating the work directory {}", work.display()))?;
            // The work dir must be where the record says it is: next to the upper dir.
            if w.in_root.parent() != u.in_root.parent() {
                anyhow::bail!(
                    "the work directory {} does not resolve next to the upper directory {}",
                    root.show(&w.in_root).display(),
                    root.show(&u.in_root).display()
                );
            }
            let work_in_root = Some(w.in_root.clone());
            let (up, wp) = (u.proc_path(), w.proc_path());
            keep.push(u);
            keep.push(w);
            Ok(UpperPaths {
                upper: Some(up.clone()),
                work: Some(wp),
                top: up,
                work_in_root,
            })
        }
        Some(UpperDir::Ephemeral) => {
            let u = b.ws.join("ephemeral").join(comp);
            let w =
                b.ws.join("ephemeral")
                    .join(mutable::work_dir_name(&plan.hierarchy));
            mkdir_p(&u, 0o755)?;
            mkdir_p(&w, 0o700)?;
            Ok(UpperPaths {
                upper: Some(u.clone()),
                work: Some(w),
                top: u,
                work_in_root: None,
            })
        }
    }
}

/// Like systemd, the meta files go into the (still unused) top lower layer right after
/// mounting: only then is the overlay's device number known.
fn write_meta(
    b: &Build<'_>,
    plan: &HierarchyPlan,
    overlay: &OwnedFd,
    meta_root: &Path,
    backing: Option<DevNum>,
    work_in_root: Option<PathBuf>,
) -> Result<()> {
    let s = b.s;
    let st = rustix::fs::fstat(overlay).context("fstat of the new overlay")?;
    crate::failpoint::hit_with("before-write-state", plan.hierarchy.display())?;
    meta::write(
        meta_root,
        s.class,
        &MetaContents {
            dev: (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev)),
            work_dir: work_in_root,
            backing,
            ..b.meta.clone()
        },
    )?;
    let state_file = meta_root.join(s.class.meta_dir_name()).join(STATE_FILE);
    std::fs::write(&state_file, b.state_text)
        .with_context(|| format!("writing {}", state_file.display()))?;
    crate::failpoint::hit_with("after-write-state", plan.hierarchy.display())?;
    Ok(())
}

/// Clone the mounts below the host hierarchy onto the new tree (the originals stay underneath,
/// so they reappear unchanged on unmerge). The mount table names them; each is opened inside
/// the root and confirmed by mount ID, and its place in the new tree is found without
/// following links (an extension's symlink cannot redirect it).
fn carry_submounts(root: &Root, hierarchy: &Path, tree_at: &Path) -> Result<()> {
    let Ok(h) = root.resolve(hierarchy) else {
        return Ok(());
    };
    let prefix = root.show(&h.in_root);
    let tree = Root::open(tree_at)?;
    for sub in mounts::submounts(&prefix)? {
        let Ok(rel) = sub.strip_prefix(&prefix) else {
            continue;
        };
        let Ok(source) = root.resolve_nofollow(&h.in_root.join(rel)) else {
            tracing::warn!("Not carrying mount {}: it vanished.", sub.display());
            continue;
        };
        let target = match tree.resolve_nofollow(rel) {
            Ok(t) if t.file_type() == source.file_type() => t,
            _ => {
                tracing::warn!(
                    "Not carrying mount {} into the merged tree: {} is not there, or not the same kind of file.",
                    sub.display(),
                    tree_at.join(rel).display()
                );
                continue;
            }
        };
        let clone = mounts::clone_tree_fd(source.fd.as_fd(), &sub)?;
        mounts::attach_at(clone.as_fd(), target.fd.as_fd(), &sub)
            .with_context(|| format!("carrying submount {} into the merged tree", sub.display()))?;
        tracing::debug!("Carried submount {} into the merged tree.", sub.display());
    }
    Ok(())
}

/// Build every hierarchy of one class. Must run inside the private namespace, after the
/// class's current merges were peeled there, with `root` opened in that namespace.
pub fn assemble(
    s: &ClassSettings,
    root: &Root,
    ws: &Path,
    snap: &Snapshot,
    opened: &Opened,
    busy_workdirs: &[PathBuf],
) -> Result<Vec<HierarchyTree>> {
    let mutable_dirs: Vec<(PathBuf, PathBuf)> = snap
        .facts
        .iter()
        .filter_map(|f| {
            f.mutable_dir
                .as_ref()
                .map(|d| (f.hierarchy.clone(), d.resolved.clone()))
        })
        .collect();
    let accepted: Vec<(String, PathBuf)> = opened
        .layers
        .iter()
        .map(|l| (l.name.clone(), l.path.clone()))
        .collect();
    let origin = skip_record_text(s, snap, &accepted, &mutable_dirs)?;
    log_skip_record(s, &snap.state.skip_record);

    // Plan every hierarchy first: the state record lists which ones get an overlay.
    let mut plans = Vec::new();
    for f in &snap.facts {
        let ext = contributions(opened, &f.hierarchy);
        let names: Vec<String> = ext.iter().map(|(n, _)| n.clone()).collect();
        let plan =
            mutable::plan(s.mutable, f, &names, s.overlay_options.as_deref()).map_err(|e| {
                let context = format!("{} ({})", f.hierarchy.display(), e.errno());
                anyhow::Error::new(e).context(context)
            })?;
        match plan {
            Some(plan) => plans.push((plan, ext, names)),
            None => tracing::debug!(
                "Nothing to merge into {}, leaving it alone.",
                f.hierarchy.display()
            ),
        }
    }
    let state_text = serde_json::to_string_pretty(&StateFile {
        state: snap.state.clone(),
        merged: plans.iter().map(|(p, _, _)| p.hierarchy.clone()).collect(),
    })?;
    let b = Build {
        s,
        root,
        ws,
        meta: MetaContents {
            extensions: accepted.iter().map(|(n, _)| n.clone()).collect(),
            dev: (0, 0),
            work_dir: None,
            origin,
            backing: None,
        },
        state_text: &state_text,
        busy_workdirs,
        spent: Cell::default(),
    };
    let mut trees = Vec::new();
    for (plan, ext, names) in plans {
        let tree = build_hierarchy(&b, &plan, &ext)?;
        trees.push(HierarchyTree {
            hierarchy: plan.hierarchy.clone(),
            tree,
            layers: names,
            writable: !plan.read_only,
            self_upper: plan.self_upper,
        });
    }
    let (overlay, record) = b.spent.get();
    crate::log::phase_took(s.class.name(), "assemble.overlay", overlay);
    crate::log::phase_took(s.class.name(), "assemble.record", record);
    Ok(trees)
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
        use crate::merge::open::image_mount_flags;
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
}
