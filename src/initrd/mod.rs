//! Initrd policy: the kernel command line (and, later, /var mounting and Flatcar selection).

pub mod cmdline;
pub mod flatcar;
pub mod var;

/// True when this process runs in an initrd (the running system's `/etc/initrd-release` exists).
pub fn running_in_initrd() -> bool {
    std::path::Path::new("/etc/initrd-release").exists()
}

/// The kernel command line: `$SYSTEMD_PROC_CMDLINE` if set (systemd's override, for tests and
/// containers), else /proc/cmdline (empty if /proc is not available).
pub fn kernel_cmdline() -> String {
    std::env::var("SYSTEMD_PROC_CMDLINE")
        .unwrap_or_else(|_| std::fs::read_to_string("/proc/cmdline").unwrap_or_default())
}
