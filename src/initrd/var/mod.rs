//! `/var` in the initrd: mount the filesystem that the kernel command line names for `/var` —
//! or, when it names none, the one the root's own configuration defines (`etc/fstab`,
//! `etc/systemd/system/var.mount`, see [`var_from_root`]) — at `<root>/var` (`/sysroot/var`)
//! before discovery, so extensions, confexts and the `extensions.mutable` link on a separate
//! `/var` are merged in the initrd and the booted system's refresh finds nothing to do.
//!
//! # Which parameter
//!
//! * `rd.extmerge.var=WHAT[:FSTYPE[:OPTIONS]]` — only in the initrd; the last one wins (as for
//!   any kernel parameter). It wins over `systemd.mount-extra=`: it is the explicit,
//!   initrd-only instruction, e.g. to name the device differently for the initrd.
//! * else the **first** `systemd.mount-extra=WHAT:WHERE[:FSTYPE[:OPTIONS]]` whose WHERE is
//!   `/var` — the entry the booted system turns into `var.mount`: systemd-fstab-generator
//!   writes each entry with an exclusive create (`generator_open_unit_file()`, `fopen(…, "wxe")`
//!   in `src/shared/generator.c`), so a later duplicate only logs "Duplicate entry" and the
//!   first one defines `var.mount`. Using the first keeps both stages on the same device.
//! * `rd.systemd.mount-extra=` is not looked at: it mounts inside the initrd's own tree.
//! * else the root's own `/var` ([`var_from_root`]: `etc/systemd/system/var.mount`, then
//!   `etc/fstab`, as the booted system's systemd decides it).
//!
//! The command line winning is our rule, not the booted system's: its fstab-generator reads
//! `/etc/fstab` before the command line (`run_generator()`), so an fstab entry for `/var` beats
//! `systemd.mount-extra=` there, and `/etc/systemd/system/var.mount` beats both. When the two
//! name different devices, `mount-var` warns; the booted system's `var.mount` then finds the
//! command line's `/var` mounted and is active on it.
//!
//! Syntax as in `mount_array_add()` (`src/fstab-generator/fstab-generator.c`):
//! `extract_many_words(":", EXTRACT_CUNESCAPE|EXTRACT_DONT_COALESCE_SEPARATORS)` — empty
//! fields count (`WHAT:/var::rw`), C escapes are decoded, so a colon inside WHAT (by-path
//! names) is written `\x3a`; more than four fields makes systemd ignore the entry, and we
//! refuse it when it is meant for `/var`. WHAT is a path or `LABEL=`, `UUID=`, `PARTUUID=`,
//! `PARTLABEL=` (one pair of quotes around the value is dropped, as `tag_to_udev_node()`
//! does). A `/var` entry that is not a block device (tmpfs, network, `bind`, `_netdev`) is
//! left to the booted system ([`spec_from_cmdline`] returns `None`).
//!
//! # Finding the device
//!
//! [`resolve_device`] polls (20 ms, doubling to 250 ms) until the timeout: the path itself or
//! udev's `/dev/disk/by-*` link, else `/sys/class/block` with its own superblock (ext4, xfs,
//! btrfs) and GPT readers. So the unit needs no `After=systemd-udev-settle.service`; devices
//! that need userspace to appear (LVM, MD, LUKS) simply have to show up before the timeout
//! (default 30 s, `rd.extmerge.var_timeout=SECONDS`).
//!
//! # Mounting, and the booted system adopting the mount
//!
//! Mounted read-write (unless the options say `ro`) on the canonical device node (`/dev/vdb`,
//! not a by-label link, so `fsck -M` and mountinfo see the real device), FSTYPE given or
//! probed. fstab-only words (`defaults`, `nofail`, `noauto`, `x-*`, …) are dropped as mount(8)
//! does. `switch-root` moves `/sysroot` with its submounts, so the mount becomes `/var`;
//! systemd (mount units are `IgnoreOnIsolate=`) keeps it across the switch, and in the booted
//! system the generated `var.mount` finds `/var` mounted and is simply active. Its
//! `systemd-fsck@` dependency runs `fsck -M`, which skips mounted filesystems: no fsck of
//! `/var` happens at all on this path (ext4 replays its journal on mount).
//!
//! # First boot (Ignition)
//!
//! If `<root>/var` is already a mount point it is used as is ([`VarOutcome::AlreadyMounted`]):
//! on a first boot `ignition-mount.service` has mounted the user's `/var` there, and with
//! `x-initrd.mount` in the options systemd's own `sysroot-var.mount` has. The unit must run
//! after Ignition's disks and mounts (never before `ignition-disks` may format the device).
//! Note the hazard from the Flatcar reference (§4): `ignition-mount` unmounts `/sysroot/var`
//! right before switch-root, so anything still holding files on it (loop devices of images
//! there) makes that unmount fail on a first boot.
//!
//! # Unit integration
//!
//! [`ensure_var`] is the first step of the post-Ignition merge, before discovery, in the
//! same process and on a thread in PID 1's mount namespace (never inside
//! `namespace::in_private_namespace`): the mount must land in the namespace that switch-root
//! moves, so the unit must not have `PrivateMounts=`, `ProtectSystem=` or `MountFlags=`.
//! The pre-Ignition confext stage must not call it: on a first boot `ignition-mount` mounts
//! the user's `/var` later and would stack its mount on ours.
//!
//! ```ini
//! [Unit]
//! After=initrd-setup-root-after-ignition.service ignition-mount.service
//! Before=initrd-parse-etc.service initrd.target
//! # no udev-settle: resolve_device polls /dev and sysfs itself
//! [Service]
//! Type=oneshot
//! # above rd.extmerge.var_timeout (default 30 s) plus the merge itself
//! TimeoutStartSec=120
//! ```

mod device;
mod mount;
mod rootcfg;
mod spec;
mod unit;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, StatxFlags};

pub use device::{probe_path, probe_superblock, resolve_device, FsInfo, SB_PROBE_LEN};
pub use mount::MountPlan;
pub use rootcfg::{var_from_root, RootVar};
pub use spec::{spec_from_cmdline, var_from_cmdline, CmdlineVar, VarSpec, What};
pub use unit::{MountSettings, Setting};

use crate::initrd::cmdline::{get, Param};
use crate::kernel::root::{Found, Root};

/// Default wait for the `/var` device.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait accepted from the command line; a longer one is clamped (no boot hangs).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const TIMEOUT_KEY: &str = "rd.extmerge.var_timeout";

/// What [`ensure_var`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VarOutcome {
    /// `<root>/var` was already a mount point; holds that mount's source (`/dev/vdb`).
    AlreadyMounted(PathBuf),
    /// We mounted `device` (canonical node) as `fstype` at `<root>/var`.
    Mounted {
        /// The device node mounted.
        device: PathBuf,
        /// The filesystem type used.
        fstype: String,
    },
    /// No spec: nothing to do.
    NotRequested,
}

/// The device wait from `rd.extmerge.var_timeout=SECONDS` (initrd only; decimals and an `s` or
/// `ms` suffix allowed), else 30 s. A bad value is logged and the default used.
pub fn timeout_from_cmdline(params: &[Param], in_initrd: bool) -> Duration {
    if !in_initrd {
        return DEFAULT_TIMEOUT;
    }
    let Some(value) = get(params, TIMEOUT_KEY, false) else {
        return DEFAULT_TIMEOUT;
    };
    match value.and_then(parse_seconds) {
        Some(t) if t > MAX_TIMEOUT => {
            tracing::warn!(
                "{TIMEOUT_KEY}={} is above {MAX_TIMEOUT:?}; using that",
                value.unwrap_or("")
            );
            MAX_TIMEOUT
        }
        Some(t) => t,
        None => {
            tracing::warn!(
                "ignoring {TIMEOUT_KEY}={}: not a number of seconds; using {DEFAULT_TIMEOUT:?}",
                value.unwrap_or("")
            );
            DEFAULT_TIMEOUT
        }
    }
}

/// `30`, `2.5`, `30s`, `500ms` → duration; negatives, NaN and garbage → `None`.
fn parse_seconds(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix("ms") {
        Some(n) => (n, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    // Plain decimal notation only: f64 parsing would also take "inf" and "1e9".
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let secs: f64 = number.parse().ok()?;
    // Out-of-range values saturate; the caller clamps them to MAX_TIMEOUT.
    Some(Duration::try_from_secs_f64(secs * scale).unwrap_or(Duration::MAX))
}

/// Mount `spec` at `<root>/var` unless that already is a mount point; `None` does nothing.
///
/// Waits up to `timeout` for the device. The options are checked before waiting, so a typo
/// fails at once. `/var` is resolved inside the root (a symlink there, absolute or with `..`,
/// is followed as the booted system will see it, never out of the root) and created (0755)
/// if missing; the mount is attached to that directory by fd.
pub fn ensure_var(root: &Path, spec: Option<&VarSpec>, timeout: Duration) -> Result<VarOutcome> {
    let Some(spec) = spec else {
        return Ok(VarOutcome::NotRequested);
    };
    let plan = MountPlan::from_options(spec.options.as_deref().unwrap_or(""))
        .map_err(|e| anyhow::anyhow!("{}: {e}", spec.source_param))?;
    let root = Root::open(root)?;
    let target = mount_point(&root)?;
    let shown = root.show(&target.in_root);

    let mounted = crate::kernel::mounts::is_mount_point_fd(target.fd.as_fd())
        .with_context(|| format!("statx {}", shown.display()))?;
    if mounted {
        let source = mount_source(&target, &shown)?;
        tracing::info!(
            target = %shown.display(),
            source = %source.display(),
            spec = %spec.source_param,
            "{} is already a mount point (Ignition or x-initrd.mount?); using it as is for {}.",
            shown.display(),
            spec.source_param
        );
        return Ok(VarOutcome::AlreadyMounted(source));
    }

    let device = resolve_device(&spec.what, timeout)
        .with_context(|| format!("finding the /var device of {}", spec.source_param))?;
    let fstype = match &spec.fstype {
        Some(t) => t.clone(),
        None => match probe_path(&device)? {
            Some(fs) => fs.fstype.to_string(),
            None => bail!(
                "{}: no ext4, xfs or btrfs superblock on {}; give FSTYPE explicitly",
                spec.source_param,
                device.display()
            ),
        },
    };
    mount::mount_device(&device, &fstype, &plan, target.fd.as_fd(), &shown)
        .with_context(|| format!("mounting /var from {}", spec.source_param))?;
    tracing::info!(
        device = %device.display(),
        fstype = %fstype,
        target = %shown.display(),
        spec = %spec.source_param,
        "Mounted {} ({fstype}) at {} for {}.",
        device.display(),
        shown.display(),
        spec.source_param
    );
    Ok(VarOutcome::Mounted { device, fstype })
}

/// `/var` inside the root: resolved there (links followed inside the root), created 0755 if
/// missing, and never the root directory itself (a `var -> /` link would cover the whole tree).
fn mount_point(root: &Root) -> Result<Found> {
    let var = Path::new("/var");
    let found = root
        .mkdir_all(var, 0o755)
        .with_context(|| format!("preparing the mount point {}", root.show(var).display()))?;
    if found.in_root == Path::new("/") {
        bail!(
            "{} resolves to the root directory {} itself; refusing to mount /var over it",
            root.show(var).display(),
            root.path().display()
        );
    }
    Ok(found)
}

/// The source (device) of the mount on top of the directory `target`, found by mount ID.
fn mount_source(target: &Found, shown: &Path) -> Result<PathBuf> {
    let st = rustix::fs::statx(&target.fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .map_err(std::io::Error::from)
        .with_context(|| format!("statx {}", shown.display()))?;
    let table = crate::kernel::mounts::mountinfo()?;
    Ok(table
        .iter()
        .find(|m| m.mount_id == st.stx_mnt_id)
        .map(|m| PathBuf::from(&m.source))
        // Kernels without STATX_MNT_ID (< 5.8): the target itself still says where it is.
        .unwrap_or_else(|| shown.to_path_buf()))
}
