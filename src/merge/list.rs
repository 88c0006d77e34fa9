//! What `list` reports: the candidates of each class in layer order, each with a verdict for
//! directories (their release data judged against the host) — discovery and judgement only,
//! nothing is mounted, so it may run unprivileged.

use crate::class::ImageClass;
use crate::decide::release::{judge, Scope, Verdict};
use crate::gather::discover::{self, ImageKind};
use crate::gather::{host, release};
use crate::kernel::root::Root;
use crate::settings::ClassSettings;
use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;

/// What `list` concluded about one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Would be merged.
    Accepted,
    /// Found, but would not be merged (see reason).
    Ignored,
    /// A raw image or block device: its release data is only read when `merge` opens it.
    Unchecked,
    /// A directory entry that is not an image candidate at all (see reason).
    Skipped,
}

/// One row of `list` (stable JSON: fields are only ever added). The first four are
/// `systemd-sysext list --json`'s, with its meaning and in its order; extmerge's follow.
/// Paths are [`crate::log::escape`]d: C-unescaping a path field gives its bytes back.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEntry {
    /// Image name (`null` for skipped entries).
    pub name: Option<String>,
    /// `directory`, `raw` or `block` (`null` for skipped entries).
    #[serde(rename = "type")]
    pub kind: Option<ImageKind>,
    /// Resolved path, root-prefixed as systemd prints it.
    #[serde(serialize_with = "crate::log::serialize_path")]
    pub path: PathBuf,
    /// Modification time, else birth time, in µs (systemd's `mtime ?: crtime`); `null` for
    /// skipped entries.
    pub time: Option<u64>,
    /// Extension class.
    pub class: ImageClass,
    /// Decision.
    pub status: Status,
    /// Why it is ignored, unchecked or skipped.
    pub reason: Option<String>,
    /// Resolved path inside the root.
    #[serde(serialize_with = "crate::log::serialize_path")]
    pub path_in_root: PathBuf,
    /// The directory entry that led to it, inside the root.
    #[serde(serialize_with = "crate::log::serialize_path")]
    pub entry: PathBuf,
    /// Search directory it was found in.
    #[serde(serialize_with = "crate::log::serialize_opt_path")]
    pub search_dir: Option<PathBuf>,
    /// Position in the layer order, 0 = bottom-most extension; the highest number ends up on top.
    pub order: Option<usize>,
}

/// Evaluate one class: discovery plus a compatibility verdict for each directory candidate.
pub fn evaluate(settings: &ClassSettings) -> Result<Vec<ListEntry>> {
    let class = settings.class;
    let root = Root::open(&settings.root)?;
    let initrd = host::host_scope(&root)? == Scope::Initrd;
    let found = discover::discover(&root, class, initrd)?;
    // list mounts nothing and may run unprivileged: the host is read as the root shows it now.
    let host = host::load(&root).map_err(|e| format!("{e:#}"));

    let mut out = Vec::new();
    for (order, c) in found.images.iter().enumerate() {
        let (status, reason) = match c.kind {
            ImageKind::Directory => {
                let facts = root
                    .resolve(&c.path)
                    .map_err(anyhow::Error::new)
                    .and_then(|d| Ok(Root::from_fd(d.fd, root.show(&c.path))?))
                    .map(|tree| release::tree_facts(&tree, class, &c.name, &settings.hierarchies));
                match facts {
                    Ok(facts) => match judge(
                        host.as_ref().map_err(|e| e.as_str()),
                        class,
                        &c.name,
                        true,
                        &facts,
                        settings.force,
                    ) {
                        Verdict::Accept => (Status::Accepted, None),
                        Verdict::Reject(r) => (Status::Ignored, Some(r.to_string())),
                    },
                    Err(e) => (Status::Ignored, Some(format!("cannot read it: {e:#}"))),
                }
            }
            ImageKind::Raw | ImageKind::Block => (
                Status::Unchecked,
                Some("image file: its extension-release is read when merge opens it".to_string()),
            ),
        };
        // systemd's list prints `mtime ?: crtime` of image_make()'s identifiers: a plain
        // directory has no mtime there, a block device neither time, a btrfs subvolume its
        // root item's times.
        let time = root.resolve(&c.path).ok().and_then(|f| {
            let w =
                crate::gather::weak_id::weak_id_of(std::os::fd::AsFd::as_fd(&f.fd), c.kind).ok()?;
            Some(if w.mtime != 0 { w.mtime } else { w.crtime })
        });
        out.push(ListEntry {
            class,
            name: Some(c.name.clone()),
            kind: Some(c.kind),
            path: root.show(&c.path),
            time,
            status,
            reason,
            path_in_root: c.path.clone(),
            entry: c.entry.clone(),
            search_dir: Some(c.search_dir.clone()),
            order: Some(order),
        });
    }
    for s in found.skipped {
        out.push(ListEntry {
            name: None,
            kind: None,
            path: root.show(&s.entry),
            time: None,
            class,
            status: Status::Skipped,
            reason: Some(s.reason),
            path_in_root: s.entry.clone(),
            entry: s.entry,
            search_dir: None,
            order: None,
        });
    }
    Ok(out)
}
