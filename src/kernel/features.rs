//! What the running kernel can do, each probed once: the kernel version, the features gated on
//! it, and the architecture it runs. Every fallback elsewhere asks here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::MoveMountFlags;

/// `(major, minor)` of a kernel release string (`6.12.7-flatcar` → `(6, 12)`).
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `(major, minor)` of the running kernel, read once; `None` if uname's release is unusual.
pub fn kernel_version() -> Option<(u32, u32)> {
    static VERSION: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let uts = rustix::system::uname();
        parse_release(&uts.release().to_string_lossy())
    })
}

/// Whether the kernel is at least `major.minor` (an unknown version counts as new enough: the
/// caller's fallback then catches a refusal).
pub fn at_least(major: u32, minor: u32) -> bool {
    kernel_version().is_none_or(|v| v >= (major, minor))
}

/// The running kernel's architecture in systemd's spelling (`uname_architecture()`: what an
/// extension's `ARCHITECTURE=` is compared with), or the raw machine string if unknown.
pub fn uname_architecture() -> String {
    static ARCH: OnceLock<String> = OnceLock::new();
    ARCH.get_or_init(|| {
        let uts = rustix::system::uname();
        let machine = uts.machine().to_string_lossy();
        crate::decide::arch::from_machine(&machine)
            .map_or_else(|| machine.to_string(), str::to_owned)
    })
    .clone()
}

/// Whether the kernel knows `MOVE_MOUNT_BENEATH` (6.5), probed once.
pub fn beneath_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // move_mount rejects unknown flags with EINVAL before it looks at any path; with
        // the flag known, the empty paths (no *_EMPTY_PATH) fail the lookup with ENOENT.
        let r = rustix::mount::move_mount(CWD, "", CWD, "", MoveMountFlags::MOVE_MOUNT_BENEATH);
        r != Err(Errno::INVAL)
    })
}

/// Whether erofs can be mounted straight from a regular file (6.12). A version gate only: the
/// feature also needs `CONFIG_EROFS_FS_BACKED_BY_FILE`, so callers still fall back to a loop
/// device when the mount fails.
pub fn erofs_file_backed() -> bool {
    at_least(6, 12)
}

/// Set once overlayfs has rejected `lowerdir+` as unknown (6.5–6.7).
static LOWERDIR_PLUS_MISSING: AtomicBool = AtomicBool::new(false);

/// Whether trying overlayfs's `lowerdir+` makes sense (6.8; refused as unknown before, and
/// before 6.5 overlayfs used the VFS "legacy" context, which accepts any key and only fails
/// at create time, so only the version can tell).
pub fn overlay_lowerdir_plus() -> bool {
    !LOWERDIR_PLUS_MISSING.load(Ordering::Relaxed) && at_least(6, 5)
}

/// Remember that overlayfs refused `lowerdir+`.
pub fn overlay_lowerdir_plus_missing() {
    LOWERDIR_PLUS_MISSING.store(true, Ordering::Relaxed);
}

/// Set once overlayfs has refused a layer given as an fd (before 6.13).
static FD_LAYERS_MISSING: AtomicBool = AtomicBool::new(false);

/// Whether overlayfs may take layers as fds (`FSCONFIG_SET_FD`, 6.13).
pub fn overlay_fd_layers() -> bool {
    !FD_LAYERS_MISSING.load(Ordering::Relaxed) && at_least(6, 13)
}

/// Remember that overlayfs refused a layer fd.
pub fn overlay_fd_layers_missing() {
    FD_LAYERS_MISSING.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_and_probes_answer() {
        assert_eq!(parse_release("6.12.7-flatcar"), Some((6, 12)));
        assert_eq!(parse_release("5.15.0"), Some((5, 15)));
        assert_eq!(parse_release("6"), None);
        assert_eq!(parse_release("x"), None);
        assert!(kernel_version().is_some());
        assert!(!uname_architecture().is_empty());
        // Every machine this runs on has 6.5+.
        if rustix::process::geteuid().is_root() {
            assert!(beneath_supported());
        }
    }
}
