//! Detached overlayfs assembly with the new mount API (fsopen → fsconfig → fsmount).
//!
//! The overlay is never attached here: [`build_detached`] returns the mount fd and the
//! caller attaches it (see [`crate::kernel::mounts::attach`]). Layers are *paths*: fd layers
//! (`FSCONFIG_SET_FD`, Linux 6.13) and detached mounts as layers (6.15) are newer than the
//! 6.12 production kernel, so a layer has to be mounted somewhere the building thread can
//! see — usually a private mount namespace ([`crate::kernel::namespace::in_private_namespace`]).
//!
//! Kernel facts this module is built around (measured on 6.18):
//! * every `FSCONFIG_SET_STRING` value is copied with `strndup_user(value, 256)`, so a value
//!   may hold at most [`FSCONFIG_VALUE_MAX`] = 255 bytes; a longer one fails with a bare
//!   `EINVAL` and no log message. Longer layer paths are passed as `/proc/self/fd/N` of an
//!   `O_PATH` fd instead (the kernel follows the magic link when it resolves the layer);
//! * `lowerdir+` (6.8) appends one layer per call, first = top, no escaping. Older kernels
//!   get one escaped `lowerdir=` string, which the 255-byte limit makes short (and before
//!   6.5, where overlayfs still used the VFS "legacy" context, a `,` in any value is
//!   refused with "VFS: Legacy: Option … contained comma");
//! * overlayfs reports most of its own errors (`failed to resolve '…'`, `missing
//!   'workdir'`) with `pr_err` to the kernel log, not to the fs-context log; only VFS
//!   messages (`Unknown parameter`, `Bad value`) are readable from the context fd. Errors
//!   therefore quote both the context log and new `overlayfs:` lines from `/dev/kmsg`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::decide::mountopts::MountFlags;
use crate::kernel::features;
use crate::kernel::fscontext::FsContext;
use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::MountAttrFlags;

/// overlayfs's `OVL_MAX_STACK`: the most lower layers one overlay may have.
pub const MAX_LOWER_LAYERS: usize = 500;

/// Longest string value `fsconfig(FSCONFIG_SET_STRING)` accepts (256 bytes incl. the NUL).
pub const FSCONFIG_VALUE_MAX: usize = 255;

/// Option keys this module sets itself; passing them as extra options would corrupt the stack.
const RESERVED_KEYS: &[&str] = &[
    "source",
    "lowerdir",
    "lowerdir+",
    "datadir+",
    "upperdir",
    "workdir",
];

/// Everything needed to build one overlay mount.
#[derive(Debug, Clone)]
pub struct OverlaySpec {
    /// Source name shown in mountinfo ("sysext", "confext"); empty leaves the kernel's "none".
    pub source: String,
    /// Lower layers, top (winning) layer first; absolute paths.
    pub lowerdirs: Vec<PathBuf>,
    /// Writable upper layer (mutable mode); requires `workdir` on the same filesystem.
    pub upperdir: Option<PathBuf>,
    /// overlayfs work directory, unique per mount instance.
    pub workdir: Option<PathBuf>,
    /// Extra overlay options, each `key` (a flag) or `key=value`.
    pub options: Vec<String>,
    /// Per-mount attributes given to fsmount (RDONLY, NODEV, NOSUID, NOEXEC, NOATIME, …).
    pub attrs: MountAttrFlags,
    /// Use the pre-6.8 single `lowerdir=` string even if `lowerdir+` works (for tests).
    pub force_legacy_lowerdir: bool,
}

impl OverlaySpec {
    /// A spec with the given source name and layers (top first), no upper, no attributes.
    pub fn new(source: impl Into<String>, lowerdirs: Vec<PathBuf>) -> Self {
        OverlaySpec {
            source: source.into(),
            lowerdirs,
            upperdir: None,
            workdir: None,
            options: Vec::new(),
            attrs: MountAttrFlags::empty(),
            force_legacy_lowerdir: false,
        }
    }
}

/// Backslash-escape `\`, `,` and `:` in one layer path, as `lowerdir=` parsing expects.
pub fn escape_lowerdir(path: &Path) -> OsString {
    let bytes = path.as_os_str().as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if matches!(b, b'\\' | b',' | b':') {
            out.push(b'\\');
        }
        out.push(b);
    }
    OsString::from_vec(out)
}

/// The legacy `lowerdir=` value: escaped layer paths joined with `:`, top layer first.
pub fn legacy_lowerdir<P: AsRef<Path>>(layers: &[P]) -> OsString {
    let mut out = OsString::new();
    for (i, layer) in layers.iter().enumerate() {
        if i > 0 {
            out.push(":");
        }
        out.push(escape_lowerdir(layer.as_ref()));
    }
    out
}

/// Check a spec for mistakes the kernel would report badly or not at all; makes no syscall.
pub fn validate(spec: &OverlaySpec) -> Result<()> {
    let what = describe(spec);
    let n = spec.lowerdirs.len();
    if n == 0 {
        bail!("{what}: no lower layer given; overlayfs needs at least one");
    }
    if n > MAX_LOWER_LAYERS {
        bail!(
            "{what}: {n} lower layers given, but overlayfs allows at most {MAX_LOWER_LAYERS} \
             (OVL_MAX_STACK); merge fewer extensions into this hierarchy"
        );
    }
    if n == 1 && spec.upperdir.is_none() {
        // The kernel's own words: "at least 2 lowerdir are needed while upperdir nonexistent".
        bail!("{what}: a read-only overlay needs at least 2 lower layers, 1 given");
    }
    if spec.upperdir.is_some() != spec.workdir.is_some() {
        bail!("{what}: upperdir and workdir must be given together");
    }
    let dirs = spec
        .lowerdirs
        .iter()
        .chain(&spec.upperdir)
        .chain(&spec.workdir);
    for dir in dirs {
        if !dir.is_absolute() {
            bail!("{what}: layer path {} is not absolute", dir.display());
        }
    }
    if spec.source.len() > FSCONFIG_VALUE_MAX {
        bail!("{what}: source name is longer than {FSCONFIG_VALUE_MAX} bytes");
    }
    for opt in &spec.options {
        let (key, value) = split_option(opt);
        if RESERVED_KEYS.contains(&key) {
            bail!("{what}: option {opt:?} is set from the spec's fields, not as an extra option");
        }
        if crate::decide::mountopts::is_mount_flag_word(key) {
            bail!("{what}: {opt:?} is a per-mount flag: it belongs in the spec's attrs");
        }
        if value.is_some_and(|v| v.len() > FSCONFIG_VALUE_MAX) {
            bail!("{what}: value of option {key:?} is longer than {FSCONFIG_VALUE_MAX} bytes");
        }
    }
    Ok(())
}

/// Build the overlay described by `spec` as a detached mount and return its fd.
///
/// Layer paths are resolved in the calling thread's mount namespace. Nothing is attached
/// anywhere, so a failure leaves no trace; the error names the failing parameter and
/// quotes the kernel's messages.
pub fn build_detached(spec: &OverlaySpec) -> Result<OwnedFd> {
    validate(spec)?;
    if !spec.force_legacy_lowerdir && features::overlay_lowerdir_plus() {
        match build(spec, LowerMode::Append)? {
            Some(fd) => return Ok(fd),
            None => {
                // Kernel 6.5–6.7: new-API overlay without `lowerdir+`. Remember it so later
                // builds go straight to the legacy string.
                features::overlay_lowerdir_plus_missing();
                tracing::debug!("kernel lacks overlay lowerdir+, using a single lowerdir=");
            }
        }
    }
    match build(spec, LowerMode::Legacy)? {
        Some(fd) => Ok(fd),
        None => bail!(
            "{}: legacy lowerdir= was rejected as unknown",
            describe(spec)
        ),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LowerMode {
    /// One `lowerdir+` per layer (6.8+).
    Append,
    /// One escaped `lowerdir=` string.
    Legacy,
}

/// The fd number of a `/proc/thread-self/fd/N` (or `/proc/self/fd/N`) path.
fn magic_fd(value: &OsStr) -> Option<std::os::fd::RawFd> {
    let s = value.to_str()?;
    s.strip_prefix("/proc/thread-self/fd/")
        .or_else(|| s.strip_prefix("/proc/self/fd/"))?
        .parse()
        .ok()
}

/// The path a `/proc/thread-self/fd/N` layer value stands for, as a string the kernel can
/// resolve itself: the directory's real path (no symlinks: it is what the fd resolved to inside
/// the root) when it fits an fsconfig value and still names the same inode; else the magic link.
///
/// Before 6.13 overlayfs takes layers only as strings and shows them in the mount table as
/// given: a magic link there would be meaningless to every other process (systemd's remount of
/// the hierarchy, the booted system's status and refresh, mount(8)). The kernel resolves the
/// path again a moment later; only a process that may rename the directories above an
/// extension (root) could race that, and a race only changes what is merged, never where.
fn real_path_value(value: &OsStr) -> OsString {
    let Some(fd) = magic_fd(value) else {
        return value.to_owned();
    };
    // SAFETY: the caller keeps the fd behind its magic link open until the overlay is created.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let real = match rustix::fs::readlinkat(rustix::fs::CWD, value, Vec::new()) {
        Ok(p) => OsString::from_vec(p.into_bytes()),
        Err(_) => return value.to_owned(),
    };
    let same = |p: &OsStr| -> bool {
        let (Ok(a), Ok(b)) = (rustix::fs::stat(p), rustix::fs::fstat(fd)) else {
            return false;
        };
        (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    };
    if real.as_bytes().first() == Some(&b'/') && real.len() <= FSCONFIG_VALUE_MAX && same(&real) {
        real
    } else {
        tracing::debug!(
            "overlay layer {} ({}) passed as its fd link: its path cannot be used",
            value.to_string_lossy(),
            real.to_string_lossy()
        );
        value.to_owned()
    }
}

/// Set a layer key. A `/proc/thread-self/fd/N` value (a directory resolved inside the root) is
/// handed over as the fd itself where overlayfs takes fds (Linux 6.13): the kernel then records
/// the layer's real path, which the mount table shows; before 6.13 as its real path
/// ([`real_path_value`]).
fn set_layer(ctx: &FsContext, key: &str, value: &OsStr) -> Result<(), Errno> {
    if let Some(fd) = magic_fd(value).filter(|_| features::overlay_fd_layers()) {
        // SAFETY: the caller keeps the fd behind its magic link open until the overlay is
        // created (that is what makes the link resolvable at all).
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        match ctx.set_fd(key, fd) {
            Ok(()) => return Ok(()),
            // EINVAL, "Bad value": this overlayfs takes only strings; drop its log line.
            // EBADF: fsconfig(FSCONFIG_SET_FD) of this kernel refuses O_PATH fds (6.12 fget()s
            // them) before overlayfs sees the key: the string it is, then.
            Err(Errno::INVAL | Errno::BADF) => {
                let _ = ctx.messages();
                features::overlay_fd_layers_missing();
            }
            Err(e) => return Err(e),
        }
    }
    ctx.try_set_string(key, &real_path_value(value))
}

/// One build attempt; `Ok(None)` means "`lowerdir+` is unknown, retry with the legacy string".
fn build(spec: &OverlaySpec, mode: LowerMode) -> Result<Option<OwnedFd>> {
    let ctx = FsContext::open("overlay", describe(spec))?;
    // O_PATH fds standing in for over-long paths; they must outlive CMD_CREATE because
    // kernels before 6.5 resolve layers only then.
    let mut keep = Vec::new();
    if !spec.source.is_empty() {
        ctx.set_string("source", OsStr::new(&spec.source))?;
    }
    match mode {
        LowerMode::Append => {
            let n = spec.lowerdirs.len();
            for (i, layer) in spec.lowerdirs.iter().enumerate() {
                let value = path_value(layer, &mut keep)?;
                match set_layer(&ctx, "lowerdir+", &value) {
                    Ok(()) => {}
                    Err(errno) => {
                        let msgs = ctx.messages();
                        if i == 0
                            && errno == Errno::INVAL
                            && msgs.iter().any(|m| m.contains("Unknown parameter"))
                        {
                            return Ok(None);
                        }
                        let step = format!(
                            "fsconfig lowerdir+={} (layer {} of {n}, 1 = top)",
                            layer.display(),
                            i + 1
                        );
                        return Err(ctx.error_with(&step, errno, msgs));
                    }
                }
            }
        }
        LowerMode::Legacy => {
            let value = legacy_value(spec, &mut keep)?;
            ctx.set_string("lowerdir", &value)?;
        }
    }
    if let (Some(upper), Some(work)) = (&spec.upperdir, &spec.workdir) {
        for (key, dir) in [("upperdir", upper), ("workdir", work)] {
            let value = path_value(dir, &mut keep)?;
            set_layer(&ctx, key, &value).map_err(|errno| {
                let step = format!("fsconfig {key}={}", dir.display());
                ctx.error(&step, errno)
            })?;
        }
    }
    for opt in &spec.options {
        match split_option(opt) {
            ("", _) => {} // tolerate "a,,b" style empty entries
            (key, None) => ctx.set_flag(key)?,
            (key, Some(value)) => ctx.set_string(key, OsStr::new(value))?,
        }
    }
    let mnt = ctx.mount(spec.attrs)?;
    drop(keep);
    Ok(Some(mnt))
}

/// The `lowerdir=` value for the legacy mode, falling back to fd paths when too long.
fn legacy_value(spec: &OverlaySpec, keep: &mut Vec<OwnedFd>) -> Result<OsString> {
    let real: Vec<PathBuf> = spec
        .lowerdirs
        .iter()
        .map(|l| PathBuf::from(real_path_value(l.as_os_str())))
        .collect();
    let plain = legacy_lowerdir(&real);
    if plain.len() <= FSCONFIG_VALUE_MAX {
        return Ok(plain);
    }
    let mut fd_paths = Vec::with_capacity(spec.lowerdirs.len());
    for layer in &spec.lowerdirs {
        fd_paths.push(PathBuf::from(fd_path(layer, keep)?));
    }
    let short = legacy_lowerdir(&fd_paths);
    if short.len() > FSCONFIG_VALUE_MAX {
        bail!(
            "{}: {} layers need a {}-byte lowerdir= string ({} bytes even as /proc/self/fd/N), \
             but fsconfig takes at most {FSCONFIG_VALUE_MAX} bytes per value; without \
             lowerdir+ (Linux 6.8) all layers must fit in one value, so merge fewer extensions",
            describe(spec),
            spec.lowerdirs.len(),
            plain.len(),
            short.len()
        );
    }
    Ok(short)
}

/// A layer path as an fsconfig string: itself if short enough, else an fd magic link.
fn path_value(path: &Path, keep: &mut Vec<OwnedFd>) -> Result<OsString> {
    if path.as_os_str().len() <= FSCONFIG_VALUE_MAX {
        return Ok(path.as_os_str().to_owned());
    }
    fd_path(path, keep)
}

/// Open `path` with O_PATH and return `/proc/self/fd/N` for it (fd kept in `keep`).
fn fd_path(path: &Path, keep: &mut Vec<OwnedFd>) -> Result<OsString> {
    let fd = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .with_context(|| format!("opening overlay layer {} (O_PATH)", path.display()))?;
    let value = OsString::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    keep.push(fd);
    Ok(value)
}

/// The mount attributes for per-mount flags decided as `mount(2)` MS_* bits.
pub fn mount_attrs(flags: MountFlags, noatime: bool) -> MountAttrFlags {
    let mut a = MountAttrFlags::empty();
    for (f, attr) in [
        (MountFlags::RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
        (MountFlags::NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
        (MountFlags::NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
        (MountFlags::NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
        (
            MountFlags::NODIRATIME,
            MountAttrFlags::MOUNT_ATTR_NODIRATIME,
        ),
        (
            MountFlags::NOSYMFOLLOW,
            MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW,
        ),
    ] {
        if flags.contains(f) {
            a |= attr;
        }
    }
    if noatime || flags.contains(MountFlags::NOATIME) {
        a |= MountAttrFlags::MOUNT_ATTR_NOATIME;
    } else if flags.contains(MountFlags::STRICTATIME) {
        a |= MountAttrFlags::MOUNT_ATTR_STRICTATIME;
    }
    a
}

/// Split `key=value` at the first `=`; a bare `key` is a flag.
fn split_option(opt: &str) -> (&str, Option<&str>) {
    match opt.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    }
}

/// Human name of the overlay for error messages.
fn describe(spec: &OverlaySpec) -> String {
    if spec.source.is_empty() {
        "overlay".to_string()
    } else {
        format!("overlay '{}'", spec.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_separators_and_backslash() {
        assert_eq!(
            escape_lowerdir(Path::new("/a,b:c\\d")),
            OsString::from("/a\\,b\\:c\\\\d")
        );
        assert_eq!(
            legacy_lowerdir(&["/x", "/y:z"]),
            OsString::from("/x:/y\\:z")
        );
    }

    #[test]
    fn validate_rejects_bad_specs() {
        let mut spec = OverlaySpec::new("sysext", vec![PathBuf::from("/a")]);
        assert!(validate(&spec).is_err(), "one layer without upper");
        spec.lowerdirs.push(PathBuf::from("/b"));
        assert!(validate(&spec).is_ok());
        spec.upperdir = Some(PathBuf::from("/u"));
        assert!(validate(&spec).is_err());
        spec.workdir = Some(PathBuf::from("/w"));
        assert!(validate(&spec).is_ok());
        spec.options = vec!["lowerdir=/x".into()];
        assert!(validate(&spec).is_err());
        spec.options = vec!["redirect_dir=on".into(), "noatime".into()];
        assert!(validate(&spec).is_err());
        spec.options = vec!["redirect_dir=on".into()];
        assert!(validate(&spec).is_ok());
        spec.lowerdirs = vec![PathBuf::from("relative"), PathBuf::from("/b")];
        assert!(validate(&spec).is_err());
        spec.lowerdirs.clear();
        assert!(validate(&spec).is_err());
    }

    #[test]
    fn attrs_translate_legacy_flags() {
        let a = mount_attrs(
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOEXEC,
            true,
        );
        assert!(a.contains(MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV));
        assert!(a.contains(MountAttrFlags::MOUNT_ATTR_NOEXEC | MountAttrFlags::MOUNT_ATTR_NOATIME));
        assert!(!a.contains(MountAttrFlags::MOUNT_ATTR_NOSUID));
    }
}
