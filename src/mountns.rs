//! Mount namespaces and the attach side of the new mount API.
//!
//! Assembly happens on a helper thread that has its own mount namespace
//! ([`in_private_namespace`]); the result leaves it as a detached mount fd (fds are
//! process-wide) and is attached in the caller's namespace with one `move_mount`
//! ([`attach`], [`attach_beneath`]). Mounts made on the helper thread never reach the
//! caller's namespace or PID 1's mount table (no mount-event storm in the initrd).
//!
//! Mount tables are read from `/proc/thread-self/mountinfo`: `/proc/self` names the
//! thread-group leader, whose namespace differs from a helper thread's.

use std::ffi::{CString, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use rustix::fs::{AtFlags, StatVfsMountFlags, StatxAttributes, StatxFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

/// The one libc call rustix's enabled features lack (`unshare` needs its "thread" feature).
mod sys {
    use std::ffi::c_int;

    /// `CLONE_NEWNS` from <linux/sched.h>; the same value on every architecture.
    pub const CLONE_NEWNS: c_int = 0x0002_0000;

    extern "C" {
        /// unshare(2) from the C library that std already links.
        pub fn unshare(flags: c_int) -> c_int;
    }
}

/// Move the calling thread into a new mount namespace whose mounts are all private.
///
/// Only this thread (and threads it spawns later) is affected. Making `/` recursively
/// private first means nothing mounted or unmounted here propagates to the old peers.
pub fn enter_private_namespace() -> Result<()> {
    // SAFETY: unshare(CLONE_NEWNS) (which implies CLONE_FS) only gives this thread its own
    // mount namespace and fs_struct copy; no memory or fd-table invariant is involved.
    let rc = unsafe { sys::unshare(sys::CLONE_NEWNS) };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .context("unshare(CLONE_NEWNS) for a private mount namespace (needs CAP_SYS_ADMIN)");
    }
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(io::Error::from)
    .context("making / recursively private in the new mount namespace")
}

/// Run `f` on a new thread with its own private mount namespace and return its result.
///
/// When the thread ends its namespace is dropped and every mount made there goes away,
/// except what a returned detached fd (fsmount/open_tree) still references. The kernel
/// wakes the joiner (exit_mm) before it drops the thread's namespaces, so that teardown
/// may still be in flight when this returns: do not rely on a mount made inside (and not
/// handed out) being released at that instant, e.g. to reuse an overlay workdir.
pub fn in_private_namespace<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send,
    T: Send,
{
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("extmerge-mntns".into())
            .spawn_scoped(scope, || {
                enter_private_namespace()?;
                f()
            })
            .context("spawning the private mount namespace thread")?;
        match handle.join() {
            Ok(result) => result,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic payload".to_string());
                Err(anyhow!("private mount namespace thread panicked: {msg}"))
            }
        }
    })
}

/// Attach a detached mount (`fsmount`/`open_tree` fd) at `target` in this thread's namespace.
pub fn attach(fd: impl AsFd, target: &Path) -> Result<()> {
    rustix::mount::move_mount(fd, "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(io::Error::from)
        .with_context(|| format!("attaching mount at {} (move_mount)", target.display()))
}

/// Why [`attach_beneath`] failed.
#[derive(Debug)]
pub enum AttachError {
    /// The kernel predates `MOVE_MOUNT_BENEATH` (Linux 6.5); the caller must fall back.
    BeneathUnsupported,
    /// `move_mount` failed for another reason; nothing changed at `target`.
    Failed {
        /// The mount point the new mount was meant to go beneath.
        target: PathBuf,
        /// The kernel's error.
        error: io::Error,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::BeneathUnsupported => {
                write!(f, "move_mount(MOVE_MOUNT_BENEATH) needs Linux 6.5 or newer")
            }
            AttachError::Failed { target, error } => write!(
                f,
                "attaching mount beneath {} (move_mount MOVE_MOUNT_BENEATH): {error}",
                target.display()
            ),
        }
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttachError::BeneathUnsupported => None,
            AttachError::Failed { error, .. } => Some(error),
        }
    }
}

/// Attach a detached mount *beneath* the mount on top of `target` (atomic replace, 6.5+).
///
/// Afterwards [`detach_lazily`] on `target` drops the old top and uncovers the new mount;
/// at no point is `target` without a mount.
pub fn attach_beneath(fd: impl AsFd, target: &Path) -> Result<(), AttachError> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_BENEATH;
    match rustix::mount::move_mount(fd, "", CWD, target, flags) {
        Ok(()) => Ok(()),
        // EINVAL is also the answer to a bad target on new kernels: only the probe can
        // tell an unknown flag apart.
        Err(Errno::INVAL) if !beneath_supported() => Err(AttachError::BeneathUnsupported),
        Err(errno) => Err(AttachError::Failed {
            target: target.to_path_buf(),
            error: io::Error::from(errno),
        }),
    }
}

/// Whether the kernel knows `MOVE_MOUNT_BENEATH` (probed once, cached).
pub fn beneath_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // move_mount rejects unknown flags with EINVAL before it looks at any path; with
        // the flag known, the empty paths (no *_EMPTY_PATH) fail the lookup with ENOENT.
        let r = rustix::mount::move_mount(CWD, "", CWD, "", MoveMountFlags::MOVE_MOUNT_BENEATH);
        r != Err(Errno::INVAL)
    })
}

/// Lazily unmount the top mount at `path` (`umount2(MNT_DETACH|UMOUNT_NOFOLLOW)`).
pub fn detach_lazily(path: &Path) -> Result<()> {
    rustix::mount::unmount(path, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW)
        .map_err(io::Error::from)
        .with_context(|| format!("lazily unmounting {}", path.display()))
}

/// Detached recursive copy of the mount tree at `path` (incl. submounts), as one fd.
pub fn clone_tree(path: &Path) -> Result<OwnedFd> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE;
    rustix::mount::open_tree(CWD, path, flags)
        .map_err(io::Error::from)
        .with_context(|| format!("cloning the mount tree at {} (open_tree)", path.display()))
}

/// Bind-mount the directory `path` onto itself read-only (e.g. the meta dir of a
/// mutable overlay), keeping the nosuid/nodev/noexec/nosymfollow of the mount below.
///
/// Uses the legacy bind + `MS_BIND|MS_REMOUNT|MS_RDONLY` pair: the new-API way needs
/// `mount_setattr`, which rustix does not provide. A bind remount replaces every
/// per-mount flag it is not given (atime excepted), hence the statvfs read first.
pub fn bind_readonly(path: &Path) -> Result<()> {
    let vfs = rustix::fs::statvfs(path)
        .map_err(io::Error::from)
        .with_context(|| format!("statvfs {}", path.display()))?;
    rustix::mount::mount_bind(path, path)
        .map_err(io::Error::from)
        .with_context(|| format!("bind-mounting {} onto itself", path.display()))?;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    let keep = [
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        // ST_NOSYMFOLLOW (0x2000) has no rustix name yet.
        (
            StatVfsMountFlags::from_bits_retain(0x2000),
            MountFlags::NOSYMFOLLOW,
        ),
    ];
    for (st, ms) in keep {
        if vfs.f_flag.contains(st) {
            flags |= ms;
        }
    }
    if let Err(errno) = rustix::mount::mount_remount(path, flags, "") {
        // Do not leave a writable bind behind.
        let _ = rustix::mount::unmount(path, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW);
        return Err(io::Error::from(errno))
            .with_context(|| format!("remounting the bind of {} read-only", path.display()));
    }
    Ok(())
}

/// Mount a fresh tmpfs (nodev, nosuid) with root directory mode `mode` at `target`.
pub fn mount_tmpfs(target: &Path, mode: u32) -> Result<()> {
    let data = CString::new(format!("mode={:o}", mode & 0o7777))
        .context("tmpfs mode option contains a NUL byte")?;
    rustix::mount::mount(
        "tmpfs",
        target,
        "tmpfs",
        MountFlags::NODEV | MountFlags::NOSUID,
        data.as_c_str(),
    )
    .map_err(io::Error::from)
    .with_context(|| format!("mounting a tmpfs workspace at {}", target.display()))
}

/// Whether `path` (symlinks followed) is the root of a mount, bind mounts included.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let st = rustix::fs::statx(CWD, path, AtFlags::empty(), StatxFlags::MNT_ID)
        .map_err(io::Error::from)
        .with_context(|| format!("statx {}", path.display()))?;
    if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
    }
    // Kernels before 5.8 lack STATX_ATTR_MOUNT_ROOT (and STATX_MNT_ID): compare with the
    // parent, which misses a bind mount of a directory onto its own filesystem.
    let parent = rustix::fs::statx(CWD, path.join(".."), AtFlags::empty(), StatxFlags::MNT_ID)
        .map_err(io::Error::from)
        .with_context(|| format!("statx {}/..", path.display()))?;
    let has_mnt_id = |mask: u32| StatxFlags::from_bits_retain(mask).contains(StatxFlags::MNT_ID);
    if has_mnt_id(st.stx_mask) && has_mnt_id(parent.stx_mask) {
        return Ok(st.stx_mnt_id != parent.stx_mnt_id);
    }
    Ok((st.stx_dev_major, st.stx_dev_minor) != (parent.stx_dev_major, parent.stx_dev_minor))
}

/// One line of `/proc/<pid>/mountinfo`, with `\ooo` escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount ID (field 1).
    pub mount_id: u64,
    /// Parent mount ID (field 2).
    pub parent_id: u64,
    /// Device major number of the filesystem.
    pub major: u32,
    /// Device minor number of the filesystem.
    pub minor: u32,
    /// Directory of the filesystem that forms this mount's root.
    pub root: PathBuf,
    /// Mount point, relative to the process root.
    pub mount_point: PathBuf,
    /// Per-mount options (`ro,nodev,relatime`).
    pub options: String,
    /// Optional fields (`shared:1`, `master:2`, …).
    pub optional_fields: Vec<String>,
    /// Filesystem type (`overlay`).
    pub fstype: String,
    /// Mount source (`sysext`, `/dev/vda1`, `none`).
    pub source: String,
    /// Superblock options (`ro,lowerdir+=…`).
    pub super_options: String,
}

impl MountInfo {
    /// Whether the per-mount options contain `opt` exactly (e.g. "ro", "nodev").
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.split(',').any(|o| o == opt)
    }
}

/// Decode the kernel's `\ooo` octal escapes (space, tab, newline, backslash, comma).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let oct = field.get(i + 1..i + 4).filter(|d| {
            field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match oct {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

fn unescape_path(field: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

fn unescape_string(field: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

/// Parse mountinfo text (bytes: mount points need not be UTF-8).
pub fn parse_mountinfo(text: &[u8]) -> Result<Vec<MountInfo>> {
    let mut out = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = parse_line(line).with_context(|| {
            format!(
                "mountinfo line {}: {:?}",
                n + 1,
                String::from_utf8_lossy(line)
            )
        })?;
        out.push(parsed);
    }
    Ok(out)
}

fn parse_line(line: &[u8]) -> Result<MountInfo> {
    let fields: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let sep = fields
        .iter()
        .position(|f| *f == b"-")
        .context("no ' - ' separator")?;
    if sep < 6 || fields.len() < sep + 3 {
        bail!("too few fields");
    }
    let num = |f: &[u8], what: &str| -> Result<u64> {
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad {what}"))
    };
    let devno = std::str::from_utf8(fields[2])
        .ok()
        .and_then(|s| s.split_once(':'));
    let (major, minor) = devno
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .context("bad major:minor")?;
    Ok(MountInfo {
        mount_id: num(fields[0], "mount id")?,
        parent_id: num(fields[1], "parent id")?,
        major,
        minor,
        root: unescape_path(fields[3]),
        mount_point: unescape_path(fields[4]),
        options: unescape_string(fields[5]),
        optional_fields: fields[6..sep].iter().map(|f| unescape_string(f)).collect(),
        fstype: unescape_string(fields[sep + 1]),
        source: unescape_string(fields[sep + 2]),
        super_options: fields
            .get(sep + 3)
            .map(|f| unescape_string(f))
            .unwrap_or_default(),
    })
}

/// The calling thread's mount table (`/proc/thread-self/mountinfo`).
pub fn mountinfo() -> Result<Vec<MountInfo>> {
    let path = "/proc/thread-self/mountinfo";
    let text = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    parse_mountinfo(&text).with_context(|| format!("parsing {path}"))
}

/// Whether a path lookup of `m.mount_point` would end on mount `m`, judged from the table.
fn visible(table: &[MountInfo], m: &MountInfo) -> bool {
    let mut cur = m;
    // The mount we came up from: it may sit on `cur` at the same path (a stack we are
    // looking *through*), which does not make `cur` unreachable.
    let mut below: Option<u64> = None;
    // Walk up the parent chain; the bound guards against a malformed (cyclic) table.
    for _ in 0..=table.len() {
        // Something stacked on top at the same mount point (incl. a beneath-mounted one).
        let covered = table.iter().any(|o| {
            o.parent_id == cur.mount_id
                && o.mount_id != cur.mount_id
                && Some(o.mount_id) != below
                && o.mount_point == cur.mount_point
        });
        // A sibling mounted over a directory on the way to our mount point hides us.
        let hidden = table.iter().any(|o| {
            o.parent_id == cur.parent_id
                && o.mount_id != cur.mount_id
                && o.mount_point != cur.mount_point
                && cur.mount_point.starts_with(&o.mount_point)
        });
        if covered || hidden {
            return false;
        }
        match table
            .iter()
            .find(|p| p.mount_id == cur.parent_id && p.mount_id != cur.mount_id)
        {
            Some(parent) => {
                below = Some(cur.mount_id);
                cur = parent;
            }
            None => return true, // reached the namespace root (its parent is not listed)
        }
    }
    false
}

/// Mounts strictly below `prefix` that are reachable, sorted by path, dropping any
/// nested inside an earlier one (systemd's `get_sub_mounts`; a recursive clone of
/// the outer one carries the nested ones along). Pure: works on a parsed table.
pub fn visible_submounts(table: &[MountInfo], prefix: &Path) -> Vec<MountInfo> {
    let mut found: Vec<&MountInfo> = table
        .iter()
        .filter(|m| m.mount_point != prefix && m.mount_point.starts_with(prefix))
        .filter(|m| visible(table, m))
        .collect();
    found.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    let mut out: Vec<MountInfo> = Vec::new();
    for m in found {
        if !out
            .iter()
            .any(|o| m.mount_point.starts_with(&o.mount_point))
        {
            out.push(m.clone());
        }
    }
    out
}

/// Paths of the visible submounts strictly below `prefix` in this thread's namespace.
///
/// Like systemd, each candidate is confirmed with statx: the mount ID found at its path
/// must be the one from mountinfo (else it is over-mounted or hidden).
pub fn submounts(prefix: &Path) -> Result<Vec<PathBuf>> {
    let table = mountinfo()?;
    let mut out = Vec::new();
    for m in visible_submounts(&table, prefix) {
        let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT;
        match rustix::fs::statx(CWD, &m.mount_point, flags, StatxFlags::MNT_ID) {
            Ok(st) if st.stx_mnt_id == m.mount_id => out.push(m.mount_point),
            Ok(_) | Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::ACCESS) => {}
            Err(errno) => {
                return Err(io::Error::from(errno))
                    .with_context(|| format!("statx {}", m.mount_point.display()))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_handles_octal_and_stray_backslashes() {
        assert_eq!(unescape(b"a\\040b\\134c\\054"), b"a b\\c,".to_vec());
        assert_eq!(unescape(b"x\\9y\\"), b"x\\9y\\".to_vec());
    }

    #[test]
    fn probe_detects_beneath_on_new_kernels() {
        // Any development machine runs >= 6.5; the probe must not misreport it.
        if rustix::process::geteuid().is_root() {
            assert!(beneath_supported());
        }
    }
}
