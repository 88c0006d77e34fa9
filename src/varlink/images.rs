//! `io.systemd.sysext.List`'s replies: one object per discovered image, as systemd's
//! `image_to_json()` builds it from `image_make()` — `Type`, `Class`, `Name`, `Path` (resolved,
//! root-prefixed), `ReadOnly`, and the times and sizes systemd knows for that kind of image,
//! each left out when it is zero or unknown.

use crate::class::ImageClass;
use crate::decide::release::Scope;
use crate::gather::discover::{self, Candidate, ImageKind};
use crate::gather::host;
use crate::kernel::root::Root;
use crate::settings::ClassSettings;
use anyhow::Result;
use serde_json::{Map, Value};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsFd;

/// What systemd's `image_make()` records that List reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// `ReadOnly`.
    pub read_only: bool,
    /// Birth time in µs (0: unknown).
    pub crtime: u64,
    /// Modification time in µs (0 for directories and block devices).
    pub mtime: u64,
    /// Allocated bytes (raw: blocks × 512; block device: its size).
    pub usage: Option<u64>,
    /// Apparent size (raw: file size; block device: its size).
    pub limit: Option<u64>,
}

/// The reply object for one image (keys in systemd's order).
pub fn to_json(class: ImageClass, c: &Candidate, path: &str, f: &ImageFacts) -> Map<String, Value> {
    let mut o = Map::new();
    let kind = match c.kind {
        ImageKind::Directory => "directory",
        ImageKind::Raw => "raw",
        ImageKind::Block => "block",
    };
    o.insert("Type".into(), kind.into());
    o.insert("Class".into(), class.name().into());
    o.insert("Name".into(), c.name.clone().into());
    o.insert("Path".into(), path.into());
    o.insert("ReadOnly".into(), f.read_only.into());
    if f.crtime != 0 {
        o.insert("CreationTimestamp".into(), f.crtime.into());
    }
    if f.mtime != 0 {
        o.insert("ModificationTimestamp".into(), f.mtime.into());
    }
    if let Some(u) = f.usage {
        o.insert("Usage".into(), u.into());
        o.insert("UsageExclusive".into(), u.into());
    }
    if let Some(l) = f.limit {
        o.insert("Limit".into(), l.into());
        o.insert("LimitExclusive".into(), l.into());
    }
    o
}

/// A write access check the way `faccessat(fd, "", W_OK, AT_EACCESS|AT_EMPTY_PATH)` fails with
/// `EROFS` on a read-only file system.
fn on_read_only_fs(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    rustix::fs::accessat(
        fd,
        "",
        rustix::fs::Access::WRITE_OK,
        rustix::fs::AtFlags::EACCESS | rustix::fs::AtFlags::EMPTY_PATH,
    ) == Err(rustix::io::Errno::ROFS)
}

/// `image_make()`'s facts for one candidate.
fn facts(root: &Root, c: &Candidate, shown: &str) -> Result<ImageFacts> {
    let found = root.resolve(&c.path)?;
    // systemd's own birth and modification times for the kind (xattr, btrfs subvolumes).
    let weak = crate::gather::weak_id::weak_id_of(found.fd.as_fd(), c.kind)?;
    let read_only = shown.starts_with("/usr/")
        || shown == "/usr"
        || on_read_only_fs(found.fd.as_fd())
        || (c.kind != ImageKind::Directory && found.mode() & 0o222 == 0);
    Ok(match c.kind {
        ImageKind::Directory => ImageFacts {
            read_only,
            crtime: weak.crtime,
            mtime: weak.mtime,
            ..Default::default()
        },
        ImageKind::Raw => ImageFacts {
            read_only,
            crtime: weak.crtime,
            mtime: weak.mtime,
            usage: Some(found.stat.st_blocks as u64 * 512),
            limit: Some(found.stat.st_size as u64),
        },
        ImageKind::Block => {
            let size = std::fs::File::open(found.proc_path())
                .and_then(|mut f| f.seek(SeekFrom::End(0)))
                .ok()
                .filter(|s| *s != 0);
            ImageFacts {
                read_only,
                usage: size,
                limit: size,
                ..Default::default()
            }
        }
    })
}

/// The List replies for one class: every discovered image, in layer order.
pub fn list(s: &ClassSettings) -> Result<Vec<Map<String, Value>>> {
    let root = Root::open(&s.root)?;
    let initrd = host::host_scope(&root)? == Scope::Initrd;
    let found = discover::discover(&root, s.class, initrd)?;
    let mut out = Vec::new();
    for c in &found.images {
        let shown = root.show(&c.path).to_string_lossy().into_owned();
        let f = facts(&root, c, &shown).unwrap_or_else(|e| {
            tracing::debug!("Cannot inspect {shown}: {e:#}");
            ImageFacts::default()
        });
        out.push(to_json(s.class, c, &shown, &f));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn replies_carry_what_systemd_knows_for_each_kind() {
        let c = Candidate {
            name: "img".into(),
            kind: ImageKind::Raw,
            entry: PathBuf::from("/run/extensions/img.raw"),
            path: PathBuf::from("/run/extensions/img.raw"),
            search_dir: PathBuf::from("/run/extensions"),
        };
        let f = ImageFacts {
            read_only: false,
            crtime: 5,
            mtime: 6,
            usage: Some(4096),
            limit: Some(3),
        };
        let o = to_json(ImageClass::Sysext, &c, "/run/extensions/img.raw", &f);
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"Type":"raw","Class":"sysext","Name":"img","Path":"/run/extensions/img.raw","ReadOnly":false,"CreationTimestamp":5,"ModificationTimestamp":6,"Usage":4096,"UsageExclusive":4096,"Limit":3,"LimitExclusive":3}"#
        );
        let dir = Candidate {
            kind: ImageKind::Directory,
            ..c
        };
        let o = to_json(
            ImageClass::Confext,
            &dir,
            "/x",
            &ImageFacts {
                read_only: true,
                ..Default::default()
            },
        );
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"Type":"directory","Class":"confext","Name":"img","Path":"/x","ReadOnly":true}"#
        );
    }
}
