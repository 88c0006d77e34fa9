//! Size caps for everything extmerge reads that someone else wrote. Each is far above what a
//! legitimate file needs and far below what would hurt a boot; exceeding one is an error that
//! names the file and the cap.

/// os-release, initrd-release, extension-release.
pub const RELEASE_FILE: u64 = 64 << 10;
/// `{sysext,confext}.conf` and their drop-ins.
pub const CONFIG_FILE: u64 = 1 << 20;
/// The root's `etc/fstab` (read for a `/var` entry in the initrd).
pub const FSTAB: u64 = 1 << 20;
/// A unit file or drop-in (`var.mount`, `var.mount.d/*.conf`); systemd's own line limit is 1 MiB.
pub const UNIT_FILE: u64 = 1 << 20;
/// Flatcar's `enabled-sysext.conf` and OEM release files.
pub const FLATCAR_FILE: u64 = 1 << 20;
/// The kernel command line (`/proc/cmdline` or `$SYSTEMD_PROC_CMDLINE`).
pub const CMDLINE: u64 = 64 << 10;
/// Our state record and its run-time copy.
pub const STATE_FILE: u64 = 32 << 20;
/// One file of a meta directory (`dev`, `work_dir`, `extensions`, `origin`).
pub const META_FILE: u64 = 1 << 20;
/// A `.roothash`/`.usrhash` sidecar (one line of hex).
pub const ROOTHASH_FILE: u64 = 4 << 10;
/// A `.p7s` signature (systemd's limit for the signature partition as well).
pub const SIGNATURE_FILE: u64 = 4 << 20;
/// A PEM certificate in `verity.d`.
pub const CERTIFICATE: u64 = 1 << 20;
/// The root's `systemd-sysext` executable, searched for the skip message (a dynamically linked
/// one is ~100 KiB, a static one a few MiB).
pub const SYSTEMD_BINARY: u64 = 64 << 20;
/// `check --os-release=FILE`.
pub const OS_RELEASE_ARG: u64 = RELEASE_FILE;
