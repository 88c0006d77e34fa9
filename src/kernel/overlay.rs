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
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags, SeekFrom};
use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

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
    if !spec.force_legacy_lowerdir && lowerdir_plus_usable() {
        match build(spec, LowerMode::Append)? {
            Some(fd) => return Ok(fd),
            None => {
                // Kernel 6.5–6.7: new-API overlay without `lowerdir+`. Remember it so later
                // builds go straight to the legacy string.
                LOWERDIR_PLUS_MISSING.store(true, Ordering::Relaxed);
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

/// Set once overlayfs has rejected `lowerdir+` as unknown, so later builds skip the try.
static LOWERDIR_PLUS_MISSING: AtomicBool = AtomicBool::new(false);

/// Set once overlayfs has refused a layer given as an fd (before Linux 6.13).
static FD_LAYERS_MISSING: AtomicBool = AtomicBool::new(false);

/// The fd number of a `/proc/thread-self/fd/N` (or `/proc/self/fd/N`) path.
fn magic_fd(value: &OsStr) -> Option<std::os::fd::RawFd> {
    let s = value.to_str()?;
    s.strip_prefix("/proc/thread-self/fd/")
        .or_else(|| s.strip_prefix("/proc/self/fd/"))?
        .parse()
        .ok()
}

/// Whether trying `lowerdir+` makes sense on this kernel.
fn lowerdir_plus_usable() -> bool {
    if LOWERDIR_PLUS_MISSING.load(Ordering::Relaxed) {
        return false;
    }
    // Before 6.5 overlayfs used the VFS "legacy" fs_context, which accepts any key at
    // fsconfig time and only fails at CMD_CREATE, so the "Unknown parameter" detection
    // below would never trigger there. A backport of lowerdir+ to < 6.5 is not plausible
    // (it needs the 6.5 parameter parser), so the version check is safe.
    kernel_version().is_none_or(|v| v >= (6, 5))
}

/// (major, minor) of the running kernel, from uname's release string.
fn kernel_version() -> Option<(u32, u32)> {
    let uts = rustix::system::uname();
    let release = uts.release().to_str().ok()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
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
                match ctx.set_layer("lowerdir+", &value) {
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
                        return Err(ctx.error(&step, errno, msgs));
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
            ctx.set_layer(key, &value).map_err(|errno| {
                let step = format!("fsconfig {key}={}", dir.display());
                ctx.error(&step, errno, ctx.messages())
            })?;
        }
    }
    let (attrs, fs_options) = apply_mount_flag_words(&spec.options, spec.attrs);
    for opt in fs_options {
        match split_option(opt) {
            ("", _) => {} // tolerate "a,,b" style empty entries
            (key, None) => ctx.set_flag(key)?,
            (key, Some(value)) => ctx.set_string(key, OsStr::new(value))?,
        }
    }
    rustix::mount::fsconfig_create(&ctx.fd)
        .map_err(|errno| ctx.error("fsconfig CMD_CREATE", errno, ctx.messages()))?;
    let mnt = rustix::mount::fsmount(&ctx.fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|errno| ctx.error("fsmount", errno, ctx.messages()))?;
    // Non-fatal notes (e.g. "w overlay: …") would otherwise be lost with the context fd.
    for msg in ctx.messages() {
        tracing::debug!(overlay = %ctx.what, "kernel: {msg}");
    }
    drop(keep);
    Ok(Some(mnt))
}

/// The `lowerdir=` value for the legacy mode, falling back to fd paths when too long.
fn legacy_value(spec: &OverlaySpec, keep: &mut Vec<OwnedFd>) -> Result<OsString> {
    let plain = legacy_lowerdir(&spec.lowerdirs);
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

/// Move per-mount flag words (`noatime`, `nodev`, `ro`, …) from `options` into `attrs`.
///
/// Like systemd's `mount_option_mangle`: these are VFS mount attributes, which overlayfs's
/// fsconfig parser rejects as "Unknown parameter"; everything else is returned unchanged.
pub fn apply_mount_flag_words(
    options: &[String],
    mut attrs: MountAttrFlags,
) -> (MountAttrFlags, Vec<&str>) {
    let mut rest = Vec::new();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MountAttrFlags::MOUNT_ATTR_RDONLY, MountAttrFlags::empty()),
            "rw" => (MountAttrFlags::empty(), MountAttrFlags::MOUNT_ATTR_RDONLY),
            "nodev" => (MountAttrFlags::MOUNT_ATTR_NODEV, MountAttrFlags::empty()),
            "dev" => (MountAttrFlags::empty(), MountAttrFlags::MOUNT_ATTR_NODEV),
            "nosuid" => (MountAttrFlags::MOUNT_ATTR_NOSUID, MountAttrFlags::empty()),
            "suid" => (MountAttrFlags::empty(), MountAttrFlags::MOUNT_ATTR_NOSUID),
            "noexec" => (MountAttrFlags::MOUNT_ATTR_NOEXEC, MountAttrFlags::empty()),
            "exec" => (MountAttrFlags::empty(), MountAttrFlags::MOUNT_ATTR_NOEXEC),
            "nosymfollow" => (
                MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW,
                MountAttrFlags::empty(),
            ),
            "symfollow" => (
                MountAttrFlags::empty(),
                MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW,
            ),
            "nodiratime" => (
                MountAttrFlags::MOUNT_ATTR_NODIRATIME,
                MountAttrFlags::empty(),
            ),
            "diratime" => (
                MountAttrFlags::empty(),
                MountAttrFlags::MOUNT_ATTR_NODIRATIME,
            ),
            // The atime modes are an enum inside MOUNT_ATTR__ATIME (RELATIME is 0).
            "noatime" => (
                MountAttrFlags::MOUNT_ATTR_NOATIME,
                MountAttrFlags::MOUNT_ATTR__ATIME,
            ),
            "relatime" => (
                MountAttrFlags::MOUNT_ATTR_RELATIME,
                MountAttrFlags::MOUNT_ATTR__ATIME,
            ),
            "strictatime" => (
                MountAttrFlags::MOUNT_ATTR_STRICTATIME,
                MountAttrFlags::MOUNT_ATTR__ATIME,
            ),
            other => {
                rest.push(other);
                continue;
            }
        };
        attrs = (attrs - clear) | set;
    }
    (attrs, rest)
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

/// An fs-context fd plus a kernel-log cursor, for error messages with the kernel's words.
struct FsContext {
    fd: OwnedFd,
    kmsg: KmsgCursor,
    what: String,
}

impl FsContext {
    fn open(fstype: &str, what: String) -> Result<Self> {
        // The cursor is positioned before the first syscall so it only sees our messages.
        let kmsg = KmsgCursor::new();
        let fd = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(io::Error::from)
            .with_context(|| format!("{what}: fsopen(\"{fstype}\") (needs CAP_SYS_ADMIN)"))?;
        Ok(FsContext { fd, kmsg, what })
    }

    /// Set a layer key. A `/proc/thread-self/fd/N` value (a directory resolved inside the root)
    /// is handed over as the fd itself where overlayfs takes fds (Linux 6.13): the kernel then
    /// records the layer's real path, which the mount table shows; before 6.13 the magic link is
    /// the value (the kernel follows it to exactly that directory) and the table shows it as is.
    fn set_layer(&self, key: &str, value: &OsStr) -> Result<(), Errno> {
        if let Some(fd) = magic_fd(value).filter(|_| !FD_LAYERS_MISSING.load(Ordering::Relaxed)) {
            // SAFETY: the caller keeps the fd behind its magic link open until the overlay is
            // created (that is what makes the link resolvable at all).
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            match rustix::mount::fsconfig_set_fd(&self.fd, key, fd) {
                Ok(()) => return Ok(()),
                // EINVAL, "Bad value": this overlayfs takes only strings; drop its log line.
                // EBADF: fsconfig(FSCONFIG_SET_FD) of this kernel refuses O_PATH fds (6.12
                // fget()s them), before overlayfs sees the key: the string it is, then.
                Err(Errno::INVAL | Errno::BADF) => {
                    let _ = self.messages();
                    FD_LAYERS_MISSING.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        rustix::mount::fsconfig_set_string(&self.fd, key, value)
    }

    fn set_string(&self, key: &str, value: &OsStr) -> Result<()> {
        rustix::mount::fsconfig_set_string(&self.fd, key, value).map_err(|errno| {
            let step = format!("fsconfig {key}={}", value.to_string_lossy());
            self.error(&step, errno, self.messages())
        })
    }

    fn set_flag(&self, key: &str) -> Result<()> {
        rustix::mount::fsconfig_set_flag(&self.fd, key)
            .map_err(|errno| self.error(&format!("fsconfig {key}"), errno, self.messages()))
    }

    /// Drain the fs-context log: one message per read() until ENODATA.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        // The log holds at most 8 entries; the bound only guards against a kernel bug.
        for _ in 0..64 {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(n) if n > 0 => {
                    out.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
                }
                _ => break,
            }
        }
        out
    }

    fn error(&self, step: &str, errno: Errno, mut msgs: Vec<String>) -> anyhow::Error {
        msgs.extend(self.kmsg.overlay_lines());
        let kernel = if msgs.is_empty() {
            "the kernel logged no reason".to_string()
        } else {
            let lines: Vec<String> = msgs
                .iter()
                .map(|m| crate::kernel::fscontext::humanize_log_line(m))
                .collect();
            format!("kernel: {}", lines.join("; "))
        };
        anyhow::anyhow!(
            "{}: {step} failed: {}; {kernel}",
            self.what,
            io::Error::from(errno)
        )
    }
}

/// A read position at the end of `/dev/kmsg`, to pick up overlayfs `pr_err` lines.
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

    /// New kernel-log records since the cursor was made that come from overlayfs.
    fn overlay_lines(&self) -> Vec<String> {
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
                        if msg.starts_with("overlayfs:") || msg.starts_with("overlay:") {
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
        assert!(validate(&spec).is_ok());
        spec.lowerdirs = vec![PathBuf::from("relative"), PathBuf::from("/b")];
        assert!(validate(&spec).is_err());
        spec.lowerdirs.clear();
        assert!(validate(&spec).is_err());
    }

    #[test]
    fn mount_flag_words_become_attrs() {
        let opts: Vec<String> = ["noatime", "redirect_dir=on", "nodev", "rw", "metacopy=off"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (attrs, rest) = apply_mount_flag_words(&opts, MountAttrFlags::MOUNT_ATTR_RDONLY);
        assert_eq!(
            attrs,
            MountAttrFlags::MOUNT_ATTR_NOATIME | MountAttrFlags::MOUNT_ATTR_NODEV
        );
        assert_eq!(rest, vec!["redirect_dir=on", "metacopy=off"]);
    }

    #[test]
    fn kernel_version_parses() {
        assert!(kernel_version().is_some_and(|v| v >= (3, 0)));
    }
}
