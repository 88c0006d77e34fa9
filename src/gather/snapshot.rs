//! Everything a merge of one class is built from, gathered without mounting or writing: the
//! host (from the base, below every merge), the candidates opened once (identity, verity data
//! and later the mount all come from those fds), the facts about each hierarchy, systemd's weak
//! identifiers for its `origin` record, which form of that record the root's systemd reads, and
//! our state record.
//!
//! Runs in the private namespace that assembles the merge (overlay layers must be in the
//! mounting thread's namespace). systemd's weak identifiers are mount IDs of the *caller's*
//! namespace: they are read through a [`Root`] opened there, whose walks stay in that namespace.

use crate::decide::mutable::{HierarchyFacts, MutableMode};
use crate::decide::origin::OriginId;
use crate::decide::release::{HostInfo, Scope};
use crate::decide::skip_record::{self, Choice, SystemdFacts};
use crate::decide::state::{ImageRecord, State, STATE_VERSION};
use crate::gather::discover::{self, Candidate, Discovery, ImageKind};
use crate::gather::identity::{self, Strong};
use crate::gather::{certs, facts, host, systemd, weak_id};
use crate::image::protect;
use crate::image::ImageFile;
use crate::kernel::root::{Found, Root};
use crate::log::timed;
use crate::ondisk::bytes::hex;
use crate::settings::ClassSettings;
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// What is read from the base OS rather than through a merge: a confext shipping
/// `etc/os-release` or a `verity.d` certificate must not change how extensions are judged.
#[derive(Clone, Debug)]
pub struct Base {
    /// The host's identity; `Err` says why it cannot be used.
    pub host: Result<HostInfo, String>,
    /// Trusted certificates for root-hash signatures.
    pub certs: Vec<(PathBuf, Vec<u8>)>,
    /// What the root's files say about its systemd (which refresh-skip record it reads).
    pub systemd: SystemdFacts,
}

impl Base {
    /// Read the base from `root` as it is (the caller made sure no merge covers it).
    pub fn read(root: &Root) -> Result<Base> {
        let host = host::load(root).map_err(|e| format!("{e:#}"));
        Ok(Base {
            systemd: systemd::facts(root, &host),
            host,
            certs: certs::load(root)?,
        })
    }
}

/// How an extension is opened: the directory itself, or its image file.
#[derive(Debug)]
pub enum Handle {
    /// A directory extension (`O_PATH` fd, resolved in the assembling namespace).
    Dir(Found),
    /// An image file or block device, open for reading, with its sidecars.
    Image(ImageFile),
}

/// One candidate, opened.
#[derive(Debug)]
pub struct Source {
    /// What discovery found.
    pub candidate: Candidate,
    /// The open handle, or why the candidate cannot be opened.
    pub handle: Result<Handle, String>,
    /// Its verity root hash, when it carries verity data.
    pub roothash: Option<String>,
}

/// Everything `merge`/`refresh`/`check` need before opening images.
#[derive(Debug)]
pub struct Snapshot {
    /// The host and the trusted certificates, from the base.
    pub base: Base,
    /// Discovered candidates and skipped entries.
    pub found: Discovery,
    /// The candidates opened, in layer order (bottom first).
    pub sources: Vec<Source>,
    /// Facts per hierarchy (mutable dirs, modes), in hierarchy order.
    pub facts: Vec<HierarchyFacts>,
    /// systemd's origin identity per candidate name.
    pub origin_ids: BTreeMap<String, OriginId>,
    /// Our state record.
    pub state: State,
}

fn kind_name(k: ImageKind) -> &'static str {
    match k {
        ImageKind::Directory => "directory",
        ImageKind::Raw => "raw",
        ImageKind::Block => "block",
    }
}

/// Digest of the os-release values that decide compatibility.
fn host_digest(h: &Result<HostInfo, String>) -> String {
    let mut d = Sha256::new();
    match h {
        Ok(h) => {
            for v in [
                Some(h.id.as_str()),
                Some(&h.id_like.join(" ")),
                h.version_id.as_deref(),
                h.sysext_level.as_deref(),
                h.confext_level.as_deref(),
            ] {
                d.update(v.unwrap_or("\u{1}").as_bytes());
                d.update([0u8]);
            }
        }
        Err(e) => d.update(format!("unusable: {e}").as_bytes()),
    }
    hex(&d.finalize())
}

/// Digest of the trusted certificates (names inside `root`, and contents): the same certificates
/// give the same digest whether the root was merged with `--root=/sysroot` in the initrd or is
/// `/` in the booted system, so the booted refresh skips after the initrd's merge.
fn certs_digest(root: &std::path::Path, certs: &[(PathBuf, Vec<u8>)]) -> String {
    let mut d = Sha256::new();
    for (shown, der) in certs {
        let p = shown
            .strip_prefix(root)
            .map(|rel| std::path::Path::new("/").join(rel))
            .unwrap_or_else(|_| shown.clone());
        d.update(p.as_os_str().len().to_le_bytes());
        d.update(p.as_os_str().as_encoded_bytes());
        d.update(der.len().to_le_bytes());
        d.update(der);
    }
    hex(&d.finalize())
}

/// Open one candidate inside `root`.
fn open(root: &Root, c: &Candidate) -> Result<Handle, String> {
    let r = match c.kind {
        ImageKind::Directory => root
            .resolve(&c.path)
            .map_err(anyhow::Error::new)
            .and_then(|f| {
                if f.is_dir() {
                    Ok(Handle::Dir(f))
                } else {
                    Err(anyhow::anyhow!(
                        "{} is no longer a directory",
                        root.show(&c.path).display()
                    ))
                }
            }),
        ImageKind::Raw | ImageKind::Block => ImageFile::open(root, &c.path).map(Handle::Image),
    };
    r.map_err(|e| format!("{e:#}"))
}

/// The content identity of an opened candidate; `Err` when it cannot be read.
fn strong_identity(root: &Root, h: &Handle, roothash: Option<&str>) -> Result<Strong> {
    if let Some(rh) = roothash {
        return Ok(Strong::VerityHash(rh.to_string()));
    }
    // The opened inodes themselves: what is identified is what is mounted.
    match h {
        Handle::Dir(f) => {
            let tree = Root::from_fd(f.fd.try_clone()?, root.show(&f.in_root))?;
            let limits = crate::gather::walk::Limits::default();
            let look = || Ok(identity::tree_identity(&tree, &limits)?);
            Ok(match identity::settle(tree.path(), look)? {
                Ok(key) => Strong::TreeDigest(key),
                Err(unsettled) => Strong::Unsettled(unsettled),
            })
        }
        Handle::Image(img) => crate::gather::image_identity::of(img),
    }
}

/// The signature an image carries, as a digest for the state record.
fn signature_digest(h: &Handle) -> Option<String> {
    match h {
        Handle::Image(img) => img
            .sidecars
            .signature
            .as_ref()
            .map(|s| hex(&Sha256::digest(s))),
        Handle::Dir(_) => None,
    }
}

/// The in-root mutable dir a mode would use (from the gathered facts).
fn mutable_dir_of(f: &HierarchyFacts, mode: MutableMode) -> Option<String> {
    if matches!(mode, MutableMode::No | MutableMode::Ephemeral) {
        return None;
    }
    f.mutable_dir
        .as_ref()
        .map(|m| m.resolved.display().to_string())
}

/// Take a snapshot of one class. `caller` is the root as the caller's namespace sees it (for
/// systemd's weak identifiers).
pub fn take(root: &Root, caller: &Root, base: Base, s: &ClassSettings) -> Result<Snapshot> {
    gather(root, Some(caller), base, s, true)
}

/// A snapshot for `check`: the candidates opened, without identities or a state to record.
pub fn take_for_check(root: &Root, base: Base, s: &ClassSettings) -> Result<Snapshot> {
    gather(root, None, base, s, false)
}

fn gather(
    root: &Root,
    caller: Option<&Root>,
    base: Base,
    s: &ClassSettings,
    identify: bool,
) -> Result<Snapshot> {
    let c = s.class.name();
    let found = timed(c, "gather.discover", || -> Result<Discovery> {
        // systemd picks the search list by <root>/etc/initrd-release as the merging process
        // sees it.
        let initrd = host::host_scope(root)? == Scope::Initrd;
        discover::discover(root, s.class, initrd)
    })?;
    let opened: Vec<Opened> = timed(c, "gather.open", || {
        found.images.iter().map(|c| open_one(root, c)).collect()
    });
    let mut identities = timed(c, "gather.identify", || {
        if identify {
            identify_all(root, &opened)
        } else {
            opened.iter().map(|_| None).collect()
        }
    });
    let started = std::time::Instant::now();
    let mut origin_ids = BTreeMap::new();
    let mut sources = Vec::new();
    let mut images = Vec::new();
    for ((c, o), id) in found.images.iter().zip(opened).zip(identities.drain(..)) {
        let (source, record, origin) = inspect(caller, c, o, id);
        if let Some(o) = origin {
            origin_ids.insert(c.name.clone(), o);
        }
        images.push(record);
        sources.push(source);
        crate::failpoint::hit_with("image-identified", &c.name)?;
    }
    let facts = s
        .hierarchies
        .iter()
        .map(|h| facts::gather_facts(root, h, s.mutable))
        .collect::<Result<Vec<_>>>()?;
    let skip_record = skip_record::choose(&base.systemd);
    let state = state_of(&base, s, &facts, images, skip_record);
    crate::log::phase(c, "gather.facts", started);
    Ok(Snapshot {
        base,
        found,
        sources,
        facts,
        origin_ids,
        state,
    })
}

/// A candidate opened (or why not), with the root hash that identifies a verity image.
struct Opened {
    handle: std::result::Result<Handle, String>,
    roothash: Option<String>,
}

fn open_one(root: &Root, c: &Candidate) -> Opened {
    let handle = open(root, c);
    let roothash = match &handle {
        Ok(Handle::Image(img)) => protect::roothash_identity(img),
        _ => None,
    };
    Opened { handle, roothash }
}

/// The content identity of every opened candidate; with several directories, on as many
/// threads as there are processors (a directory's identity is one `statx` per entry: the walks
/// are what an unchanged refresh spends its time on, while an image's is a few syscalls, less
/// than starting a thread). `None` for a candidate that could not be opened.
fn identify_all(root: &Root, opened: &[Opened]) -> Vec<Option<Result<Strong>>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let identify = |i: usize| {
        let o = &opened[i];
        let h = o.handle.as_ref().ok()?;
        Some(strong_identity(root, h, o.roothash.as_deref()))
    };
    let dirs = opened
        .iter()
        .filter(|o| matches!(o.handle, Ok(Handle::Dir(_))))
        .count();
    let mut out: Vec<Option<Result<Strong>>> = opened.iter().map(|_| None).collect();
    if dirs <= 1 {
        // A panic leaves this candidate without an identity, as a worker's does its own.
        for (i, id) in out.iter_mut().enumerate() {
            *id = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| identify(i)))
                .unwrap_or_default();
        }
        return with_internal_errors(opened, out);
    }
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(dirs);
    let done: Vec<Vec<(usize, Option<Result<Strong>>)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= opened.len() {
                            return mine;
                        }
                        mine.push((i, identify(i)));
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect()
    });
    for (i, id) in done.into_iter().flatten() {
        out[i] = id;
    }
    with_internal_errors(opened, out)
}

/// A candidate left without an identity by a panic is not merged: an internal error.
fn with_internal_errors(
    opened: &[Opened],
    mut out: Vec<Option<Result<Strong>>>,
) -> Vec<Option<Result<Strong>>> {
    for (o, id) in opened.iter().zip(out.iter_mut()) {
        if o.handle.is_ok() && id.is_none() {
            *id = Some(Err(anyhow::anyhow!("internal error while identifying it")));
        }
    }
    out
}

/// What to merge, what to record in our state, and systemd's identifiers for its `origin`
/// record, for one opened and identified candidate.
fn inspect(
    caller: Option<&Root>,
    c: &Candidate,
    o: Opened,
    identity: Option<Result<Strong>>,
) -> (Source, ImageRecord, Option<OriginId>) {
    let Opened {
        mut handle,
        roothash,
    } = o;
    let identity = match identity {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            // Not merged: what cannot be identified cannot be told apart from a change.
            handle = Err(format!("cannot inspect it to identify it: {e:#}"));
            None
        }
        None => None,
    };
    // systemd records only the root hash for verity images (the kernel checks the content).
    let origin = match &roothash {
        Some(h) => Some(OriginId::Verity(h.clone())),
        None => caller
            .and_then(|caller| caller.resolve(&c.path).ok())
            .and_then(|f| weak_id::weak_id_of(f.fd.as_fd(), c.kind).ok())
            .map(OriginId::Weak),
    };
    let inode = match (&handle, &roothash) {
        (Ok(Handle::Dir(f)), None) => Some(f.inode()),
        (Ok(Handle::Image(img)), None) => Some(img.found.inode()),
        _ => None,
    };
    let record = ImageRecord {
        name: c.name.clone(),
        kind: kind_name(c.kind).into(),
        path: c.path.clone(),
        signature: handle.as_ref().ok().and_then(signature_digest),
        inode: inode.map(|(dev, ino)| format!("{dev}:{ino}")),
        identity,
    };
    let source = Source {
        candidate: c.clone(),
        handle,
        roothash,
    };
    (source, record, origin)
}

/// Our state record of a class: the host, every setting that changes the result, the images.
fn state_of(
    base: &Base,
    s: &ClassSettings,
    facts: &[HierarchyFacts],
    images: Vec<ImageRecord>,
    skip_record: Choice,
) -> State {
    State {
        version: STATE_VERSION,
        class: s.class.name().into(),
        os_release: host_digest(&base.host),
        scope: base
            .host
            .as_ref()
            .map_or_else(|_| "unknown".to_string(), |h| h.scope.as_str().into()),
        architecture: base
            .host
            .as_ref()
            .map_or_else(|_| String::new(), |h| h.architecture.clone()),
        mutable: s.mutable.as_str().into(),
        mutable_dirs: facts
            .iter()
            .map(|f| {
                (
                    f.hierarchy.display().to_string(),
                    mutable_dir_of(f, s.mutable),
                )
            })
            .collect(),
        hierarchies: s.hierarchies.clone(),
        overlay_options: s.overlay_options.clone(),
        noexec: s.noexec,
        force: s.force,
        image_policy: s.image_policy.clone(),
        check_conflicts: s.check_conflicts.as_str().into(),
        certificates: certs_digest(&s.root, &base.certs),
        images,
        skip_record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_digest_is_the_same_in_the_initrd_and_the_booted_system() {
        let der = vec![1u8, 2, 3];
        let initrd = certs_digest(
            std::path::Path::new("/sysroot"),
            &[(
                PathBuf::from("/sysroot/usr/lib/verity.d/a.crt"),
                der.clone(),
            )],
        );
        let booted = certs_digest(
            std::path::Path::new("/"),
            &[(PathBuf::from("/usr/lib/verity.d/a.crt"), der.clone())],
        );
        assert_eq!(initrd, booted);
        let renamed = certs_digest(
            std::path::Path::new("/"),
            &[(PathBuf::from("/usr/lib/verity.d/b.crt"), der)],
        );
        assert_ne!(booted, renamed);
    }
}
