//! Identities of extension images: systemd's weak identifiers (for its `origin` record) and our
//! strong content identities (for our own skip decision).

use crate::gather::discover::ImageKind;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// systemd's weak identifiers of an image (what `origin` records when there is no verity hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeakId {
    /// Unique mount ID of the mount the image lives on (legacy ID on old kernels).
    pub on_mount_id: u64,
    /// `name_to_handle_at(AT_HANDLE_FID)` handle type and bytes, if the file system has handles.
    pub file_handle: Option<(i32, Vec<u8>)>,
    /// Inode number, used by systemd only when there is no file handle.
    pub inode: u64,
    /// Birth time in µs (0 if the file system does not record it).
    pub crtime: u64,
    /// Modification time in µs; 0 for plain directories, as systemd records it.
    pub mtime: u64,
}

/// Collect systemd's weak identifiers of the image at `path` (the resolved host path).
pub fn weak_id(path: &Path, kind: ImageKind) -> Result<WeakId> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("opening {}", path.display()))?;
    weak_id_of(fd.as_fd(), kind).with_context(|| format!("statx {}", path.display()))
}

/// systemd's weak identifiers of the inode `fd` refers to.
pub fn weak_id_of(fd: std::os::fd::BorrowedFd<'_>, kind: ImageKind) -> std::io::Result<WeakId> {
    let id = crate::kernel::stat::identity(fd)?;
    Ok(WeakId {
        on_mount_id: id.mount_id,
        file_handle: crate::kernel::stat::file_handle(fd),
        inode: id.inode,
        crtime: id.btime_us,
        mtime: match kind {
            ImageKind::Directory => 0,
            _ => id.mtime_us,
        },
    })
}

/// A content identity that changes whenever what would be merged changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "value")]
pub enum Strong {
    /// dm-verity root hash (lowercase hex): the kernel verifies the content against it.
    VerityHash(String),
    /// sha256 of the whole image file or block device.
    Sha256(String),
    /// Merkle digest of a directory tree (path, type, mode, owner, size, content or link target).
    TreeDigest(String),
    /// An image file's `dev:ino:size:mtime:ctime:btime` (ns): a write changes the ctime (which
    /// only a clock change can set back), a copy put in its place the inode.
    FileStat(String),
    /// A block device's `rdev:size` and the sha256 of its first 64 KiB (the file system's
    /// superblock, which every write session and every re-format changes).
    DeviceHead(String),
    /// Changed within the last clock ticks: indistinguishable from a change in the same tick, so
    /// it never compares equal and the next refresh looks again.
    Unsettled(String),
}

/// Cache of file hashes (raw images, and the files of directory extensions) keyed by (dev,
/// ino, size, mtime, ctime), so an unchanged boot does not re-hash.
///
/// Like git's index, a file changed within [`RACY_WINDOW`] of being hashed is not cached:
/// timestamps are coarse (a kernel tick), and an in-place edit in the same tick would keep
/// its key. Entries not looked up in a run are dropped when it saves, so the cache holds
/// exactly the files of the current extensions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HashCache {
    entries: BTreeMap<String, String>,
    /// Keys looked up in this run (the ones kept on save).
    #[serde(skip)]
    used: BTreeSet<String>,
    /// Something was added in this run.
    #[serde(skip)]
    added: bool,
    /// How recent a change must be for a file not to be cached.
    #[serde(skip, default = "racy_window")]
    racy: std::time::Duration,
}

/// A file whose ctime is this close to now is hashed but not cached: many kernel ticks
/// (timestamps are taken from a tick-granular clock, 1–10 ms).
pub const RACY_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

fn racy_window() -> std::time::Duration {
    RACY_WINDOW
}

impl Default for HashCache {
    fn default() -> HashCache {
        HashCache {
            entries: BTreeMap::new(),
            used: BTreeSet::new(),
            added: false,
            racy: RACY_WINDOW,
        }
    }
}

fn cache_key(m: &std::fs::Metadata) -> String {
    format!(
        "{}:{}:{}:{}.{}:{}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

impl HashCache {
    /// Load a cache file; a missing, unreadable or malformed cache is just empty (it is only a cache).
    pub fn load(root: &crate::kernel::root::Root, path: &Path) -> HashCache {
        match root.read_optional(path, crate::limits::HASH_CACHE) {
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(
                    "Ignoring the hash cache {} (it is rebuilt): {e}",
                    root.show(path).display()
                );
                HashCache::default()
            }),
            Ok(None) => HashCache::default(),
            Err(e) => {
                tracing::warn!("Ignoring the hash cache (it is rebuilt): {e:#}");
                HashCache::default()
            }
        }
    }

    /// A cache that caches files however recently they changed (tests only need this).
    pub fn without_racy_window() -> HashCache {
        HashCache {
            racy: std::time::Duration::ZERO,
            ..HashCache::default()
        }
    }

    /// Drop the entries this run did not look up and write the cache if that or a new hash
    /// changed it; returns whether it wrote. Nothing is written on an unchanged boot.
    pub fn save_if_changed(
        &mut self,
        root: &crate::kernel::root::Root,
        path: &Path,
    ) -> Result<bool> {
        let before = self.entries.len();
        let used = std::mem::take(&mut self.used);
        self.entries.retain(|k, _| used.contains(k));
        self.used = used;
        let exists = root.resolve_optional(path).ok().flatten().is_some();
        if !self.added && self.entries.len() == before && exists {
            return Ok(false);
        }
        self.save(root, path)?;
        self.added = false;
        Ok(true)
    }

    /// Write the cache atomically (temp file + rename), inside the root.
    pub fn save(&self, root: &crate::kernel::root::Root, path: &Path) -> Result<()> {
        root.write_atomic(path, &serde_json::to_vec(self)?, 0o644, false)
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn sha256_reader(mut r: impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    // Small enough that allocating it per file costs nothing next to the read.
    let mut buf = vec![0u8; 128 << 10];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file or block device, from the cache when (dev, ino, size, mtime, ctime) are unchanged.
pub fn file_sha256(path: &Path, cache: &mut HashCache) -> Result<String> {
    let m = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let key = cache_key(&m);
    // Block devices have no meaningful mtime/ctime for their content: always hash them.
    let cacheable = !m.file_type().is_block_device();
    if cacheable {
        if let Some(h) = cache.entries.get(&key) {
            cache.used.insert(key);
            return Ok(h.clone());
        }
    }
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let h = sha256_reader(f).with_context(|| format!("reading {}", path.display()))?;
    let changed_at = std::time::UNIX_EPOCH
        + std::time::Duration::new(
            u64::try_from(m.ctime()).unwrap_or(0),
            u32::try_from(m.ctime_nsec()).unwrap_or(0),
        );
    let racy = std::time::SystemTime::now()
        .duration_since(changed_at)
        .map_or(true, |age| age < cache.racy);
    if cacheable && !racy {
        cache.entries.insert(key.clone(), h.clone());
        cache.used.insert(key);
        cache.added = true;
    }
    Ok(h)
}

/// Merkle digest of a directory tree: every entry's path, type, mode, owner, size and content (or
/// link target / device number), in sorted order, hashed into one digest. Symlinks are not followed.
///
/// Mount points below `dir` count by name only: an overlay layer never shows what is mounted
/// below it, so that is not content of the extension — and a tree holding a merged hierarchy
/// (e.g. a link to the root itself) would otherwise change identity with every merge, and no
/// refresh would ever be skipped.
///
/// File contents come from `cache` when a file is unchanged, so an unchanged refresh only
/// stats the tree.
pub fn tree_digest(dir: &Path, cache: &mut HashCache) -> Result<String> {
    fn walk(base: &Path, dir: &Path, h: &mut Sha256, cache: &mut HashCache) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading directory {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading directory {}", dir.display()))?;
        entries.sort();
        for p in entries {
            let m =
                std::fs::symlink_metadata(&p).with_context(|| format!("lstat {}", p.display()))?;
            let rel = p.strip_prefix(base).unwrap_or(&p);
            let ft = m.file_type();
            if ft.is_dir() && crate::kernel::mounts::is_mount_point(&p)? {
                h.update(format!("{}\0mount point\n", rel.display()).as_bytes());
                continue;
            }
            let content = if ft.is_file() {
                file_sha256(&p, cache)?
            } else if ft.is_symlink() {
                std::fs::read_link(&p)
                    .with_context(|| format!("readlink {}", p.display()))?
                    .display()
                    .to_string()
            } else if ft.is_char_device() || ft.is_block_device() {
                m.rdev().to_string()
            } else {
                String::new()
            };
            let line = format!(
                "{}\0{:o}\0{}\0{}\0{}\0{}\n",
                rel.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                if ft.is_file() { m.size() } else { 0 },
                content
            );
            h.update(line.as_bytes());
            if ft.is_dir() {
                walk(base, &p, h, cache)?;
            }
        }
        Ok(())
    }
    let mut h = Sha256::new();
    walk(dir, dir, &mut h, cache)?;
    Ok(hex(&h.finalize()))
}

/// The strong identity of a discovered image.
pub fn strong_id(host_path: &Path, kind: ImageKind, cache: &mut HashCache) -> Result<Strong> {
    match kind {
        ImageKind::Directory => Ok(Strong::TreeDigest(tree_digest(host_path, cache)?)),
        ImageKind::Raw | ImageKind::Block => Ok(Strong::Sha256(file_sha256(host_path, cache)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_digest_changes_on_any_content_or_metadata_edit() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("usr/bin")).unwrap();
        std::fs::write(d.join("usr/bin/a"), "one").unwrap();
        std::os::unix::fs::symlink("a", d.join("usr/bin/l")).unwrap();
        let h0 = tree_digest(d, &mut HashCache::default()).unwrap();
        assert_eq!(
            h0,
            tree_digest(d, &mut HashCache::default()).unwrap(),
            "stable"
        );
        std::fs::write(d.join("usr/bin/a"), "two").unwrap();
        let h1 = tree_digest(d, &mut HashCache::default()).unwrap();
        assert_ne!(h0, h1, "in-place content edit (systemd issue 41523)");
        std::fs::remove_file(d.join("usr/bin/l")).unwrap();
        std::os::unix::fs::symlink("b", d.join("usr/bin/l")).unwrap();
        let h2 = tree_digest(d, &mut HashCache::default()).unwrap();
        assert_ne!(h1, h2, "link target");
        std::fs::set_permissions(
            d.join("usr/bin/a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        assert_ne!(
            h2,
            tree_digest(d, &mut HashCache::default()).unwrap(),
            "mode"
        );
    }

    /// A file changed just now is hashed every time (its timestamps may not change on an edit
    /// in the same tick); an older one comes from the cache, and a saved cache keeps only
    /// what the run looked up.
    #[test]
    fn racy_files_are_not_cached_and_unused_entries_are_dropped() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("ext");
        std::fs::create_dir_all(d.join("usr/lib")).unwrap();
        std::fs::write(d.join("usr/lib/a"), "aaa").unwrap();
        std::fs::write(d.join("usr/lib/b"), "bbb").unwrap();
        let mut fresh = HashCache::default();
        let h0 = tree_digest(&d, &mut fresh).unwrap();
        assert!(fresh.is_empty(), "files changed just now are not cached");
        let mut cache = HashCache::without_racy_window();
        assert_eq!(tree_digest(&d, &mut cache).unwrap(), h0);
        assert_eq!(cache.len(), 2);
        let root = crate::kernel::root::Root::open(t.path()).unwrap();
        let p = Path::new("/cache.json");
        assert!(
            cache.save_if_changed(&root, p).unwrap(),
            "new entries are written"
        );
        let mut again = HashCache::load(&root, p);
        assert_eq!(tree_digest(&d, &mut again).unwrap(), h0);
        assert!(
            !again.save_if_changed(&root, p).unwrap(),
            "an unchanged run writes nothing"
        );
        std::fs::remove_file(d.join("usr/lib/b")).unwrap();
        let mut third = HashCache::load(&root, p);
        assert_ne!(tree_digest(&d, &mut third).unwrap(), h0);
        assert!(
            third.save_if_changed(&root, p).unwrap(),
            "the dropped entry is pruned"
        );
        assert_eq!(HashCache::load(&root, p).len(), 1);
    }

    #[test]
    fn file_hash_is_cached_until_the_file_changes() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("x.raw");
        std::fs::write(&f, "content").unwrap();
        let mut cache = HashCache::without_racy_window();
        let h = file_sha256(&f, &mut cache).unwrap();
        assert_eq!(
            h,
            "ed7002b439e9ac845f22357d822bac1444730fbdb6016d3ec9432297b9ec9f73"
        );
        assert_eq!(cache.len(), 1);
        assert_eq!(file_sha256(&f, &mut cache).unwrap(), h);
        std::fs::write(&f, "changed").unwrap();
        assert_ne!(
            file_sha256(&f, &mut cache).unwrap(),
            h,
            "a rewrite changes ctime/size: re-hashed"
        );
        let root = crate::kernel::root::Root::open(t.path()).unwrap();
        let p = Path::new("/cache.json");
        cache.save(&root, p).unwrap();
        assert_eq!(HashCache::load(&root, p).len(), 2);
        std::fs::write(t.path().join("cache.json"), "garbage").unwrap();
        assert!(
            HashCache::load(&root, p).is_empty(),
            "a broken cache is just empty"
        );
    }

    #[test]
    fn weak_id_matches_stat_and_directory_mtime_is_zero() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("img.raw");
        std::fs::write(&f, "x").unwrap();
        let w = weak_id(&f, ImageKind::Raw).unwrap();
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(w.inode, m.ino());
        assert_eq!(
            w.mtime,
            (m.mtime() as u64) * 1_000_000 + (m.mtime_nsec() as u64) / 1000
        );
        assert!(w.on_mount_id > 0);
        let d = weak_id(t.path(), ImageKind::Directory).unwrap();
        assert_eq!(d.mtime, 0);
    }
}
