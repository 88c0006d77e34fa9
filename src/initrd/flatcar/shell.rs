//! The imperative shell of the Flatcar selection: [`gather`] reads the root, [`apply`] changes it.
//! Every path is resolved inside the root (absolute symlink targets included) and the last
//! component of what is changed is never followed.

use super::{
    bad_name, enabled_set, flatcar_image, oem_flag, oem_id, oem_images, show, Action, Entry,
    Inputs, CLOUDINIT_WANTS, DEV_NULL, EXTENSIONS, OEM_LISTS, OEM_RELEASE, OS_RELEASE, USER_CONF,
    VENDOR_CONF,
};
use crate::chase::{chase, chase_allow_missing, ChaseError};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Error context naming the path for `io::Result`s.
trait At<T> {
    fn at(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> At<T> for io::Result<T> {
    fn at(self, what: &str, path: &Path) -> Result<T> {
        self.with_context(|| format!("{what} {}", path.display()))
    }
}

fn chase_failed(e: ChaseError, path: &Path, root: &Path) -> anyhow::Error {
    anyhow!(e).context(format!(
        "cannot resolve {} inside {}",
        path.display(),
        root.display()
    ))
}

/// Resolve an in-root path inside `root`; `None` where `test -e` would be false.
fn resolve(root: &Path, path: &Path) -> Result<Option<PathBuf>> {
    match chase(root, path) {
        Ok(r) => Ok(Some(r.host)),
        Err(
            ChaseError::NotFound { .. }
            | ChaseError::NotADirectory { .. }
            | ChaseError::TooManyLinks { .. },
        ) => Ok(None),
        Err(e) => Err(chase_failed(e, path, root)),
    }
}

/// Read a text file inside `root` (`None` if absent); refuses FIFOs and devices so it cannot block.
fn read_text(root: &Path, path: &str) -> Result<Option<String>> {
    let Some(host) = resolve(root, Path::new(path))? else {
        return Ok(None);
    };
    if !fs::metadata(&host).at("cannot stat", &host)?.is_file() {
        bail!("{} is not a regular file", host.display());
    }
    let bytes = fs::read(&host).at("cannot read", &host)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn canonical_root(root: &Path) -> Result<PathBuf> {
    root.canonicalize()
        .at("cannot resolve the root directory", root)
}

/// Read everything [`plan`](super::plan) needs from the tree below `root` (e.g. /sysroot), resolving inside it.
pub fn gather(root: &Path) -> Result<Inputs> {
    let root = &canonical_root(root)?;
    let os_text = read_text(root, OS_RELEASE)?
        .with_context(|| format!("{} has no {OS_RELEASE}", root.display()))?;
    let Some(version) = image_version(&os_text) else {
        bail!(
            "{OS_RELEASE} in {} has neither VERSION= nor VERSION_ID=",
            root.display()
        );
    };
    gather_for(root, version, &os_text)
}

/// The version Flatcar names its images by: os-release `VERSION=`, else `VERSION_ID=`.
pub fn image_version(os_release_text: &str) -> Option<String> {
    let (os, _) = crate::decide::release::parse_env(os_release_text);
    ["VERSION", "VERSION_ID"]
        .iter()
        .find_map(|k| os.get(*k).filter(|v| !v.is_empty()))
        .cloned()
}

/// [`gather`] for the images of `version` (e.g. the version an update is about to install),
/// with the rest of `os_release_text` (the board) taken as is.
pub fn gather_for(root: &Path, version: String, os_release_text: &str) -> Result<Inputs> {
    let root = &canonical_root(root)?;
    let (os, _) = crate::decide::release::parse_env(os_release_text);
    let mut inputs = Inputs {
        version,
        board: os.get("FLATCAR_BOARD").cloned(),
        vendor_conf: read_text(root, VENDOR_CONF)?.unwrap_or_default(),
        user_conf: read_text(root, USER_CONF)?.unwrap_or_default(),
        oem_id: read_text(root, OEM_RELEASE)?.as_deref().and_then(oem_id),
        ..Inputs::default()
    };
    let mut candidates = Vec::new();
    if let Some(id) = inputs.oem_id.clone().filter(|id| bad_name(id).is_none()) {
        inputs.oem_active = resolve(root, &oem_flag("active", &id))?.is_some();
        inputs.oem_migrate = resolve(root, &oem_flag("migrate", &id))?.is_some();
        if inputs.oem_migrate {
            inputs.oem_migrate_list = read_text(root, &format!("{OEM_LISTS}/{id}"))?;
            inputs.cloudinit_wants = read_symlink(root, Path::new(CLOUDINIT_WANTS))?;
        }
        candidates.extend(oem_images(&id, &inputs.version));
    }
    for name in enabled_set(&inputs.vendor_conf, &inputs.user_conf) {
        if bad_name(&name).is_none() {
            candidates.push(flatcar_image(&name, &inputs.version));
        }
    }
    for c in candidates {
        if resolve(root, &c)?.is_some() {
            inputs.present.insert(c);
        }
    }
    inputs.links = read_links(root)?;
    Ok(inputs)
}

/// The `flatcar-*.raw` / `oem-*.raw` entries of /etc/extensions.
fn read_links(root: &Path) -> Result<BTreeMap<String, Entry>> {
    let mut links = BTreeMap::new();
    let Some(dir) = resolve(root, Path::new(EXTENSIONS))? else {
        return Ok(links);
    };
    for de in fs::read_dir(&dir).at("cannot list", &dir)? {
        let Some(file) = de
            .at("cannot list", &dir)?
            .file_name()
            .to_str()
            .map(str::to_owned)
        else {
            continue;
        };
        if !(file.starts_with("flatcar-") || file.starts_with("oem-")) || !file.ends_with(".raw") {
            continue;
        }
        let entry = match read_symlink(root, &Path::new(EXTENSIONS).join(&file))? {
            Some(target) => {
                // Absolute targets are paths of the booted system: resolve them inside the root.
                let resolved_file = match chase(root, &Path::new(EXTENSIONS).join(&file)) {
                    Ok(r) if fs::metadata(&r.host).is_ok_and(|m| m.is_file()) => Some(r.in_root),
                    _ => None,
                };
                Entry::Symlink {
                    target,
                    resolved_file,
                }
            }
            None => Entry::Other,
        };
        links.insert(file, entry);
    }
    Ok(links)
}

/// What is at a host path, without following it.
enum Found {
    Absent,
    Symlink(PathBuf),
    Other,
}

fn inspect(host: &Path) -> Result<Found> {
    match fs::symlink_metadata(host) {
        Ok(m) if m.file_type().is_symlink() => Ok(Found::Symlink(
            fs::read_link(host).at("cannot read link", host)?,
        )),
        Ok(_) => Ok(Found::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Absent),
        Err(e) => Err(e).at("cannot stat", host),
    }
}

/// The text of the symlink at an in-root path (`None` if it is absent or not a symlink).
fn read_symlink(root: &Path, path: &Path) -> Result<Option<PathBuf>> {
    match locate(root, path, false)? {
        Some(host) => Ok(match inspect(&host)? {
            Found::Symlink(target) => Some(target),
            Found::Absent | Found::Other => None,
        }),
        None => Ok(None),
    }
}

/// Host path of `path` with its parent resolved inside `root` (the last component is never
/// followed); `None` if the parent is absent and `create` is false, else the parent is created.
fn locate(root: &Path, path: &Path, create: bool) -> Result<Option<PathBuf>> {
    let (Some(parent), Some(file)) = (path.parent(), path.file_name()) else {
        bail!("{} does not name a file", path.display());
    };
    let (dir, exists) =
        chase_allow_missing(root, parent).map_err(|e| chase_failed(e, parent, root))?;
    if !exists {
        if !create {
            return Ok(None);
        }
        fs::create_dir_all(&dir.host).at("cannot create", &dir.host)?;
    }
    Ok(Some(dir.host.join(file)))
}

/// Apply the actions inside `root`; returns one human log line per action (except [`Action::Missing`]).
///
/// Symlinks get absolute in-root targets as Flatcar writes them; nothing is followed outside
/// the root; a non-symlink or a `/dev/null` link is never replaced; running it again is a no-op.
pub fn apply(root: &Path, actions: &[Action]) -> Result<Vec<String>> {
    let root = &canonical_root(root)?;
    let mut log = Vec::new();
    for action in actions {
        log.push(match action {
            Action::Link { link, target } => set_link(root, link, target)?,
            Action::RemoveLink { link, reason } => remove_link(root, link, reason)?,
            Action::MoveOem { from, to, link } => move_oem(root, from, to, link.as_deref())?,
            Action::Delete { path, reason } => delete(root, path, reason),
            Action::Missing { .. } => continue,
            Action::Skip { name, reason } => format!("{name}: {reason}"),
        });
    }
    Ok(log)
}

fn set_link(root: &Path, link: &Path, target: &Path) -> Result<String> {
    let host = locate(root, link, true)?.with_context(|| format!("cannot place {}", show(link)))?;
    let (l, t) = (show(link), show(target));
    Ok(match inspect(&host)? {
        Found::Symlink(current) if current == target => format!("{l} already points to {t}"),
        Found::Symlink(current) if current == Path::new(DEV_NULL) => {
            format!("left {l} alone: masked by a link to /dev/null")
        }
        Found::Symlink(current) => {
            // Atomic swap: the new link under a temporary name, renamed over the old one.
            let tmp = temp_name(&host);
            let _ = fs::remove_file(&tmp); // a leftover of an interrupted run; usually absent
            symlink(target, &tmp).at("cannot create symlink", &tmp)?;
            if let Err(e) = fs::rename(&tmp, &host) {
                let _ = fs::remove_file(&tmp);
                return Err(e).at("cannot replace", &host);
            }
            format!("re-pointed {l} -> {t} (was {})", current.display())
        }
        Found::Other => format!("left {l} alone: not a symlink (extmerge never replaces a file)"),
        Found::Absent => {
            symlink(target, &host).at("cannot create symlink", &host)?;
            format!("linked {l} -> {t}")
        }
    })
}

pub(super) fn temp_name(host: &Path) -> PathBuf {
    let file = host.file_name().unwrap_or_default().to_string_lossy();
    host.with_file_name(format!(".{file}.extmerge-tmp"))
}

fn remove_link(root: &Path, link: &Path, reason: &str) -> Result<String> {
    let l = show(link);
    let found = match locate(root, link, false)? {
        Some(host) => (inspect(&host)?, host),
        None => (Found::Absent, PathBuf::new()),
    };
    Ok(match found {
        (Found::Symlink(t), _) if t == Path::new(DEV_NULL) => {
            format!("left {l} alone: masked by a link to /dev/null")
        }
        (Found::Symlink(_), host) => {
            fs::remove_file(&host).at("cannot remove", &host)?;
            format!("removed {l} ({reason})")
        }
        (Found::Other, _) => {
            format!("left {l} alone: not a symlink (extmerge never removes a file)")
        }
        (Found::Absent, _) => format!("{l} is already absent"),
    })
}

fn move_oem(root: &Path, from: &Path, to: &Path, link: Option<&Path>) -> Result<String> {
    let (f, t) = (show(from), show(to));
    let src = locate(root, from, false)?.filter(|p| fs::symlink_metadata(p).is_ok());
    let (mut line, active) = match src {
        Some(src) => {
            let dst = locate(root, to, true)?.with_context(|| format!("cannot place {t}"))?;
            match move_file(&src, &dst) {
                Ok(()) => (format!("moved {f} to {t}"), Some(to)),
                // The script's `if mv …; else`: a full OEM partition keeps the image where it is.
                Err(e) => (
                    format!("could not move {f} to {t} ({e:#}); keeping it at {f}"),
                    Some(from),
                ),
            }
        }
        None if locate(root, to, false)?.is_some_and(|p| p.exists()) => {
            (format!("{f} is already at {t}"), Some(to))
        }
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

/// `mv` for one file: rename, or across filesystems (OEM partition ↔ root) copy to a temporary
/// name, rename into place and remove the source, so a failure never leaves a partial image.
pub(super) fn move_file(src: &Path, dst: &Path) -> Result<()> {
    match fs::rename(src, dst) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot move {} to {}", show(src), show(dst)))
        }
    }
    let meta = fs::symlink_metadata(src).at("cannot stat", src)?;
    if !meta.is_file() {
        bail!(
            "{} is not a regular file; not copying it across filesystems",
            show(src)
        );
    }
    let tmp = temp_name(dst);
    let _ = fs::remove_file(&tmp); // a leftover of an interrupted run
    let copied = copy_file(src, &tmp, &meta)
        .and_then(|()| fs::rename(&tmp, dst).at("cannot rename into place", &tmp));
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The copy is complete; a source we cannot remove only wastes space, so it is not a failure.
    if let Err(e) = fs::remove_file(src) {
        tracing::warn!(
            "moved {} to {} but could not remove the source: {e}",
            show(src),
            show(dst)
        );
    }
    Ok(())
}

fn copy_file(src: &Path, tmp: &Path, meta: &fs::Metadata) -> Result<()> {
    let mut input = fs::File::open(src).at("cannot open", src)?;
    let mut open = fs::OpenOptions::new();
    let mut output = open
        .write(true)
        .create_new(true)
        .mode(meta.mode() & 0o7777)
        .open(tmp)
        .at("cannot create", tmp)?;
    io::copy(&mut input, &mut output).at("cannot copy to", tmp)?;
    // Keep mtime like mv does: the refresh skip logic identifies plain images partly by it.
    output
        .set_modified(meta.modified().at("cannot stat", src)?)
        .at("cannot set mtime of", tmp)?;
    output.sync_all().at("cannot sync", tmp)
}

/// `rm -rf` inside the root, never following the last component; failures are reported, not fatal.
fn delete(root: &Path, path: &Path, reason: &str) -> String {
    let p = show(path);
    let host = match locate(root, path, false) {
        Ok(Some(host)) => host,
        Ok(None) => return format!("{p} is already absent"),
        Err(e) => return format!("could not delete {p}: {e:#} (ignored, as Flatcar does)"),
    };
    let removed = match fs::symlink_metadata(&host) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return format!("{p} is already absent"),
        Ok(m) if m.is_dir() => fs::remove_dir_all(&host),
        Ok(_) => fs::remove_file(&host),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => format!("deleted {p} ({reason})"),
        Err(e) => format!("could not delete {p}: {e} (ignored, as Flatcar does)"),
    }
}
