//! The imperative shell of the Flatcar selection: [`gather`] reads the root, [`apply`] changes it.
//!
//! Everything goes through the root handle: paths are resolved inside the root (absolute
//! symlink targets and `..` included), reads are bounded, and what is changed (a link, a moved
//! image, a deleted migration entry) is addressed as a name in a directory fd, so its last
//! component is never followed.

use super::{
    bad_name, enabled, flatcar_image, oem_flag, oem_id, oem_images, show, Action, Entry, Inputs,
    CLOUDINIT_WANTS, DEV_NULL, EXTENSIONS, OEM_LISTS, OEM_RELEASE, OS_RELEASE, USER_CONF,
    VENDOR_CONF,
};
use crate::gather::discover::list_dir;
use crate::kernel::root::{ChaseError, Root};
use crate::limits;
use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Read one of Flatcar's small text inputs (at most [`limits::FLATCAR_FILE`]); `None` if absent.
fn read_input(root: &Root, path: &str) -> Result<Option<Vec<u8>>> {
    root.read_optional(Path::new(path), limits::FLATCAR_FILE)
}

/// `test -e` inside the root: a dangling link, a loop or a file where a directory should be
/// mean "does not exist"; any other error is one.
fn exists(root: &Root, path: &Path) -> Result<bool> {
    match root.resolve(path) {
        Ok(_) => Ok(true),
        Err(
            ChaseError::NotFound { .. }
            | ChaseError::NotADirectory { .. }
            | ChaseError::TooManyLinks { .. },
        ) => Ok(false),
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

/// The text of the symlink at an in-root path (`None` if it is absent or not a symlink).
fn read_symlink(root: &Root, path: &Path) -> Result<Option<PathBuf>> {
    let found = match root.resolve_nofollow(path) {
        Ok(f) => f,
        Err(
            ChaseError::NotFound { .. }
            | ChaseError::NotADirectory { .. }
            | ChaseError::TooManyLinks { .. },
        ) => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    if found.file_type() != FileType::Symlink {
        return Ok(None);
    }
    let target = rustix::fs::readlinkat(&found.fd, "", Vec::new())
        .map_err(io::Error::from)
        .with_context(|| format!("reading link {}", root.show(path).display()))?;
    Ok(Some(PathBuf::from(OsStr::from_bytes(target.as_bytes()))))
}

/// Read everything [`plan`](super::plan) needs from the tree (e.g. /sysroot), inside the root.
pub fn gather(root: &Root) -> Result<Inputs> {
    let bytes = root
        .read_optional(Path::new(OS_RELEASE), limits::RELEASE_FILE)?
        .with_context(|| format!("{} has no {OS_RELEASE}", root.path().display()))?;
    let os_text = String::from_utf8_lossy(&bytes);
    let Some(version) = image_version(&os_text) else {
        bail!(
            "{OS_RELEASE} in {} has neither VERSION= nor VERSION_ID=",
            root.path().display()
        );
    };
    gather_version(root, version, &os_text)
}

/// The version Flatcar names its images by: os-release `VERSION=`, else `VERSION_ID=`.
pub fn image_version(os_release_text: &str) -> Option<String> {
    let (os, _) = crate::decide::release::parse_env(os_release_text);
    ["VERSION", "VERSION_ID"]
        .iter()
        .find_map(|k| os.get(*k).filter(|v| !v.is_empty()))
        .cloned()
}

/// [`gather_version`] for a caller holding the root's path: opens the root handle first.
pub fn gather_for(root: &Path, version: String, os_release_text: &str) -> Result<Inputs> {
    gather_version(&Root::open(root)?, version, os_release_text)
}

/// [`gather`] for the images of `version` (e.g. the version an update is about to install),
/// with the rest of `os_release_text` (the board) taken as is.
pub fn gather_version(root: &Root, version: String, os_release_text: &str) -> Result<Inputs> {
    let (os, _) = crate::decide::release::parse_env(os_release_text);
    let oem_release = read_input(root, OEM_RELEASE)?;
    let mut inputs = Inputs {
        version,
        board: os.get("FLATCAR_BOARD").cloned(),
        vendor_conf: read_input(root, VENDOR_CONF)?.unwrap_or_default(),
        user_conf: read_input(root, USER_CONF)?.unwrap_or_default(),
        oem_id: oem_release.and_then(|b| oem_id(&String::from_utf8_lossy(&b))),
        ..Inputs::default()
    };
    let mut candidates = Vec::new();
    if let Some(id) = inputs.oem_id.clone().filter(|id| bad_name(id).is_none()) {
        inputs.oem_active = exists(root, &oem_flag("active", &id))?;
        inputs.oem_migrate = exists(root, &oem_flag("migrate", &id))?;
        if inputs.oem_migrate {
            inputs.oem_migrate_list = read_input(root, &format!("{OEM_LISTS}/{id}"))?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            inputs.cloudinit_wants = read_symlink(root, Path::new(CLOUDINIT_WANTS))?;
        }
        candidates.extend(oem_images(&id, &inputs.version));
    }
    for name in enabled(&inputs.vendor_conf, &inputs.user_conf).0 {
        candidates.push(flatcar_image(&name, &inputs.version));
    }
    for c in candidates {
        if exists(root, &c)? {
            inputs.present.insert(c);
        }
    }
    inputs.links = read_links(root)?;
    Ok(inputs)
}

/// The `flatcar-*.raw` / `oem-*.raw` entries of /etc/extensions.
fn read_links(root: &Root) -> Result<BTreeMap<String, Entry>> {
    let mut links = BTreeMap::new();
    let dir = match root.resolve(Path::new(EXTENSIONS)) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(links),
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    let names =
        list_dir(&dir).with_context(|| format!("listing {}", root.show(&dir.in_root).display()))?;
    for name in names {
        let Some(file) = name.to_str() else {
            continue;
        };
        if !(file.starts_with("flatcar-") || file.starts_with("oem-")) || !file.ends_with(".raw") {
            continue;
        }
        let path = Path::new(EXTENSIONS).join(file);
        let entry = match read_symlink(root, &path)? {
            Some(target) => {
                // Absolute targets are paths of the booted system: resolved inside the root.
                let resolved_file = match root.resolve(&path) {
                    Ok(f) if f.file_type() == FileType::RegularFile => Some(f.in_root),
                    _ => None,
                };
                Entry::Symlink {
                    target,
                    resolved_file,
                }
            }
            None => Entry::Other,
        };
        links.insert(file.to_owned(), entry);
    }
    Ok(links)
}

/// A name in a directory of the root: what [`apply`] changes, addressed by a directory fd so
/// that the name itself is never followed.
pub(super) struct Slot {
    /// The directory, open for `*at()` calls.
    dir: OwnedFd,
    /// The entry's name in it.
    name: OsString,
    /// The action's in-root path, for messages.
    shown: PathBuf,
}

impl Slot {
    /// The slot for the in-root `path`, its parent resolved inside the root (created 0755 with
    /// `create`); `None` if the parent does not exist and `create` is false.
    pub(super) fn at(root: &Root, path: &Path, create: bool) -> Result<Option<Slot>> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            bail!("{} does not name a file", path.display());
        };
        let dir = if create {
            root.mkdir_all(parent, 0o755)?
        } else {
            match root.resolve(parent) {
                Ok(d) => d,
                Err(ChaseError::NotFound { .. } | ChaseError::NotADirectory { .. }) => {
                    return Ok(None)
                }
                Err(e) => return Err(anyhow::Error::new(e)),
            }
        };
        if !dir.is_dir() {
            if !create {
                return Ok(None);
            }
            bail!("{} is not a directory", root.show(&dir.in_root).display());
        }
        let fd = dir
            .open_dir()
            .with_context(|| format!("opening {}", root.show(&dir.in_root).display()))?;
        Ok(Some(Slot {
            dir: fd,
            name: name.to_os_string(),
            shown: path.to_path_buf(),
        }))
    }

    /// `lstat` of the entry; `None` when it does not exist.
    fn lstat(&self) -> Result<Option<Stat>> {
        match rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io::Error::from(e)).with_context(|| format!("cannot stat {}", self)),
        }
    }

    /// What is at the entry, without following it.
    fn inspect(&self) -> Result<Current> {
        let Some(st) = self.lstat()? else {
            return Ok(Current::Absent);
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
            return Ok(Current::Other);
        }
        let target = rustix::fs::readlinkat(&self.dir, &self.name, Vec::new())
            .map_err(io::Error::from)
            .with_context(|| format!("cannot read link {self}"))?;
        Ok(Current::Symlink(PathBuf::from(OsStr::from_bytes(
            target.as_bytes(),
        ))))
    }

    /// The name of this entry's temporary sibling: `.#` keeps discovery (ours and systemd's)
    /// away from it; fixed, so a leftover of an interrupted run is replaced, not accumulated.
    fn temp(&self) -> OsString {
        let mut t = OsString::from(".#");
        t.push(&self.name);
        t.push(".extmerge-tmp");
        t
    }

    /// Remove a leftover temporary entry (never a directory, never followed).
    fn clear_temp(&self, tmp: &OsStr) {
        let _ = rustix::fs::unlinkat(&self.dir, tmp, AtFlags::empty());
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.shown.display())
    }
}

/// What is at a slot, without following it.
enum Current {
    Absent,
    Symlink(PathBuf),
    Other,
}

/// Apply the actions inside `root`; returns one human log line per action (except
/// [`Action::Missing`] and [`Action::BadLine`], which the caller reports).
///
/// Symlinks get absolute in-root targets as Flatcar writes them; nothing is followed outside
/// the root; a non-symlink or a `/dev/null` link is never replaced; running it again is a no-op.
pub fn apply(root: &Root, actions: &[Action]) -> Result<Vec<String>> {
    let mut log = Vec::new();
    for action in actions {
        log.push(match action {
            Action::Link { link, target } => set_link(root, link, target)?,
            Action::RemoveLink { link, reason } => remove_link(root, link, reason)?,
            Action::MoveOem { from, to, link } => move_oem(root, from, to, link.as_deref())?,
            Action::Delete { path, reason } => delete(root, path, reason),
            Action::Missing { .. } | Action::BadLine { .. } => continue,
            Action::Skip { name, reason } => format!("{name}: {reason}"),
        });
    }
    Ok(log)
}

fn set_link(root: &Root, link: &Path, target: &Path) -> Result<String> {
    let slot =
        Slot::at(root, link, true)?.with_context(|| format!("cannot place {}", show(link)))?;
    let (l, t) = (show(link), show(target));
    Ok(match slot.inspect()? {
        Current::Symlink(current) if current == target => format!("{l} already points to {t}"),
        Current::Symlink(current) if current == Path::new(DEV_NULL) => {
            format!("left {l} alone: masked by a link to /dev/null")
        }
        Current::Symlink(current) => {
            // Atomic swap: the new link under a temporary name, renamed over the old one.
            let tmp = slot.temp();
            slot.clear_temp(&tmp);
            rustix::fs::symlinkat(target, &slot.dir, &tmp)
                .map_err(io::Error::from)
                .with_context(|| format!("cannot create a temporary symlink next to {l}"))?;
            if let Err(e) = rustix::fs::renameat(&slot.dir, &tmp, &slot.dir, &slot.name) {
                slot.clear_temp(&tmp);
                return Err(io::Error::from(e)).with_context(|| format!("cannot replace {l}"));
            }
            format!("re-pointed {l} -> {t} (was {})", current.display())
        }
        Current::Other => {
            format!("left {l} alone: not a symlink (extmerge never replaces a file)")
        }
        Current::Absent => {
            rustix::fs::symlinkat(target, &slot.dir, &slot.name)
                .map_err(io::Error::from)
                .with_context(|| format!("cannot create symlink {l}"))?;
            format!("linked {l} -> {t}")
        }
    })
}

fn remove_link(root: &Root, link: &Path, reason: &str) -> Result<String> {
    let l = show(link);
    let Some(slot) = Slot::at(root, link, false)? else {
        return Ok(format!("{l} is already absent"));
    };
    Ok(match slot.inspect()? {
        Current::Symlink(t) if t == Path::new(DEV_NULL) => {
            format!("left {l} alone: masked by a link to /dev/null")
        }
        Current::Symlink(_) => {
            rustix::fs::unlinkat(&slot.dir, &slot.name, AtFlags::empty())
                .map_err(io::Error::from)
                .with_context(|| format!("cannot remove {l}"))?;
            format!("removed {l} ({reason})")
        }
        Current::Other => {
            format!("left {l} alone: not a symlink (extmerge never removes a file)")
        }
        Current::Absent => format!("{l} is already absent"),
    })
}

fn move_oem(root: &Root, from: &Path, to: &Path, link: Option<&Path>) -> Result<String> {
    let (f, t) = (show(from), show(to));
    let src = match Slot::at(root, from, false)? {
        Some(s) if s.lstat()?.is_some() => Some(s),
        _ => None,
    };
    let (mut line, active) = match src {
        Some(src) => {
            let dst = Slot::at(root, to, true)?.with_context(|| format!("cannot place {t}"))?;
            match move_file(&src, &dst) {
                Ok(()) => (format!("moved {f} to {t}"), Some(to)),
                // The script's `if mv …; else`: a full OEM partition keeps the image where it is.
                Err(e) => (
                    format!("could not move {f} to {t} ({e:#}); keeping it at {f}"),
                    Some(from),
                ),
            }
        }
        None if exists(root, to)? => (format!("{f} is already at {t}"), Some(to)),
        None => (format!("{f} is gone; nothing to move"), None),
    };
    if let Some(link) = link {
        let done = match active {
            Some(target) => set_link(root, link, target)?,
            None => remove_link(root, link, "its image is gone")?,
        };
        line = format!("{line}; {done}");
    }
    Ok(line)
}

/// `mv` for one entry: rename, or across filesystems (OEM partition ↔ root) copy to a temporary
/// name, rename into place and remove the source, so a failure never leaves a partial image.
pub(super) fn move_file(src: &Slot, dst: &Slot) -> Result<()> {
    match rustix::fs::renameat(&src.dir, &src.name, &dst.dir, &dst.name) {
        Ok(()) => Ok(()),
        Err(Errno::XDEV) => copy_across(src, dst),
        Err(e) => Err(io::Error::from(e)).with_context(|| format!("cannot move {src} to {dst}")),
    }
}

/// The cross-filesystem half of [`move_file`]: only a regular file is copied (never a link's
/// target, never a FIFO), with its mode and mtime (the refresh skip logic identifies plain
/// images partly by it).
pub(super) fn copy_across(src: &Slot, dst: &Slot) -> Result<()> {
    let st = src.lstat()?.with_context(|| format!("{src} is gone"))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft != FileType::RegularFile {
        bail!(
            "{src} is not a regular file ({}); not copying it across filesystems",
            crate::kernel::root::file_type_name(ft)
        );
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let input = rustix::fs::openat(&src.dir, &src.name, flags | OFlags::NOCTTY, Mode::empty())
        .map_err(io::Error::from)
        .with_context(|| format!("cannot open {src}"))?;
    let opened = rustix::fs::fstat(&input).map_err(io::Error::from)?;
    if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) {
        bail!("{src} changed while being opened; not copying it");
    }
    let tmp = dst.temp();
    dst.clear_temp(&tmp);
    let copied = copy_into(File::from(input), dst, &tmp, &st).and_then(|()| {
        rustix::fs::renameat(&dst.dir, &tmp, &dst.dir, &dst.name)
            .map_err(io::Error::from)
            .with_context(|| format!("cannot rename the copy into place at {dst}"))
    });
    if let Err(e) = copied {
        dst.clear_temp(&tmp);
        return Err(e);
    }
    // The copy is complete; a source we cannot remove only wastes space, so it is not a failure.
    if let Err(e) = rustix::fs::unlinkat(&src.dir, &src.name, AtFlags::empty()) {
        tracing::warn!("moved {src} to {dst} but could not remove the source: {e}");
    }
    Ok(())
}

fn copy_into(mut input: File, dst: &Slot, tmp: &OsStr, st: &Stat) -> Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(
        &dst.dir,
        tmp,
        flags,
        Mode::from_raw_mode(st.st_mode & 0o7777),
    )
    .map_err(io::Error::from)
    .with_context(|| format!("cannot create a temporary copy next to {dst}"))?;
    let mut output = File::from(fd);
    io::copy(&mut input, &mut output).with_context(|| format!("cannot copy to {dst}"))?;
    let mtime = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::futimens(output.as_fd(), &mtime)
        .map_err(io::Error::from)
        .with_context(|| format!("cannot set the mtime of the copy for {dst}"))?;
    output
        .sync_all()
        .with_context(|| format!("cannot sync the copy for {dst}"))
}

/// `rm -rf` inside the root, never following the last component; failures are reported, not fatal.
fn delete(root: &Root, path: &Path, reason: &str) -> String {
    let p = show(path);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return format!("could not delete {p}: not a file name (ignored, as Flatcar does)");
    };
    match root.remove_tree(parent, name) {
        Ok(true) => format!("deleted {p} ({reason})"),
        Ok(false) => format!("{p} is already absent"),
        Err(e) => format!("could not delete {p}: {e:#} (ignored, as Flatcar does)"),
    }
}
