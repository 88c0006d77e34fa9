//! Gather, without mounting anything, what a merge of one class would be built from: the host,
//! the candidates with systemd's weak identifiers (for `origin`) and our strong state record.
//! Runs in the caller's mount namespace: mount IDs inside a private namespace would differ.

use crate::chase;
use crate::decide::mutable::{self, MutableMode};
use crate::decide::release::{HostInfo, Scope};
use crate::decide::state::{ImageRecord, OriginId, State, STATE_VERSION};
use crate::gather::discover::{self, Discovery, ImageKind};
use crate::gather::identity::{self, HashCache};
use crate::image::protect;
use crate::settings::ClassSettings;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Where file hashes are cached, inside the root: it must outlive reboots, or the initrd would
/// re-hash every image on every boot (its /run is new each time). Entries are keyed by device,
/// inode, size, mtime and ctime, so a stale or foreign entry never matches. One file per class:
/// a run keeps only the entries it used, and the classes run separately.
pub fn hash_cache_path(class: crate::class::ImageClass) -> std::path::PathBuf {
    std::path::PathBuf::from(format!(
        "/var/cache/extmerge/hash-cache-{}.json",
        class.name()
    ))
}

/// Everything `merge`/`refresh` need before assembling.
#[derive(Debug)]
pub struct Snapshot {
    /// The host (root) os-release, scope and architecture.
    pub host: HostInfo,
    /// Discovered candidates in layer order.
    pub found: Discovery,
    /// systemd origin identity per candidate name.
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
fn host_digest(h: &HostInfo) -> String {
    let mut d = Sha256::new();
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
    identity::hex(&d.finalize())
}

/// The in-root mutable dir a mode would use, looked up without creating anything.
fn mutable_dir_snapshot(root: &Path, hierarchy: &Path, mode: MutableMode) -> Option<String> {
    if matches!(mode, MutableMode::No | MutableMode::Ephemeral) {
        return None;
    }
    chase::chase(root, &mutable::mutable_dir_for(hierarchy))
        .ok()
        .filter(|r| r.host.is_dir())
        .map(|r| r.in_root.display().to_string())
}

/// Take a snapshot of one class. `cache` avoids re-hashing unchanged image files.
pub fn take(s: &ClassSettings, cache: &mut HashCache) -> Result<Snapshot> {
    let host = HostInfo::load(&s.root)
        .context("cannot evaluate extensions without the host's os-release")?;
    let found = discover::discover(&s.root, s.class, host.scope == Scope::Initrd)?;
    let mut origin_ids = BTreeMap::new();
    let mut images = Vec::new();
    for c in &found.images {
        // A verity root hash identifies the content (the kernel checks every read against it):
        // systemd then records only the hash, and we need not read the image at all.
        let verity = match c.kind {
            ImageKind::Directory => None,
            _ => protect::roothash_identity(&c.host_path),
        };
        let identity = if let Some(h) = verity {
            origin_ids.insert(c.name.clone(), OriginId::Verity(h.clone()));
            identity::Strong::VerityHash(h)
        } else {
            let weak = identity::weak_id(&c.host_path, c.kind).with_context(|| {
                format!("identifying extension '{}' ({})", c.name, c.path.display())
            })?;
            origin_ids.insert(c.name.clone(), OriginId::Weak(weak));
            // An unreadable image still gets a record: its error will be reported by the merge.
            identity::strong_id(&c.host_path, c.kind, cache)
                .unwrap_or_else(|e| identity::Strong::Sha256(format!("unreadable: {e:#}")))
        };
        images.push(ImageRecord {
            name: c.name.clone(),
            kind: kind_name(c.kind).into(),
            path: c.path.clone(),
            identity,
        });
        crate::failpoint::hit_with("image-identified", &c.name)?;
    }
    let mutable_dirs = s
        .hierarchies
        .iter()
        .map(|h| {
            (
                h.display().to_string(),
                mutable_dir_snapshot(&s.root, h, s.mutable),
            )
        })
        .collect();
    let state = State {
        version: STATE_VERSION,
        class: s.class.name().into(),
        os_release: host_digest(&host),
        scope: host.scope.as_str().into(),
        architecture: host.architecture.clone(),
        mutable: s.mutable.as_str().into(),
        mutable_dirs,
        hierarchies: s.hierarchies.clone(),
        overlay_options: s.overlay_options.clone(),
        noexec: s.noexec,
        force: s.force,
        image_policy: s.image_policy.clone(),
        images,
    };
    Ok(Snapshot {
        host,
        found,
        origin_ids,
        state,
    })
}
