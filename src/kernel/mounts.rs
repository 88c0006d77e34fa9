//! The attach side of the new mount API, detaching, cloning and the mount table.
//!
//! Assembly happens on a helper thread that has its own mount namespace
//! ([`super::namespace::in_private_namespace`]); the result leaves it as a detached mount fd
//! (fds are process-wide) and is attached in the caller's namespace with one `move_mount`
//! ([`attach`], [`attach_beneath`]). Mounts made on the helper thread never reach the
//! caller's namespace or PID 1's mount table (no mount-event storm in the initrd).
//!
//! Mount tables are read from `/proc/thread-self/mountinfo`: `/proc/self` names the
//! thread-group leader, whose namespace differs from a helper thread's.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags, StatVfsMountFlags, StatxAttributes, StatxFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};

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
    crate::kernel::features::beneath_supported()
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

/// Bind-mount the directory `source` onto `path` read-only (the meta layer's own meta dir onto
/// the merged tree's, so neither a write nor a stale copy in the upper dir can change what the
/// tree says about itself), keeping the nosuid/nodev/noexec/nosymfollow of the mount below.
///
/// Uses the legacy bind + `MS_BIND|MS_REMOUNT|MS_RDONLY` pair: the new-API way needs
/// `mount_setattr`, which rustix does not provide. A bind remount replaces every
/// per-mount flag it is not given (atime excepted), hence the statvfs read first.
pub fn bind_readonly(source: &Path, path: &Path) -> Result<()> {
    let vfs = rustix::fs::statvfs(path)
        .map_err(io::Error::from)
        .with_context(|| format!("statvfs {}", path.display()))?;
    rustix::mount::mount_bind(source, path)
        .map_err(io::Error::from)
        .with_context(|| format!("bind-mounting {} onto {}", source.display(), path.display()))?;
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
    let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(io::Error::from)
        .with_context(|| format!("opening {}", path.display()))?;
    is_mount_point_fd(fd.as_fd()).with_context(|| format!("statx {}", path.display()))
}

/// Whether the inode `fd` refers to is the root of a mount, bind mounts included.
pub fn is_mount_point_fd(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
    }
    // Kernels before 5.8 lack STATX_ATTR_MOUNT_ROOT (and STATX_MNT_ID): compare with the
    // parent, which misses a bind mount of a directory onto its own filesystem.
    let parent_fd = rustix::fs::openat(fd, "..", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
    let parent = rustix::fs::statx(&parent_fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    let has_mnt_id = |mask: u32| StatxFlags::from_bits_retain(mask).contains(StatxFlags::MNT_ID);
    if has_mnt_id(st.stx_mask) && has_mnt_id(parent.stx_mask) {
        return Ok(st.stx_mnt_id != parent.stx_mnt_id);
    }
    Ok((st.stx_dev_major, st.stx_dev_minor) != (parent.stx_dev_major, parent.stx_dev_minor))
}

/// Attach a detached mount at the directory `target` refers to (an fd resolved inside the root).
pub fn attach_at(tree: BorrowedFd<'_>, target: BorrowedFd<'_>, shown: &Path) -> Result<()> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    rustix::mount::move_mount(tree, "", target, "", flags)
        .map_err(io::Error::from)
        .with_context(|| format!("attaching mount at {} (move_mount)", shown.display()))
}

/// Attach a detached mount beneath the top mount `target` refers to (atomic replace, 6.5+).
pub fn attach_beneath_at(
    tree: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    shown: &Path,
) -> Result<(), AttachError> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
        | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH
        | MoveMountFlags::MOVE_MOUNT_BENEATH;
    match rustix::mount::move_mount(tree, "", target, "", flags) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL) if !beneath_supported() => Err(AttachError::BeneathUnsupported),
        Err(errno) => Err(AttachError::Failed {
            target: shown.to_path_buf(),
            error: io::Error::from(errno),
        }),
    }
}

/// Lazily unmount exactly the mount `fd` refers to (through its magic link, so nothing is
/// looked up by name).
pub fn detach_fd(fd: BorrowedFd<'_>, shown: &Path) -> Result<()> {
    // Without UMOUNT_NOFOLLOW: the magic link must be followed to the mount it names.
    rustix::mount::unmount(crate::kernel::root::proc_fd_path(fd), UnmountFlags::DETACH)
        .map_err(io::Error::from)
        .with_context(|| format!("lazily unmounting {}", shown.display()))
}

/// Detached recursive copy of the mount tree `fd` refers to (incl. submounts), as one fd.
pub fn clone_tree_fd(fd: BorrowedFd<'_>, shown: &Path) -> Result<OwnedFd> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::AT_EMPTY_PATH;
    rustix::mount::open_tree(fd, "", flags)
        .map_err(io::Error::from)
        .with_context(|| format!("cloning the mount tree at {} (open_tree)", shown.display()))
}

pub use crate::ondisk::mountinfo::{parse_mountinfo, visible_submounts, MountInfo};

/// The calling thread's mount table (`/proc/thread-self/mountinfo`).
pub fn mountinfo() -> Result<Vec<MountInfo>> {
    let path = "/proc/thread-self/mountinfo";
    let text = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    parse_mountinfo(&text).with_context(|| format!("parsing {path}"))
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
    fn probe_detects_beneath_on_new_kernels() {
        // Any development machine runs >= 6.5; the probe must not misreport it.
        if rustix::process::geteuid().is_root() {
            assert!(beneath_supported());
        }
    }
}
