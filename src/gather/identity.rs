//! Our strong content identities of extension images (for our own skip decision); systemd's
//! weak identifiers, for its record, are in [`crate::gather::weak_id`].

use crate::gather::walk::{self, Entry, Limits, Visitor, WalkError};
use crate::kernel::root::Root;
use crate::ondisk::bytes::hex;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A content identity that changes whenever what would be merged changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "value")]
pub enum Strong {
    /// dm-verity root hash (lowercase hex): the kernel verifies the content against it.
    VerityHash(String),
    /// Digest of a directory tree's inodes ([`tree_identity`]).
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

/// How long something must have been still for its timestamps to be trusted: many kernel ticks
/// (timestamps come from a tick-granular clock, 1–10 ms), so a second write in the same tick as
/// the last one cannot go unseen (git's "racily clean" files).
pub const RACY_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// How often something changed just now is waited for before it is recorded as unsettled.
const SETTLE_ATTEMPTS: usize = 3;

/// What one look at an image or tree found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Look {
    /// Its identity as seen.
    pub key: String,
    /// Its newest change time (ctime or mtime, ns since the epoch).
    pub changed_ns: i128,
}

/// Look at `shown` until it has been still for [`RACY_WINDOW`] (at most [`SETTLE_ATTEMPTS`]
/// looks): `Ok(key)` then, `Err(key)` when it keeps changing — an unsettled key, made unique so
/// it never compares equal and the next refresh looks again.
pub fn settle(
    shown: &Path,
    mut look: impl FnMut() -> Result<Look>,
) -> Result<std::result::Result<String, String>> {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let mut last = String::new();
    for _ in 0..SETTLE_ATTEMPTS {
        let l = look()?;
        let changed = UNIX_EPOCH + Duration::from_nanos(u64::try_from(l.changed_ns).unwrap_or(0));
        match SystemTime::now().duration_since(changed) {
            Ok(age) if age >= RACY_WINDOW => return Ok(Ok(l.key)),
            Ok(age) => std::thread::sleep(RACY_WINDOW - age),
            // A change time in the future (the clock was set back): wait once, then it is
            // unsettled until the clock passes it.
            Err(_) => std::thread::sleep(RACY_WINDOW),
        }
        last = l.key;
    }
    // Before the entropy pool is ready a non-blocking getrandom gives nothing, and two
    // unsettled keys of one boot would compare equal.
    let nonce = crate::kernel::unique::unique_bytes();
    tracing::debug!("{} keeps changing: recorded as unsettled", shown.display());
    Ok(Err(format!("{last}:{}", hex(&nonce))))
}

/// First bytes hashed into a [`tree_identity`]: a new encoding gets a new tag, so identities of
/// different encodings never compare equal.
const TREE_DIGEST_TAG: &[u8] = b"extmerge tree inode digest v3\0";

/// Feeds every entry of a walk into one sha256, length-prefixed so that no two trees share an
/// encoding (names may hold any byte but `/` and NUL, newlines included).
struct TreeHasher {
    h: Sha256,
    newest: i128,
}

impl TreeHasher {
    fn field(&mut self, bytes: &[u8]) {
        self.h.update((bytes.len() as u64).to_le_bytes());
        self.h.update(bytes);
    }

    fn u32(&mut self, v: u32) {
        self.h.update(v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.h.update(v.to_le_bytes());
    }

    fn time(&mut self, (sec, nsec): (i64, u32)) -> i128 {
        let ns = i128::from(sec) * 1_000_000_000 + i128::from(nsec);
        self.h.update(ns.to_le_bytes());
        ns
    }
}

impl Visitor for TreeHasher {
    fn visit(&mut self, e: &Entry<'_>) -> Result<(), WalkError> {
        let depth = u32::try_from(e.depth).unwrap_or(u32::MAX);
        if e.mount_point {
            // An overlay layer never shows what is mounted below it: the name is all there is.
            self.h.update(b"M");
            self.u32(depth);
            self.field(e.name.as_bytes());
            return Ok(());
        }
        let st = e.stat;
        self.h.update(b"E");
        self.u32(depth);
        self.field(e.name.as_bytes());
        self.u64(st.dev);
        self.u64(st.ino);
        self.u32(st.mode);
        self.u32(st.uid);
        self.u32(st.gid);
        self.u64(st.size);
        self.u32(st.rdev.0);
        self.u32(st.rdev.1);
        let mtime = self.time(st.mtime);
        let ctime = self.time(st.ctime);
        self.newest = self.newest.max(mtime).max(ctime);
        Ok(())
    }
}

/// The identity of a directory tree without reading a byte of its files: every entry's name
/// (bytes), device and inode, type and mode, owner, size, device number, and modification and
/// change times (ns), depth first in bytewise name order, into one sha256. The root directory
/// counts too (its name is empty). Symlinks are never followed.
///
/// Why this cannot miss a change: a write to a file, a new xattr (`user.extension-release.strict`,
/// overlay `trusted.*`), a chmod or chown, and a rename or new entry in a directory all set the
/// ctime of the inode they touch to now, which no unprivileged call can set back (only a change of
/// the system clock can); an entry put in another's place has another inode; and a tree that
/// changed within [`RACY_WINDOW`] is looked at again ([`settle`]). So an unchanged refresh costs
/// one `statx` per entry and reads no file.
///
/// Mount points below the root count by name only: an overlay layer never shows what is
/// mounted below it, so that is not content of the extension — and a tree holding a merged
/// hierarchy (e.g. a link to the root itself) would otherwise change identity with every merge.
///
/// A tree beyond `limits`, or an entry that cannot be inspected, is an error naming the entry:
/// the caller refuses that extension (there is no identity to compare).
pub fn tree_identity(root: &Root, limits: &Limits) -> Result<Look, WalkError> {
    let mut v = TreeHasher {
        h: Sha256::new(),
        newest: 0,
    };
    v.h.update(TREE_DIGEST_TAG);
    walk::walk(root, limits, &mut v)?;
    Ok(Look {
        key: hex(&v.h.finalize()),
        changed_ns: v.newest,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// [`tree_identity`]'s key for the directory at `dir`, within the default limits.
    pub(crate) fn tree_digest(dir: &Path) -> Result<String> {
        let root = Root::open(dir)?;
        Ok(tree_identity(&root, &Limits::default())?.key)
    }

    #[test]
    fn tree_digest_changes_on_any_content_or_metadata_edit() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("usr/bin")).unwrap();
        std::fs::write(d.join("usr/bin/a"), "one").unwrap();
        std::os::unix::fs::symlink("a", d.join("usr/bin/l")).unwrap();
        let h0 = tree_digest(d).unwrap();
        assert_eq!(h0, tree_digest(d).unwrap(), "stable");
        std::fs::write(d.join("usr/bin/a"), "two").unwrap();
        let h1 = tree_digest(d).unwrap();
        assert_ne!(h0, h1, "in-place content edit (systemd issue 41523)");
        std::fs::remove_file(d.join("usr/bin/l")).unwrap();
        std::os::unix::fs::symlink("b", d.join("usr/bin/l")).unwrap();
        let h2 = tree_digest(d).unwrap();
        assert_ne!(h1, h2, "link target");
        std::fs::set_permissions(
            d.join("usr/bin/a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        assert_ne!(h2, tree_digest(d).unwrap(), "mode");
    }

    fn digest(d: &Path) -> String {
        tree_digest(d).unwrap()
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
        assert_ne!(digest(d), h0, "renamed back: a rename is a change (ctime)");
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
        let h0 = tree_identity(&root, &Limits::default()).unwrap();
        assert_eq!(h0, tree_identity(&root, &Limits::default()).unwrap());
        let tight = Limits {
            max_depth: 50,
            ..Limits::default()
        };
        let e = tree_identity(&root, &tight).unwrap_err();
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
    fn files_are_never_read_and_an_unlistable_directory_is_an_error_naming_it() {
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
        let unreadable = as_nobody(|| tree_digest(&d).map_err(|e| format!("{e:#}")));
        assert!(
            unreadable.is_ok(),
            "a file nobody may read is identified: {unreadable:?}"
        );
        std::fs::set_permissions(d.join("usr/lib"), std::fs::Permissions::from_mode(0o300))
            .unwrap();
        let e = as_nobody(|| format!("{:#}", tree_digest(&d).unwrap_err()));
        assert_eq!(
            e,
            format!(
                "opening directory {}: Permission denied (os error 13)",
                d.join("usr/lib").display()
            )
        );
    }

    #[test]
    fn settle_waits_for_a_fresh_change_and_never_equals_a_restless_one() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), "x").unwrap();
        let root = Root::open(t.path()).unwrap();
        let mut looks = 0;
        let settled = settle(t.path(), || {
            looks += 1;
            Ok(tree_identity(&root, &Limits::default())?)
        })
        .unwrap();
        assert_eq!(
            settled,
            Ok(tree_digest(t.path()).unwrap()),
            "written just now: settles"
        );
        // Usually one wait for the racy window; on a loaded machine the first look may already
        // be late enough.
        assert!((1..=2).contains(&looks), "{looks} looks");
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i128
        };
        let restless = || {
            settle(t.path(), || {
                Ok(Look {
                    key: "k".into(),
                    changed_ns: now(),
                })
            })
            .unwrap()
        };
        let (a, b) = (restless(), restless());
        assert!(a.is_err() && b.is_err(), "{a:?} {b:?}");
        assert_ne!(a, b, "two unsettled looks never compare equal");
    }
}
