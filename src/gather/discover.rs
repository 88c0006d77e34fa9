//! Image discovery for one class under a root: systemd's `image_discover()`
//! (src/shared/discover-image.c) — search directories, names, masks, `.v/` directories and
//! precedence. Reads only.
//!
//! Deliberate differences from systemd, all so that one bad entry never hides the others and
//! the result does not depend on readdir order:
//! * a search directory that cannot be opened, and an entry that cannot be resolved (symlink
//!   loop, a non-directory in the path), is recorded in [`Discovery::skipped`] instead of failing
//!   the whole discovery;
//! * a directory's entries are processed sorted by file name, so of two entries in one directory
//!   that map to the same image name the first by name wins (systemd: whichever readdir returns
//!   first);
//! * every entry systemd ignores silently (dangling symlinks, non-images) is reported with a
//!   reason.

use crate::class::ImageClass;
use crate::decide::vpick;
use crate::gather::vpick::{describe_chase_error, pick_in_root, EntryType};
use crate::kernel::root::{file_type_name, ChaseError, Found, Root};
use crate::ondisk::cescape::cescape;
use crate::ondisk::version::strverscmp_improved;
use rustix::fs::FileType;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Longest file name (bytes) Linux allows, as systemd's `filename_is_valid()` checks it.
const NAME_MAX: usize = 255;

/// What kind of inode an image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// A directory tree (also `.mstack` directories, which we do not distinguish).
    Directory,
    /// A regular `.raw` file (disk image or plain filesystem image).
    Raw,
    /// A block device.
    Block,
}

/// An image found in a search directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Image name: suffixes stripped as systemd does, version suffix kept (`foo_1.2`).
    pub name: String,
    /// Inode type of the resolved image.
    pub kind: ImageKind,
    /// In-root path of the directory entry as found (`/etc/extensions/foo.raw`).
    pub entry: PathBuf,
    /// In-root fully resolved path, symlinks and vpick followed (`/opt/store/foo-1.2.raw`).
    pub path: PathBuf,
    /// The search directory it was found in, in-root (`/etc/extensions`).
    pub search_dir: PathBuf,
}

/// A directory entry (or search directory) that is not an image, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// In-root path of the entry.
    pub entry: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// The result of discovering one class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// Images in layer order: the last element is the top layer.
    pub images: Vec<Candidate>,
    /// Entries that were passed over, with reasons.
    pub skipped: Vec<Skipped>,
}

/// systemd image_name_is_valid (filename_is_valid + not starting with ".#" + valid UTF-8, no control chars, <= NAME_MAX).
///
/// "Valid UTF-8" is systemd's `utf8_is_valid()`, which also refuses the Unicode noncharacters
/// U+FDD0..U+FDEF and U+xFFFE/U+xFFFF.
pub fn image_name_is_valid(name: &str) -> bool {
    if name.is_empty() || name == "." || name == ".." || name.len() > NAME_MAX || name.contains('/')
    {
        return false;
    }
    if name.bytes().any(|c| c < b' ' || c == 0x7f) {
        return false;
    }
    let noncharacter = |c: char| {
        let c = u32::from(c);
        (0xFDD0..=0xFDEF).contains(&c) || (c & 0xFFFE) == 0xFFFE
    };
    if name.chars().any(noncharacter) {
        return false;
    }
    // `.#` prefixes are lock and temporary files.
    !name.starts_with(".#")
}

fn layer_cmp(a: &Candidate, b: &Candidate) -> Ordering {
    strverscmp_improved(&a.name, &b.name).then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
}

/// Sort candidates into layer order (see discover).
pub fn sort_layers(images: &mut [Candidate]) {
    // Insertion sort: std's sorts may panic when a comparison is not a strict total order, and
    // strverscmp_improved makes no such promise for arbitrary names.
    for i in 1..images.len() {
        let mut j = i;
        while j > 0 && layer_cmp(&images[j - 1], &images[j]) == Ordering::Greater {
            images.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// What an entry turned out to be before precedence is applied.
struct Image {
    name: String,
    kind: ImageKind,
    resolved: Found,
}

/// The image a name is already taken by.
struct Winner {
    entry: PathBuf,
    dir_index: usize,
}

/// Why an entry is not an image, and whether that deserves a warning.
///
/// Entries systemd passes over by design stay at debug level: sidecar and other non-`.raw`
/// files, `.sysupdate.` temporaries, names taken by a higher-precedence image, and `/dev/null`
/// masks (Flatcar's documented way to disable a built-in sysext). Anything else — a link that
/// loops or leads nowhere, an invalid name, an unusable `.v/` directory or search directory —
/// was most likely meant to be an extension, so it is logged as a warning naming the entry:
/// one broken entry must not vanish silently.
struct NotAnImage {
    reason: String,
    warn: bool,
}

impl NotAnImage {
    fn quiet(reason: impl Into<String>) -> NotAnImage {
        NotAnImage {
            reason: reason.into(),
            warn: false,
        }
    }
}

impl From<String> for NotAnImage {
    fn from(reason: String) -> NotAnImage {
        NotAnImage { reason, warn: true }
    }
}

fn skip(d: &mut Discovery, entry: PathBuf, why: NotAnImage) {
    let NotAnImage { reason, warn } = why;
    if warn {
        // C-escaped: an entry name may hold a newline, which must not split the log line.
        let shown = cescape(entry.as_os_str().as_bytes());
        tracing::warn!(IMAGE_PATH = shown.as_str(), "Skipping {shown}: {reason}");
    } else {
        tracing::debug!("skipping {}: {reason}", entry.display());
    }
    d.skipped.push(Skipped { entry, reason });
}

/// Most entries a search or versioned directory may hold before it is refused as unreadable:
/// a directory of millions of entries is an attack on the boot, not a list of extensions.
pub const MAX_DIR_ENTRIES: usize = 65_536;

/// The entry names of a directory found in a root, sorted by bytes (`.` and `..` left out).
pub fn list_dir(dir: &Found) -> io::Result<Vec<OsString>> {
    let fd = dir.open_dir()?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let n: &CStr = entry.file_name();
        if n.to_bytes() == b"." || n.to_bytes() == b".." {
            continue;
        }
        if names.len() == MAX_DIR_ENTRIES {
            return Err(io::Error::other(format!(
                "more than {MAX_DIR_ENTRIES} entries"
            )));
        }
        names.push(OsStr::from_bytes(n.to_bytes()).to_os_string());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// The target of the symlink at `entry_in_root` (not followed), if it is one.
fn link_target(root: &Root, entry_in_root: &Path) -> Option<PathBuf> {
    let link = root.resolve_nofollow(entry_in_root).ok()?;
    if link.file_type() != FileType::Symlink {
        return None;
    }
    let t = rustix::fs::readlinkat(&link.fd, "", Vec::new()).ok()?;
    Some(PathBuf::from(OsStr::from_bytes(t.as_bytes())))
}

/// Why an entry could not be resolved, naming the link target for dangling symlinks.
fn unresolvable(root: &Root, entry_in_root: &Path, err: &ChaseError) -> NotAnImage {
    if err.is_not_found() {
        return match link_target(root, entry_in_root) {
            Some(target) => {
                let reason = format!(
                    "dangling symlink to {} ({})",
                    target.display(),
                    describe_chase_error(root, err)
                );
                // Under --root, /dev is usually empty: a /dev/null mask dangles there.
                if target == Path::new("/dev/null") {
                    NotAnImage::quiet(reason)
                } else {
                    reason.into()
                }
            }
            None => NotAnImage::quiet(format!(
                "vanished while scanning ({})",
                describe_chase_error(root, err)
            )),
        };
    }
    format!("cannot resolve: {}", describe_chase_error(root, err)).into()
}

fn checked_name(name: &str) -> Result<String, String> {
    if image_name_is_valid(name) {
        Ok(name.to_string())
    } else {
        Err(format!("invalid image name {name:?}"))
    }
}

/// `foo.raw` → `foo`, and a resolved regular file must end in `.raw` too (systemd's
/// `image_make()` checks the resolved path).
fn raw_file(resolved: Found, name: String) -> Result<Image, String> {
    if !resolved.in_root.as_os_str().as_bytes().ends_with(b".raw") {
        return Err(format!(
            "resolves to {}, which does not end in .raw",
            resolved.in_root.display()
        ));
    }
    Ok(Image {
        name,
        kind: ImageKind::Raw,
        resolved,
    })
}

/// A `NAME[.CLASS][.raw|.mstack].v` directory: pick the best versioned entry inside.
fn versioned(
    root: &Root,
    class: ImageClass,
    native_arch: &str,
    entry_in_root: &Path,
    nov: &str,
) -> Result<Image, String> {
    let (format, rest) = [".raw", ".mstack"]
        .iter()
        .find_map(|s| nov.strip_suffix(s).map(|r| (*s, r)))
        .unwrap_or(("", nov));
    // The class suffix becomes part of what the entries inside must end in.
    let (base, suffix) = match rest.strip_suffix(class.name_suffix()) {
        Some(b) => (b, format!("{}{format}", class.name_suffix())),
        None => (rest, format.to_string()),
    };
    if !image_name_is_valid(base) {
        return Err(format!("invalid versioned image name {base:?}"));
    }
    let want = if suffix.ends_with(".raw") {
        EntryType::FileOrBlock
    } else {
        EntryType::Directory
    };
    let picked = pick_in_root(root, entry_in_root, base, &suffix, want, native_arch)
        .map_err(|e| format!("cannot pick a version: {e:#}"))?;
    let Some(p) = picked else {
        let what = match want {
            EntryType::Directory => "directory",
            EntryType::FileOrBlock => "regular file or block device",
        };
        return Err(format!(
            "versioned directory has no {what} named {base}_<version>{suffix} for this architecture"
        ));
    };
    tracing::debug!(
        "{}: picked {} (version {})",
        entry_in_root.display(),
        p.file_name,
        p.name.version
    );
    let name = base.to_string();
    let ft = p.resolved.file_type();
    if ft == FileType::Directory {
        Ok(Image {
            name,
            kind: ImageKind::Directory,
            resolved: p.resolved,
        })
    } else if ft == FileType::BlockDevice {
        Ok(Image {
            name,
            kind: ImageKind::Block,
            resolved: p.resolved,
        })
    } else {
        raw_file(p.resolved, name)
    }
}

/// Decide what one directory entry is, following systemd's order of checks.
fn classify(
    root: &Root,
    class: ImageClass,
    native_arch: &str,
    dir_in_root: &Path,
    fname: &OsStr,
) -> Result<Image, NotAnImage> {
    if fname.as_bytes().starts_with(b".sysupdate.") {
        return Err(NotAnImage::quiet("systemd-sysupdate temporary file"));
    }
    // image_name_is_valid() refuses these too; they are lock and temporary files, not mistakes.
    if fname.as_bytes().starts_with(b".#") {
        return Err(NotAnImage::quiet(
            "invalid image name: .# marks a lock or temporary file",
        ));
    }
    let entry_in_root = dir_in_root.join(fname);
    let resolved = root
        .resolve(&entry_in_root)
        .map_err(|e| unresolvable(root, &entry_in_root, &e))?;
    let ft = resolved.file_type();

    let is_image_type = matches!(
        ft,
        FileType::RegularFile | FileType::Directory | FileType::BlockDevice
    );
    if !is_image_type {
        let reason = format!(
            "{} (e.g. a link to /dev/null): not an image; it does not mask anything — mask with an empty directory instead",
            file_type_name(ft)
        );
        // Character devices are /dev/null masks (see NotAnImage); fifos and sockets are mistakes.
        return Err(if ft == FileType::CharacterDevice {
            NotAnImage::quiet(reason)
        } else {
            reason.into()
        });
    }
    let Some(f) = fname.to_str() else {
        return Err("invalid image name: not valid UTF-8".to_string().into());
    };

    if ft == FileType::RegularFile {
        let Some(stem) = f.strip_suffix(".raw") else {
            return Err(NotAnImage::quiet("not a .raw file"));
        };
        let name = checked_name(stem.strip_suffix(class.name_suffix()).unwrap_or(stem))?;
        raw_file(resolved, name).map_err(NotAnImage::from)
    } else if ft == FileType::Directory {
        if let Some(nov) = f.strip_suffix(".v") {
            return versioned(root, class, native_arch, &entry_in_root, nov)
                .map_err(NotAnImage::from);
        }
        let rest = f.strip_suffix(".mstack").unwrap_or(f);
        let name = checked_name(rest.strip_suffix(class.name_suffix()).unwrap_or(rest))?;
        Ok(Image {
            name,
            kind: ImageKind::Directory,
            resolved,
        })
    } else {
        Ok(Image {
            name: checked_name(f)?,
            kind: ImageKind::Block,
            resolved,
        })
    }
}

/// systemd image_discover for one class under a root. `initrd` selects the initrd search list. images are sorted into layer order: ascending strverscmp_improved by name, so the LAST element is the TOP layer (highest name wins).
///
/// Fails only if `root` itself is unusable; everything below it that is not an image ends up
/// in [`Discovery::skipped`].
pub fn discover(root: &Root, class: ImageClass, initrd: bool) -> anyhow::Result<Discovery> {
    let native_arch = vpick::native_architecture();
    let mut d = Discovery::default();
    let mut winners: HashMap<String, Winner> = HashMap::new();

    for (dir_index, dir) in class.search_dirs(initrd).iter().enumerate() {
        let search_dir = PathBuf::from(dir);
        let resolved_dir = match root.resolve(&search_dir) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                let reason = format!(
                    "cannot open search directory: {}",
                    describe_chase_error(root, &e)
                );
                skip(&mut d, search_dir, reason.into());
                continue;
            }
        };
        let fnames = match list_dir(&resolved_dir) {
            Ok(v) => v,
            Err(e) => {
                let reason = format!(
                    "cannot read search directory {}: {e}",
                    resolved_dir.in_root.display()
                );
                skip(&mut d, search_dir, reason.into());
                continue;
            }
        };

        for fname in fnames {
            let entry = search_dir.join(&fname);
            let found = match classify(root, class, native_arch, &resolved_dir.in_root, &fname) {
                Ok(f) => f,
                Err(reason) => {
                    skip(&mut d, entry, reason);
                    continue;
                }
            };
            if let Some(w) = winners.get(&found.name) {
                let reason = if w.dir_index == dir_index {
                    format!(
                        "same image name {:?} as {}, which sorts first in this directory (systemd would take whichever readdir returns first)",
                        found.name,
                        w.entry.display()
                    )
                } else {
                    format!("shadowed by {}", w.entry.display())
                };
                skip(&mut d, entry, NotAnImage::quiet(reason));
                continue;
            }
            tracing::debug!(
                "found {} image {:?} at {} -> {}",
                class,
                found.name,
                entry.display(),
                found.resolved.in_root.display()
            );
            winners.insert(
                found.name.clone(),
                Winner {
                    entry: entry.clone(),
                    dir_index,
                },
            );
            d.images.push(Candidate {
                name: found.name,
                kind: found.kind,
                entry,
                path: found.resolved.in_root,
                search_dir: search_dir.clone(),
            });
        }
    }

    sort_layers(&mut d.images);
    Ok(d)
}

#[cfg(test)]
mod tests;
