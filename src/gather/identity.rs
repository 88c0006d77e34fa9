//! Our strong content identities of extension images (for our own skip decision); systemd's
//! weak identifiers, for its record, are in [`crate::gather::weak_id`].

use crate::gather::walk::{self, Entry, Limits, Visitor, WalkError};
use crate::kernel::root::Root;
use crate::kernel::root_walk::{EntryStat, XattrFd};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A content identity that changes whenever what would be merged changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "value")]
pub enum Strong {
    /// dm-verity root hash (lowercase hex): the kernel verifies the content against it.
    VerityHash(String),
    /// Digest of a directory tree ([`tree_digest_of`]): names as bytes, type, mode, owner, size,
    /// content or link target, device numbers, xattrs.
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
/// exactly the files of the current extensions, and at most [`MAX_CACHE_ENTRIES`] of them.
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

/// Most files the cache remembers: beyond it files are hashed every run. An entry is ~140 bytes
/// of JSON, so the cache file stays below `limits::HASH_CACHE`.
pub const MAX_CACHE_ENTRIES: usize = 262_144;

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

/// The key of a file's content in the cache; the same spelling for `Metadata` and `statx`.
fn cache_key_of(dev: u64, ino: u64, size: u64, mtime: (i64, i64), ctime: (i64, i64)) -> String {
    format!(
        "{dev}:{ino}:{size}:{}.{}:{}.{}",
        mtime.0, mtime.1, ctime.0, ctime.1
    )
}

fn stat_cache_key(st: &EntryStat) -> String {
    cache_key_of(
        st.dev,
        st.ino,
        st.size,
        (st.mtime.0, i64::from(st.mtime.1)),
        (st.ctime.0, i64::from(st.ctime.1)),
    )
}

impl HashCache {
    /// Load a cache file inside `root`; a missing, unreadable, oversized or malformed cache is
    /// just empty (it is only a cache).
    pub fn load(root: &Root, path: &Path) -> HashCache {
        let shown = || root.show(path).display().to_string();
        let parsed = match root.read_optional(path, crate::limits::HASH_CACHE) {
            Ok(Some(b)) => serde_json::from_slice::<HashCache>(&b),
            Ok(None) => return HashCache::default(),
            Err(e) => {
                tracing::warn!("Ignoring the hash cache (it is rebuilt): {e:#}");
                return HashCache::default();
            }
        };
        match parsed {
            Ok(c) if c.entries.len() <= MAX_CACHE_ENTRIES => c,
            Ok(c) => {
                tracing::warn!(
                    "Ignoring the hash cache {} (it is rebuilt): {} entries, more than the {MAX_CACHE_ENTRIES} allowed",
                    shown(),
                    c.entries.len()
                );
                HashCache::default()
            }
            Err(e) => {
                tracing::warn!("Ignoring the hash cache {} (it is rebuilt): {e}", shown());
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

    /// Drop the entries this run did not look up; whether that or a new hash changed the
    /// cache since it was loaded (or last pruned).
    pub fn prune(&mut self) -> bool {
        let before = self.entries.len();
        let used = &self.used;
        self.entries.retain(|k, _| used.contains(k));
        let changed = self.added || self.entries.len() != before;
        self.added = false;
        changed
    }

    /// The cache as it is stored.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached hash for `key`, marking it used.
    fn get(&mut self, key: &str) -> Option<String> {
        let h = self.entries.get(key)?.clone();
        self.used.insert(key.to_string());
        Some(h)
    }

    /// Remember `hash` for `key` unless the file changed within the racy window (`ctime`) or
    /// the cache is full.
    fn put(&mut self, key: String, hash: &str, ctime: (i64, u32)) {
        let changed_at = std::time::UNIX_EPOCH
            + std::time::Duration::new(u64::try_from(ctime.0).unwrap_or(0), ctime.1);
        let racy = std::time::SystemTime::now()
            .duration_since(changed_at)
            .map_or(true, |age| age < self.racy);
        if racy || self.used.len() >= MAX_CACHE_ENTRIES {
            return;
        }
        self.entries.insert(key.clone(), hash.to_string());
        self.used.insert(key);
        self.added = true;
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

/// sha256 of `file`, inspected as `st`, through the cache (regular files only).
fn cached_sha256(
    mut file: &std::fs::File,
    st: &EntryStat,
    cache: &mut HashCache,
) -> std::io::Result<String> {
    let cacheable = st.file_type() == rustix::fs::FileType::RegularFile;
    let key = stat_cache_key(st);
    if cacheable {
        if let Some(h) = cache.get(&key) {
            return Ok(h);
        }
    }
    let h = sha256_reader(&mut file)?;
    if cacheable {
        cache.put(key, &h, st.ctime);
    }
    Ok(h)
}

/// First bytes hashed into a [`tree_digest_of`]: a new encoding gets a new tag, so digests of
/// different encodings never compare equal.
const TREE_DIGEST_TAG: &[u8] = b"extmerge tree digest v2\0";

/// Feeds every entry of a walk into one sha256, length-prefixed so that no two trees share an
/// encoding (names may hold any byte but `/` and NUL, newlines included).
struct TreeHasher<'c> {
    h: Sha256,
    cache: &'c mut HashCache,
    buf: Vec<u8>,
    not_content: &'c [(u64, u64)],
}

impl TreeHasher<'_> {
    fn is_not_content(&self, e: &Entry<'_>) -> bool {
        e.stat.is_dir() && self.not_content.contains(&(e.stat.dev, e.stat.ino))
    }

    fn field(&mut self, bytes: &[u8]) {
        self.h.update((bytes.len() as u64).to_le_bytes());
        self.h.update(bytes);
    }

    fn u32(&mut self, v: u32) {
        self.h.update(v.to_le_bytes());
    }
}

impl Visitor for TreeHasher<'_> {
    fn visit(&mut self, e: &Entry<'_>) -> Result<(), WalkError> {
        use rustix::fs::FileType;
        let depth = u32::try_from(e.depth).unwrap_or(u32::MAX);
        if e.mount_point {
            // An overlay layer never shows what is mounted below it: the name is all there is.
            self.h.update(b"M");
            self.u32(depth);
            self.field(e.name.as_bytes());
            return Ok(());
        }
        if self.is_not_content(e) {
            // extmerge's own cache: it changes with every run that hashes anything new.
            self.h.update(b"X");
            self.u32(depth);
            self.field(e.name.as_bytes());
            return Ok(());
        }
        let st = e.stat;
        let ft = st.file_type();
        let (content, xattrs) = match (ft, e.dir_fd()) {
            (FileType::Directory, Some(dir)) => {
                (Vec::new(), e.xattrs(XattrFd::Open(dir), &mut self.buf)?)
            }
            (FileType::RegularFile, _) => {
                let f = e.open_file()?;
                let sum =
                    cached_sha256(&f, st, self.cache).map_err(|err| e.error("reading", err))?;
                (
                    sum.into_bytes(),
                    e.xattrs(XattrFd::Open(f.as_fd()), &mut self.buf)?,
                )
            }
            _ => {
                let fd = e.open_inode()?;
                let target = if ft == FileType::Symlink {
                    e.read_link(fd.as_fd())?
                } else {
                    Vec::new()
                };
                (target, e.xattrs(XattrFd::Path(fd.as_fd()), &mut self.buf)?)
            }
        };
        let is_dev = matches!(ft, FileType::CharacterDevice | FileType::BlockDevice);
        self.h.update(b"E");
        self.u32(depth);
        self.field(e.name.as_bytes());
        self.u32(st.mode);
        self.u32(st.uid);
        self.u32(st.gid);
        let size = if ft == FileType::RegularFile {
            st.size
        } else {
            0
        };
        self.h.update(size.to_le_bytes());
        let (major, minor) = if is_dev { st.rdev } else { (0, 0) };
        self.u32(major);
        self.u32(minor);
        self.field(&content);
        self.h.update((xattrs.len() as u64).to_le_bytes());
        for (name, value) in &xattrs {
            self.field(name);
            self.field(value);
        }
        Ok(())
    }

    fn descend(&mut self, e: &Entry<'_>) -> bool {
        !self.is_not_content(e)
    }
}

/// Digest of a directory tree: every entry's name (bytes), type and mode, owner, size, content
/// (sha256) or link target, device number and xattrs (`user.extension-release.strict`, overlay
/// `trusted.*`/`user.overlay.*`, …), depth first in bytewise name order, into one sha256.
/// The root directory counts too (its name is empty). Symlinks are never followed.
///
/// Mount points below the root count by name only: an overlay layer never shows what is
/// mounted below it, so that is not content of the extension — and a tree holding a merged
/// hierarchy (e.g. a link to the root itself) would otherwise change identity with every merge,
/// and no refresh would ever be skipped.
///
/// Directories named in `not_content` by `(st_dev, st_ino)` count by name only, unread: the
/// caller names extmerge's own cache there, which a tree holding the whole root (a link to `/`)
/// would otherwise see change with every run.
///
/// File contents come from `cache` when a file is unchanged, so an unchanged refresh only
/// inspects the tree. An entry that cannot be read, or a tree beyond `limits`, is an error
/// naming the entry: the caller refuses that extension (there is no identity to compare).
pub fn tree_digest_of(
    root: &Root,
    cache: &mut HashCache,
    limits: &Limits,
    not_content: &[(u64, u64)],
) -> Result<String, WalkError> {
    let mut v = TreeHasher {
        h: Sha256::new(),
        cache,
        buf: Vec::new(),
        not_content,
    };
    v.h.update(TREE_DIGEST_TAG);
    walk::walk(root, limits, &mut v)?;
    Ok(hex(&v.h.finalize()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// [`tree_digest_of`] the directory at `dir`, within the default limits.
    pub(crate) fn tree_digest(dir: &Path, cache: &mut HashCache) -> Result<String> {
        let root = Root::open(dir)?;
        Ok(tree_digest_of(&root, cache, &Limits::default(), &[])?)
    }

    /// sha256 of the file at `path` through the cache.
    fn file_sha256(path: &Path, cache: &mut HashCache) -> std::io::Result<String> {
        let f = std::fs::File::open(path)?;
        let st = crate::kernel::root_walk::stat_fd(f.as_fd())?;
        cached_sha256(&f, &st, cache)
    }

    #[test]
    fn directories_named_not_content_count_by_name_only() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("var/cache/extmerge")).unwrap();
        std::fs::write(d.join("var/cache/extmerge/hash-cache-sysext.json"), "{}").unwrap();
        std::fs::write(d.join("var/other"), "x").unwrap();
        let root = Root::open(d).unwrap();
        let own = root.resolve(Path::new("/var/cache/extmerge")).unwrap();
        let own = [(own.stat.st_dev, own.stat.st_ino)];
        let digest =
            |cache: &mut HashCache| tree_digest_of(&root, cache, &Limits::default(), &own).unwrap();
        let h0 = digest(&mut HashCache::default());
        std::fs::write(
            d.join("var/cache/extmerge/hash-cache-sysext.json"),
            "{\"a\":1}",
        )
        .unwrap();
        std::fs::write(d.join("var/cache/extmerge/new"), "y").unwrap();
        assert_eq!(
            digest(&mut HashCache::default()),
            h0,
            "the cache is not content"
        );
        std::fs::write(d.join("var/other"), "changed").unwrap();
        assert_ne!(digest(&mut HashCache::default()), h0, "everything else is");
        assert_ne!(
            tree_digest(d, &mut HashCache::default()).unwrap(),
            digest(&mut HashCache::default()),
            "unnamed, the cache directory is walked like any other"
        );
    }

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

    fn digest(d: &Path) -> String {
        tree_digest(d, &mut HashCache::default()).unwrap()
    }

    /// Run `f` on a thread whose uid is nobody's (credentials are per thread for the raw
    /// syscall), so file modes apply as they do to an unprivileged reader.
    pub(crate) fn as_nobody<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let nobody = rustix::process::Uid::from_raw(65534);
                if rustix::process::geteuid().is_root() {
                    rustix::thread::set_thread_res_uid(nobody, nobody, nobody).unwrap();
                }
                f()
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn names_are_hashed_as_bytes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let name = |b: &[u8]| d.join(std::ffi::OsStr::from_bytes(b));
        std::fs::write(name(b"caf\xe9"), "x").unwrap();
        let h0 = digest(d);
        // Another invalid UTF-8 name: both would display as "caf\u{fffd}".
        std::fs::rename(name(b"caf\xe9"), name(b"caf\xe8")).unwrap();
        let h1 = digest(d);
        assert_ne!(h0, h1, "rename of a non-UTF-8 name");
        std::fs::rename(name(b"caf\xe8"), name(b"caf\xe9")).unwrap();
        assert_eq!(digest(d), h0, "renamed back");
        // A newline in a name cannot make two trees encode alike.
        std::fs::remove_file(name(b"caf\xe9")).unwrap();
        std::fs::write(d.join("a\nb"), "").unwrap();
        let one = digest(d);
        std::fs::remove_file(d.join("a\nb")).unwrap();
        std::fs::write(d.join("a"), "").unwrap();
        std::fs::write(d.join("b"), "").unwrap();
        assert_ne!(digest(d), one);
    }

    #[test]
    fn xattrs_owner_and_devices_are_covered_as_root() {
        use rustix::fs::XattrFlags;
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let rel = d.join("usr/lib/extension-release.d/extension-release.x");
        std::fs::create_dir_all(rel.parent().unwrap()).unwrap();
        std::fs::write(&rel, "ID=_any\n").unwrap();
        std::os::unix::fs::symlink("x", d.join("usr/link")).unwrap();
        let set = |p: &Path, n: &str, v: &[u8]| {
            rustix::fs::lsetxattr(p, n, v, XattrFlags::empty()).unwrap();
        };
        let mut seen = vec![digest(d)];
        let changed = |what: &str, seen: &mut Vec<String>| {
            let h = digest(d);
            assert!(!seen.contains(&h), "{what} did not change the digest");
            seen.push(h);
        };
        set(&rel, "user.extension-release.strict", b"0");
        changed("user.extension-release.strict", &mut seen);
        set(&rel, "user.extension-release.strict", b"1");
        changed("its value", &mut seen);
        set(&d.join("usr/lib"), "trusted.overlay.opaque", b"y");
        changed("trusted.overlay.opaque on a directory", &mut seen);
        set(&d.join("usr"), "user.overlay.opaque", b"y");
        changed("user.overlay.opaque", &mut seen);
        set(&d.join("usr/link"), "trusted.overlay.x", b"1");
        changed("an xattr of a symlink", &mut seen);
        set(d, "user.root", b"1");
        changed("an xattr of the root itself", &mut seen);
        std::os::unix::fs::lchown(&rel, Some(1), None).unwrap();
        changed("owner", &mut seen);
        std::os::unix::fs::lchown(&rel, None, Some(2)).unwrap();
        changed("group", &mut seen);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("usr/dev"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        changed("a device", &mut seen);
        std::fs::remove_file(d.join("usr/dev")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("usr/dev"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            rustix::fs::makedev(1, 5),
        )
        .unwrap();
        changed("its device number", &mut seen);
        assert_eq!(digest(d), seen[seen.len() - 1], "stable");
    }

    #[test]
    fn trees_deeper_than_path_max_have_an_identity_and_limits_refuse() {
        let t = tempfile::tempdir().unwrap();
        crate::gather::walk::tests::deep_tree(t.path(), &"x".repeat(50), 100);
        let root = Root::open(t.path()).unwrap();
        let h0 = tree_digest_of(&root, &mut HashCache::default(), &Limits::default(), &[]).unwrap();
        assert_eq!(
            h0,
            tree_digest_of(&root, &mut HashCache::default(), &Limits::default(), &[]).unwrap()
        );
        let tight = Limits {
            max_depth: 50,
            ..Limits::default()
        };
        let e = tree_digest_of(&root, &mut HashCache::default(), &tight, &[]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("more than 50 directory levels deep"),
            "{e}"
        );
        assert_eq!(
            e.path.components().count(),
            t.path().components().count() + 50
        );
    }

    #[test]
    fn an_unreadable_entry_is_an_error_naming_it() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("ext");
        std::fs::create_dir_all(d.join("usr/lib")).unwrap();
        std::fs::write(d.join("usr/lib/ok"), "ok").unwrap();
        std::fs::write(d.join("usr/lib/secret"), "s").unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            d.join("usr/lib/secret"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let e = as_nobody(|| {
            format!(
                "{:#}",
                tree_digest(&d, &mut HashCache::default()).unwrap_err()
            )
        });
        assert_eq!(
            e,
            format!(
                "opening {}: Permission denied (os error 13)",
                d.join("usr/lib/secret").display()
            )
        );
        std::fs::set_permissions(
            d.join("usr/lib/secret"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::set_permissions(d.join("usr/lib"), std::fs::Permissions::from_mode(0o300))
            .unwrap();
        let e = as_nobody(|| {
            format!(
                "{:#}",
                tree_digest(&d, &mut HashCache::default()).unwrap_err()
            )
        });
        assert_eq!(
            e,
            format!(
                "opening directory {}: Permission denied (os error 13)",
                d.join("usr/lib").display()
            )
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
            crate::merge::record::save_hash_cache(&root, p, &mut cache).unwrap(),
            "new entries are written"
        );
        let mut again = HashCache::load(&root, p);
        assert_eq!(tree_digest(&d, &mut again).unwrap(), h0);
        assert!(
            !crate::merge::record::save_hash_cache(&root, p, &mut again).unwrap(),
            "an unchanged run writes nothing"
        );
        std::fs::remove_file(d.join("usr/lib/b")).unwrap();
        let mut third = HashCache::load(&root, p);
        assert_ne!(tree_digest(&d, &mut third).unwrap(), h0);
        assert!(
            crate::merge::record::save_hash_cache(&root, p, &mut third).unwrap(),
            "the dropped entry is pruned"
        );
        assert_eq!(HashCache::load(&root, p).len(), 1);
    }

    #[test]
    fn a_full_cache_hashes_without_remembering() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("x");
        std::fs::write(&f, "content").unwrap();
        let mut cache = HashCache::without_racy_window();
        cache.used = (0..MAX_CACHE_ENTRIES).map(|i| i.to_string()).collect();
        let h = file_sha256(&f, &mut cache).unwrap();
        assert_eq!(
            h,
            "ed7002b439e9ac845f22357d822bac1444730fbdb6016d3ec9432297b9ec9f73"
        );
        assert!(cache.is_empty(), "full: not remembered");
        cache.used.clear();
        file_sha256(&f, &mut cache).unwrap();
        assert_eq!(cache.len(), 1);
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
        crate::merge::record::save_hash_cache(&root, p, &mut cache).unwrap();
        assert_eq!(HashCache::load(&root, p).len(), 2);
        std::fs::write(t.path().join("cache.json"), "garbage").unwrap();
        assert!(
            HashCache::load(&root, p).is_empty(),
            "a broken cache is just empty"
        );
    }
}
