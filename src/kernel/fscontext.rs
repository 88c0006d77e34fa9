//! Detached filesystem mounts through the new mount API (fsopen/fsconfig/fsmount).
//!
//! Mounts made here are never attached: they do not show up in any mount table, do not
//! generate mount events for PID 1 (rate limited to 5/s in the initrd), and vanish when
//! the last fd referring to them is closed — so there is nothing to clean up on error.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags, SeekFrom};
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

/// An fs-context fd (`fsopen`) plus a kernel-log cursor: the one way a file system is set up
/// and mounted detached (images, overlays, `/var`), with the kernel's own words in errors.
pub struct FsContext {
    fd: OwnedFd,
    kmsg: KmsgCursor,
    what: String,
}

impl FsContext {
    /// `fsopen(fstype)`; `what` names the mount in every error.
    pub fn open(fstype: &str, what: String) -> Result<Self> {
        // The cursor is positioned before the first syscall so it only sees our messages.
        let kmsg = KmsgCursor::new();
        let fd = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(std::io::Error::from)
            .with_context(|| {
                format!("{what}: fsopen(\"{fstype}\") failed (file system not supported by this kernel, or no CAP_SYS_ADMIN)")
            })?;
        Ok(FsContext { fd, kmsg, what })
    }

    /// The context fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `FSCONFIG_SET_STRING`.
    pub fn set_string(&self, key: &str, value: &OsStr) -> Result<()> {
        fsconfig_set_string(&self.fd, key, value).map_err(|errno| {
            let step = format!("fsconfig {key}={}", value.to_string_lossy());
            self.error(&step, errno)
        })
    }

    /// `FSCONFIG_SET_FLAG`.
    pub fn set_flag(&self, key: &str) -> Result<()> {
        fsconfig_set_flag(&self.fd, key)
            .map_err(|errno| self.error(&format!("fsconfig {key}"), errno))
    }

    /// `FSCONFIG_SET_FD`, the raw answer (callers fall back to a string on `EINVAL`/`EBADF`).
    pub fn set_fd(&self, key: &str, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::mount::fsconfig_set_fd(&self.fd, key, fd)
    }

    /// `FSCONFIG_SET_STRING`, the raw answer.
    pub fn try_set_string(&self, key: &str, value: &OsStr) -> Result<(), Errno> {
        fsconfig_set_string(&self.fd, key, value)
    }

    /// `FSCONFIG_CMD_CREATE` then `fsmount` with `attrs`: the detached mount.
    pub fn mount(&self, attrs: MountAttrFlags) -> Result<OwnedFd> {
        fsconfig_create(&self.fd).map_err(|errno| self.error("fsconfig create", errno))?;
        let mnt = fsmount(&self.fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
            .map_err(|errno| self.error("fsmount", errno))?;
        // Notes of a successful mount (e.g. ext4 feature warnings) are worth a debug line.
        for line in self.messages() {
            tracing::debug!("{}: kernel: {line}", self.what);
        }
        Ok(mnt)
    }

    /// The messages queued on the context, drained.
    pub fn messages(&self) -> Vec<String> {
        drain_fs_log(self.fd.as_fd())
    }

    /// A failed step as an error: the kernel's errno as the source, the step, the context's log
    /// and the file system's new kernel-log lines as the context.
    pub fn error(&self, step: &str, errno: Errno) -> anyhow::Error {
        self.error_with(step, errno, self.messages())
    }

    /// [`FsContext::error`] with the context's messages already drained (`msgs`).
    pub fn error_with(&self, step: &str, errno: Errno, mut msgs: Vec<String>) -> anyhow::Error {
        msgs.extend(self.kmsg.new_lines());
        let kernel = if msgs.is_empty() {
            "the kernel logged no reason".to_string()
        } else {
            let lines: Vec<String> = msgs.iter().map(|m| humanize_log_line(m)).collect();
            format!("kernel: {}", lines.join("; "))
        };
        anyhow::Error::new(std::io::Error::from(errno))
            .context(format!("{}: {step} failed ({kernel})", self.what))
    }
}

/// A read position at the end of `/dev/kmsg`: most file systems (and overlayfs) report mount
/// problems with printk, not on the fs context.
struct KmsgCursor(Option<OwnedFd>);

impl KmsgCursor {
    fn new() -> Self {
        // Best effort: without /dev/kmsg (or CAP_SYSLOG under dmesg_restrict) errors
        // simply carry less detail.
        let fd = rustix::fs::open(
            "/dev/kmsg",
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .filter(|fd| rustix::fs::seek(fd, SeekFrom::End(0)).is_ok());
        KmsgCursor(fd)
    }

    /// Kernel-log records since the cursor was made that come from a file system or overlayfs
    /// (other processes may log meanwhile: only messages naming a file system are kept).
    fn new_lines(&self) -> Vec<String> {
        const SOURCES: [&str; 8] = [
            "overlayfs:",
            "overlay:",
            "squashfs:",
            "SQUASHFS",
            "erofs",
            "EXT4-fs",
            "BTRFS",
            "XFS",
        ];
        let Some(fd) = &self.0 else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        for _ in 0..256 {
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // Record format: "prio,seq,usec,flags;message\n continuation…".
                    let record = String::from_utf8_lossy(&buf[..n]);
                    let first = record.lines().next().unwrap_or_default();
                    if let Some((_, msg)) = first.split_once(';') {
                        if SOURCES.iter().any(|p| msg.starts_with(p)) {
                            out.push(msg.trim_end().to_string());
                        }
                    }
                }
                // EPIPE: records were overwritten under us; the next read resynchronises.
                Err(Errno::PIPE) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// Mount `source` (block device, or a regular file for file-backed erofs) detached.
pub fn mount_detached(source: &Path, fstype: FsType, flags: MountFlags) -> Result<OwnedFd> {
    let ctx = FsContext::open(
        fstype.kernel_name(),
        format!("mounting {} as {fstype}", source.display()),
    )?;
    ctx.set_string("source", source.as_os_str())?;
    ctx.set_flag("ro")?;
    match fstype {
        // A read-only image must never be written, not even by journal replay; this
        // is what systemd's dissect does for ext4.
        FsType::Ext4 => ctx.set_flag("norecovery")?,
        // Same reason for btrfs's log tree (rescue= exists since 5.9).
        FsType::Btrfs => ctx.set_string("rescue", OsStr::new("nologreplay"))?,
        // And xfs's log (systemd's dissect mounts read-only xfs images with norecovery).
        FsType::Xfs => ctx.set_flag("norecovery")?,
        FsType::Squashfs | FsType::Erofs => {}
    }
    let mut attrs = MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV;
    if flags.nosuid {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
    }
    if flags.noexec {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC;
    }
    ctx.mount(attrs)
}

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
