//! Detached filesystem mounts through the new mount API (fsopen/fsconfig/fsmount).
//!
//! Mounts made here are never attached: they do not show up in any mount table, do not
//! generate mount events for PID 1 (rate limited to 5/s in the initrd), and vanish when
//! the last fd referring to them is closed — so there is nothing to clean up on error.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, FsMountFlags,
    FsOpenFlags, MountAttrFlags,
};

use crate::ondisk::superblock::FsType;

/// Per-mount attribute flags on top of the always-set `ro` and `nodev`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MountFlags {
    /// Ignore setuid/setgid bits (`MOUNT_ATTR_NOSUID`).
    pub nosuid: bool,
    /// Forbid executing files (`MOUNT_ATTR_NOEXEC`).
    pub noexec: bool,
}

/// The fs-context log holds at most 8 messages; the bound only guards against a
/// misbehaving fd that never reports empty.
const MAX_LOG_MESSAGES: usize = 64;

/// Kernel messages queued on an fs-context fd (`"e erofs: …"`, `"w ext4: …"`).
pub fn drain_fs_log(fs_fd: BorrowedFd<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 4096];
    for _ in 0..MAX_LOG_MESSAGES {
        match rustix::io::read(fs_fd, &mut buf[..]) {
            Ok(0) => break,
            Ok(n) => {
                let line = String::from_utf8_lossy(&buf[..n]);
                lines.push(line.trim_end().to_owned());
            }
            Err(Errno::INTR) => continue,
            // ENODATA = log empty; anything else (EAGAIN, EMSGSIZE, EBADF, …) means we
            // cannot read more, which must not mask the error we are reporting.
            Err(_) => break,
        }
    }
    lines
}

/// A log line for humans: the fs-context severity letter (`e `, `w `, `i `) becomes a word
/// where it adds something, and goes away for errors (the error already says it failed).
pub fn humanize_log_line(line: &str) -> String {
    match line.split_once(' ') {
        Some(("e", rest)) => rest.to_string(),
        Some(("w", rest)) => format!("warning: {rest}"),
        Some(("i", rest)) => format!("info: {rest}"),
        _ => line.to_string(),
    }
}

/// Turn a failed mount step into an error carrying source, fstype and kernel log.
fn mount_error(
    fs_fd: BorrowedFd<'_>,
    source: &Path,
    fstype: FsType,
    step: &str,
    err: Errno,
) -> anyhow::Error {
    let log = drain_fs_log(fs_fd);
    // Most filesystems report superblock problems through printk, not the fs
    // context, so an empty log is common: point the reader to the right place.
    let kernel = if log.is_empty() {
        " (no message in the fs context; see the kernel log)".to_owned()
    } else {
        let lines: Vec<String> = log.iter().map(|l| humanize_log_line(l)).collect();
        format!(" (kernel: {})", lines.join("; "))
    };
    anyhow::Error::new(err).context(format!(
        "mounting {} as {}: {step} failed{kernel}",
        source.display(),
        fstype
    ))
}

/// Mount `source` (block device, or a regular file for file-backed erofs) detached.
pub fn mount_detached(source: &Path, fstype: FsType, flags: MountFlags) -> Result<OwnedFd> {
    let fs_fd = fsopen(fstype.kernel_name(), FsOpenFlags::FSOPEN_CLOEXEC).with_context(|| {
        format!(
            "mounting {}: fsopen(\"{}\") failed (filesystem not supported by this kernel?)",
            source.display(),
            fstype
        )
    })?;
    let fd = fs_fd.as_fd();

    fsconfig_set_string(&fs_fd, "source", source)
        .map_err(|e| mount_error(fd, source, fstype, "fsconfig source", e))?;
    fsconfig_set_flag(&fs_fd, "ro")
        .map_err(|e| mount_error(fd, source, fstype, "fsconfig ro", e))?;
    match fstype {
        // A read-only image must never be written, not even by journal replay; this
        // is what systemd's dissect does for ext4.
        FsType::Ext4 => fsconfig_set_flag(&fs_fd, "norecovery")
            .map_err(|e| mount_error(fd, source, fstype, "fsconfig norecovery", e))?,
        // Same reason for btrfs's log tree (rescue= exists since 5.9).
        FsType::Btrfs => fsconfig_set_string(&fs_fd, "rescue", "nologreplay")
            .map_err(|e| mount_error(fd, source, fstype, "fsconfig rescue=nologreplay", e))?,
        // And xfs's log (systemd's dissect mounts read-only xfs images with norecovery).
        FsType::Xfs => fsconfig_set_flag(&fs_fd, "norecovery")
            .map_err(|e| mount_error(fd, source, fstype, "fsconfig norecovery", e))?,
        FsType::Squashfs | FsType::Erofs => {}
    }
    fsconfig_create(&fs_fd).map_err(|e| mount_error(fd, source, fstype, "fsconfig create", e))?;

    let mut attrs = MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV;
    if flags.nosuid {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
    }
    if flags.noexec {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC;
    }
    let mount = fsmount(&fs_fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| mount_error(fd, source, fstype, "fsmount", e))?;

    // Warnings of a successful mount (e.g. ext4 feature notes) are worth a debug line.
    for line in drain_fs_log(fd) {
        tracing::debug!(source = %source.display(), %fstype, "kernel: {line}");
    }
    Ok(mount)
}

/// `(major, minor)` from a kernel release string like `6.12.0-foo` or `5.8`.
/// True when the running kernel can mount erofs straight from a regular file (>= 6.12).
pub fn erofs_file_backed_supported() -> bool {
    crate::kernel::features::erofs_file_backed()
}

#[cfg(test)]
mod tests {
    #[test]
    fn severity_letters_become_words_or_vanish() {
        assert_eq!(
            super::humanize_log_line("e unable to read squashfs_super_block"),
            "unable to read squashfs_super_block"
        );
        assert_eq!(
            super::humanize_log_line("w ext4: warning here"),
            "warning: ext4: warning here"
        );
        assert_eq!(super::humanize_log_line("plain"), "plain");
    }
}
