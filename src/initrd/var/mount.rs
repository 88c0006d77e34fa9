//! Mounting the `/var` filesystem read-write with the new mount API, fstab options included.
//!
//! Why `fsopen`/`fsconfig`/`fsmount` + `move_mount` rather than mount(2): the kernel's
//! complaint about a bad option or a broken superblock comes back on the fs-context fd and
//! goes into our error message (mount(2) only leaves it in dmesg), and nothing is attached
//! unless every step succeeded. The result is the same single mount mount(8) would make.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, FsMountFlags,
    FsOpenFlags, MountAttrFlags,
};

use crate::decide::mountopts::split_options;
use crate::kernel::fscontext::drain_fs_log;

/// Words only mount(8)/systemd look at (libmount's userspace map); never given to the kernel.
const USERSPACE_WORDS: &[&str] = &[
    "defaults", "auto", "noauto", "nofail", "user", "nouser", "users", "owner", "noowner", "group",
    "nogroup", "_netdev",
];
/// Prefixes of userspace-only options (`x-systemd.*`, `x-initrd.mount`, `comment=…`).
const USERSPACE_PREFIXES: &[&str] = &["x-", "X-", "comment=", "uhelper=", "helper="];
/// Words that would make this something other than a plain mount of a device.
const REFUSED_WORDS: &[&str] = &[
    "bind",
    "rbind",
    "remount",
    "move",
    "shared",
    "rshared",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];
/// Flag words that modern kernels ignore for ext4/xfs/btrfs and the new API has no key for.
const IGNORED_WORDS: &[&str] = &["silent", "loud", "iversion", "noiversion"];
/// Superblock flag words the fs context takes as `fsconfig` flags (`vfs_parse_sb_flag()`).
const SB_FLAG_WORDS: &[&str] = &[
    "sync",
    "async",
    "dirsync",
    "lazytime",
    "nolazytime",
    "mand",
    "nomand",
];

/// Mount options split into what goes where in the new mount API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPlan {
    /// Read-only (`ro` last among `ro`/`rw`); default read-write.
    pub read_only: bool,
    /// Per-mount attributes for `fsmount` (nosuid, nodev, noexec, atime handling, nosymfollow).
    pub attrs: MountAttrFlags,
    /// Superblock flag words (`sync`, `lazytime`, …) in order.
    pub sb_flags: Vec<String>,
    /// Filesystem parameters (`key` or `key=value`), in order.
    pub params: Vec<(String, Option<String>)>,
}

impl Default for MountPlan {
    fn default() -> MountPlan {
        MountPlan {
            read_only: false,
            attrs: MountAttrFlags::empty(),
            sb_flags: Vec::new(),
            params: Vec::new(),
        }
    }
}

impl MountPlan {
    /// Classify comma-separated fstab options; refuses bind/remount/propagation words.
    pub fn from_options(options: &str) -> Result<MountPlan, String> {
        let words = split_options(options)
            .ok_or_else(|| format!("options '{options}': unbalanced quotes or trailing '\\'"))?;
        let mut plan = MountPlan::default();
        for word in &words {
            let w = word.as_str();
            if USERSPACE_WORDS.contains(&w)
                || USERSPACE_PREFIXES.iter().any(|p| w.starts_with(p))
                || IGNORED_WORDS.contains(&w)
            {
                continue;
            }
            if REFUSED_WORDS.contains(&w) {
                return Err(format!(
                    "option '{w}' is not supported for /var (a plain device mount is needed)"
                ));
            }
            if SB_FLAG_WORDS.contains(&w) {
                plan.sb_flags.push(w.to_string());
                continue;
            }
            if !plan.apply_attr_word(w) {
                let (key, value) = match w.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(strip_quotes(v).to_string())),
                    None => (w.to_string(), None),
                };
                if key.is_empty() {
                    return Err(format!("option '{w}' has an empty name"));
                }
                plan.params.push((key, value));
            }
        }
        Ok(plan)
    }

    /// Apply a per-mount flag word (libmount's Linux map); false if `w` is not one.
    fn apply_attr_word(&mut self, w: &str) -> bool {
        type A = MountAttrFlags;
        let atime = |plan: &mut MountPlan, mode: A| {
            plan.attrs.remove(A::MOUNT_ATTR__ATIME);
            plan.attrs.insert(mode);
        };
        match w {
            "ro" => self.read_only = true,
            "rw" => self.read_only = false,
            "nosuid" => self.attrs.insert(A::MOUNT_ATTR_NOSUID),
            "suid" => self.attrs.remove(A::MOUNT_ATTR_NOSUID),
            "nodev" => self.attrs.insert(A::MOUNT_ATTR_NODEV),
            "dev" => self.attrs.remove(A::MOUNT_ATTR_NODEV),
            "noexec" => self.attrs.insert(A::MOUNT_ATTR_NOEXEC),
            "exec" => self.attrs.remove(A::MOUNT_ATTR_NOEXEC),
            "nosymfollow" => self.attrs.insert(A::MOUNT_ATTR_NOSYMFOLLOW),
            "symfollow" => self.attrs.remove(A::MOUNT_ATTR_NOSYMFOLLOW),
            "nodiratime" => self.attrs.insert(A::MOUNT_ATTR_NODIRATIME),
            "diratime" => self.attrs.remove(A::MOUNT_ATTR_NODIRATIME),
            "noatime" => atime(self, A::MOUNT_ATTR_NOATIME),
            "strictatime" => atime(self, A::MOUNT_ATTR_STRICTATIME),
            // relatime is the kernel default (its attr value is 0); "atime" and the "no"
            // forms clear the explicit choice, which also lands on relatime, as mount(2) does.
            "relatime" | "atime" | "norelatime" | "nostrictatime" => {
                atime(self, A::MOUNT_ATTR_RELATIME)
            }
            _ => return false,
        }
        true
    }
}

fn strip_quotes(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
}

/// Mount `device` as `fstype` with `plan` and attach it on the directory `target` (an fd
/// resolved inside the root; `shown` names it in messages).
pub fn mount_device(
    device: &Path,
    fstype: &str,
    plan: &MountPlan,
    target: BorrowedFd<'_>,
    shown: &Path,
) -> Result<()> {
    let what = || {
        format!(
            "mounting {} ({fstype}) at {}",
            device.display(),
            shown.display()
        )
    };
    let fs_fd = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).with_context(|| {
        format!(
            "{}: fsopen(\"{fstype}\") failed (filesystem type not supported by this kernel?)",
            what()
        )
    })?;
    // The kernel's own explanation, if it left one in the fs context log.
    let fail = |step: String, err: Errno| -> anyhow::Error {
        let log = drain_fs_log(fs_fd.as_fd());
        let kernel = if log.is_empty() {
            " (no message in the fs context; see the kernel log)".to_string()
        } else {
            format!(" (kernel: {})", log.join("; "))
        };
        anyhow!(std::io::Error::from(err)).context(format!("{}: {step} failed{kernel}", what()))
    };
    fsconfig_set_string(&fs_fd, "source", device).map_err(|e| fail("fsconfig source".into(), e))?;
    if plan.read_only {
        fsconfig_set_flag(&fs_fd, "ro").map_err(|e| fail("fsconfig ro".into(), e))?;
    }
    for flag in &plan.sb_flags {
        fsconfig_set_flag(&fs_fd, flag.as_str()).map_err(|e| fail(format!("option {flag}"), e))?;
    }
    for (key, value) in &plan.params {
        match value {
            Some(v) => fsconfig_set_string(&fs_fd, key.as_str(), v.as_str())
                .map_err(|e| fail(format!("option {key}={v}"), e))?,
            None => fsconfig_set_flag(&fs_fd, key.as_str())
                .map_err(|e| fail(format!("option {key}"), e))?,
        }
    }
    fsconfig_create(&fs_fd).map_err(|e| fail("fsconfig create".into(), e))?;
    let mut attrs = plan.attrs;
    if plan.read_only {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    let mnt = fsmount(&fs_fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| fail("fsmount".into(), e))?;
    for line in drain_fs_log(fs_fd.as_fd()) {
        tracing::debug!(device = %device.display(), fstype, "kernel: {line}");
    }
    crate::kernel::mounts::attach_at(mnt.as_fd(), target, shown).with_context(what)
}
