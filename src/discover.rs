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

use crate::chase::{chase, host_path, ChaseError, Resolved};
use crate::class::ImageClass;
use crate::version::strverscmp_improved;
use crate::vpick::{self, describe_chase_error, EntryType};
use anyhow::{bail, Context};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::FileType;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
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
    /// Root-prefixed resolved path: what to open.
    pub host_path: PathBuf,
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
struct Found {
    name: String,
    kind: ImageKind,
    resolved: Resolved,
}

/// The image a name is already taken by.
struct Winner {
    entry: PathBuf,
    dir_index: usize,
}

fn skip(d: &mut Discovery, entry: PathBuf, reason: String) {
    tracing::debug!("skipping {}: {reason}", entry.display());
    d.skipped.push(Skipped { entry, reason });
}

fn list_sorted(dir: &Path) -> std::io::Result<Vec<OsString>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<Vec<_>>>()?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn type_name(ft: &FileType) -> &'static str {
    if ft.is_char_device() {
        "character device"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "file of unknown type"
    }
}

/// Why an entry could not be resolved, naming the link target for dangling symlinks.
fn unresolvable(root: &Path, entry_in_root: &Path, err: &ChaseError) -> String {
    if err.is_not_found() {
        let host = host_path(root, entry_in_root);
        return match std::fs::read_link(&host) {
            Ok(target) => format!(
                "dangling symlink to {} ({})",
                target.display(),
                describe_chase_error(root, err)
            ),
            Err(_) => format!(
                "vanished while scanning ({})",
                describe_chase_error(root, err)
            ),
        };
    }
    format!("cannot resolve: {}", describe_chase_error(root, err))
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
fn raw_file(resolved: Resolved, name: String) -> Result<Found, String> {
    if !resolved.in_root.as_os_str().as_bytes().ends_with(b".raw") {
        return Err(format!(
            "resolves to {}, which does not end in .raw",
            resolved.in_root.display()
        ));
    }
    Ok(Found {
        name,
        kind: ImageKind::Raw,
        resolved,
    })
}

/// A `NAME[.CLASS][.raw|.mstack].v` directory: pick the best versioned entry inside.
fn versioned(
    root: &Path,
    class: ImageClass,
    native_arch: &str,
    entry_in_root: &Path,
    nov: &str,
) -> Result<Found, String> {
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
    let picked = vpick::pick_in_root(root, entry_in_root, base, &suffix, want, native_arch)
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
    if p.file_type.is_dir() {
        Ok(Found {
            name,
            kind: ImageKind::Directory,
            resolved: p.resolved,
        })
    } else if p.file_type.is_block_device() {
        Ok(Found {
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
    root: &Path,
    class: ImageClass,
    native_arch: &str,
    dir_in_root: &Path,
    fname: &OsStr,
) -> Result<Found, String> {
    if fname.as_bytes().starts_with(b".sysupdate.") {
        return Err("systemd-sysupdate temporary file".to_string());
    }
    let entry_in_root = dir_in_root.join(fname);
    let resolved =
        chase(root, &entry_in_root).map_err(|e| unresolvable(root, &entry_in_root, &e))?;
    let ft = std::fs::symlink_metadata(&resolved.host)
        .map_err(|e| format!("cannot stat {}: {e}", resolved.in_root.display()))?
        .file_type();

    let is_image_type = ft.is_file() || ft.is_dir() || ft.is_block_device();
    if !is_image_type {
        return Err(format!(
            "{} (e.g. a link to /dev/null): not an image; it does not mask anything — mask with an empty directory instead",
            type_name(&ft)
        ));
    }
    let Some(f) = fname.to_str() else {
        return Err("invalid image name: not valid UTF-8".to_string());
    };

    if ft.is_file() {
        let Some(stem) = f.strip_suffix(".raw") else {
            return Err("not a .raw file".to_string());
        };
        let name = checked_name(stem.strip_suffix(class.name_suffix()).unwrap_or(stem))?;
        raw_file(resolved, name)
    } else if ft.is_dir() {
        if let Some(nov) = f.strip_suffix(".v") {
            return versioned(root, class, native_arch, &entry_in_root, nov);
        }
        let rest = f.strip_suffix(".mstack").unwrap_or(f);
        let name = checked_name(rest.strip_suffix(class.name_suffix()).unwrap_or(rest))?;
        Ok(Found {
            name,
            kind: ImageKind::Directory,
            resolved,
        })
    } else {
        Ok(Found {
            name: checked_name(f)?,
            kind: ImageKind::Block,
            resolved,
        })
    }
}

/// systemd image_discover for one class under a canonical root. `initrd` selects the initrd search list. images are sorted into layer order: ascending strverscmp_improved by name, so the LAST element is the TOP layer (highest name wins).
///
/// Fails only if `root` itself is unusable; everything below it that is not an image ends up
/// in [`Discovery::skipped`].
pub fn discover(root: &Path, class: ImageClass, initrd: bool) -> anyhow::Result<Discovery> {
    let meta = std::fs::metadata(root)
        .with_context(|| format!("cannot access root directory {}", root.display()))?;
    if !meta.is_dir() {
        bail!("root {} is not a directory", root.display());
    }
    let native_arch = vpick::native_architecture();
    let mut d = Discovery::default();
    let mut winners: HashMap<String, Winner> = HashMap::new();

    for (dir_index, dir) in class.search_dirs(initrd).iter().enumerate() {
        let search_dir = PathBuf::from(dir);
        let resolved_dir = match chase(root, &search_dir) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                let reason = format!(
                    "cannot open search directory: {}",
                    describe_chase_error(root, &e)
                );
                skip(&mut d, search_dir, reason);
                continue;
            }
        };
        let fnames = match list_sorted(&resolved_dir.host) {
            Ok(v) => v,
            Err(e) => {
                let reason = format!(
                    "cannot read search directory {}: {e}",
                    resolved_dir.in_root.display()
                );
                skip(&mut d, search_dir, reason);
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
                skip(&mut d, entry, reason);
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
                host_path: found.resolved.host,
                path: found.resolved.in_root,
                search_dir: search_dir.clone(),
            });
        }
    }

    sort_layers(&mut d.images);
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{makedev, mknodat, FileType as NodeType, Mode, CWD};
    use std::os::unix::fs::symlink;

    struct Tree {
        _t: tempfile::TempDir,
        root: PathBuf,
    }

    impl Tree {
        fn new() -> Self {
            let t = tempfile::tempdir().unwrap();
            let root = std::fs::canonicalize(t.path()).unwrap();
            Tree { _t: t, root }
        }
        fn p(&self, rel: &str) -> PathBuf {
            host_path(&self.root, Path::new(rel))
        }
        fn dir(&self, rel: &str) -> &Self {
            std::fs::create_dir_all(self.p(rel)).unwrap();
            self
        }
        fn file(&self, rel: &str) -> &Self {
            let p = self.p(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
            self
        }
        fn link(&self, target: &str, rel: &str) -> &Self {
            let p = self.p(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, p).unwrap();
            self
        }
        /// mknod; these tests need root (CI runs as root), so lacking it is a failure, not a skip.
        fn node(&self, rel: &str, kind: NodeType, major: u32, minor: u32) -> bool {
            let p = self.p(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            match mknodat(
                CWD,
                &p,
                kind,
                Mode::from_raw_mode(0o600),
                makedev(major, minor),
            ) {
                Ok(()) => true,
                Err(e) if e == rustix::io::Errno::PERM => {
                    panic!(
                        "mknod {} not permitted: this test must run as root",
                        p.display()
                    )
                }
                Err(e) => panic!("mknod {}: {e}", p.display()),
            }
        }
        fn sysext(&self) -> Discovery {
            discover(&self.root, ImageClass::Sysext, false).unwrap()
        }
        fn run(&self, class: ImageClass, initrd: bool) -> Discovery {
            discover(&self.root, class, initrd).unwrap()
        }
    }

    fn names(d: &Discovery) -> Vec<&str> {
        d.images.iter().map(|c| c.name.as_str()).collect()
    }

    fn image<'a>(d: &'a Discovery, name: &str) -> &'a Candidate {
        d.images
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no image {name:?} in {d:#?}"))
    }

    fn reason<'a>(d: &'a Discovery, entry: &str) -> &'a str {
        d.skipped
            .iter()
            .find(|s| s.entry == Path::new(entry))
            .map(|s| s.reason.as_str())
            .unwrap_or_else(|| panic!("{entry} not skipped in {d:#?}"))
    }

    fn pb(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn nothing_to_discover() {
        let t = Tree::new();
        assert_eq!(t.sysext(), Discovery::default());
        assert!(discover(&t.root.join("missing"), ImageClass::Sysext, false).is_err());
    }

    #[test]
    fn sysext_precedence_etc_run_var() {
        let t = Tree::new();
        t.dir("/etc/extensions/a")
            .file("/run/extensions/a.raw")
            .file("/var/lib/extensions/a.raw")
            .file("/run/extensions/b.raw")
            .file("/var/lib/extensions/b.raw")
            .file("/var/lib/extensions/c.raw");
        let d = t.sysext();
        assert_eq!(names(&d), ["a", "b", "c"]);
        let a = image(&d, "a");
        assert_eq!(a.entry, pb("/etc/extensions/a"));
        assert_eq!(a.kind, ImageKind::Directory);
        assert_eq!(a.search_dir, pb("/etc/extensions"));
        assert_eq!(image(&d, "b").entry, pb("/run/extensions/b.raw"));
        assert_eq!(image(&d, "c").search_dir, pb("/var/lib/extensions"));
        assert_eq!(
            reason(&d, "/run/extensions/a.raw"),
            "shadowed by /etc/extensions/a"
        );
        assert_eq!(
            reason(&d, "/var/lib/extensions/a.raw"),
            "shadowed by /etc/extensions/a"
        );
        assert_eq!(
            reason(&d, "/var/lib/extensions/b.raw"),
            "shadowed by /run/extensions/b.raw"
        );
        assert_eq!(d.skipped.len(), 3);
        // not searched by sysext
        t.file("/usr/lib/extensions/z.raw")
            .file("/.extra/sysext/z.raw");
        assert_eq!(names(&t.sysext()), ["a", "b", "c"]);
    }

    #[test]
    fn confext_precedence_run_var_usrlocal_usr() {
        let t = Tree::new();
        t.file("/var/lib/confexts/c.raw")
            .file("/usr/local/lib/confexts/c.raw")
            .file("/usr/lib/confexts/c.raw")
            .file("/run/confexts/r.raw")
            .file("/var/lib/confexts/r.raw")
            .file("/usr/local/lib/confexts/l.raw")
            .file("/usr/lib/confexts/l.raw")
            .file("/usr/lib/confexts/u.raw")
            .file("/etc/extensions/sys.raw");
        let d = t.run(ImageClass::Confext, false);
        assert_eq!(names(&d), ["c", "l", "r", "u"]);
        assert_eq!(image(&d, "c").entry, pb("/var/lib/confexts/c.raw"));
        assert_eq!(image(&d, "r").entry, pb("/run/confexts/r.raw"));
        assert_eq!(image(&d, "l").entry, pb("/usr/local/lib/confexts/l.raw"));
        assert_eq!(image(&d, "u").entry, pb("/usr/lib/confexts/u.raw"));
        assert_eq!(
            reason(&d, "/usr/lib/confexts/c.raw"),
            "shadowed by /var/lib/confexts/c.raw"
        );
    }

    #[test]
    fn initrd_search_lists() {
        let t = Tree::new();
        t.file("/var/lib/extensions/v.raw")
            .file("/.extra/sysext/v.raw")
            .file("/.extra/sysext/uki.raw")
            .file("/.extra/global_sysext/uki.raw")
            .file("/.extra/global_sysext/global.raw")
            .file("/usr/lib/confexts/usr.raw")
            .file("/.extra/confext/c.raw")
            .file("/.extra/global_confext/c.raw")
            .file("/usr/local/lib/confexts/local.raw");

        let d = t.run(ImageClass::Sysext, true);
        assert_eq!(names(&d), ["global", "uki", "v"]);
        assert_eq!(image(&d, "v").entry, pb("/var/lib/extensions/v.raw"));
        assert_eq!(image(&d, "uki").entry, pb("/.extra/sysext/uki.raw"));
        assert_eq!(image(&d, "global").search_dir, pb("/.extra/global_sysext"));
        assert_eq!(names(&t.run(ImageClass::Sysext, false)), ["v"]);

        let d = t.run(ImageClass::Confext, true);
        assert_eq!(names(&d), ["c", "local"]);
        assert_eq!(image(&d, "c").entry, pb("/.extra/confext/c.raw"));
        assert_eq!(
            reason(&d, "/.extra/global_confext/c.raw"),
            "shadowed by /.extra/confext/c.raw"
        );
        // /usr/lib/confexts is not searched in the initrd, /.extra is not searched on the host
        assert_eq!(names(&t.run(ImageClass::Confext, false)), ["local", "usr"]);
    }

    #[test]
    fn naming_in_sysext() {
        let t = Tree::new();
        t.file("/etc/extensions/foo.raw")
            .file("/etc/extensions/bar.sysext.raw")
            .file("/etc/extensions/baz.confext.raw")
            .file("/etc/extensions/foo_1.2.raw")
            .dir("/etc/extensions/qux")
            .dir("/etc/extensions/quux.sysext")
            .dir("/etc/extensions/dirconf.confext")
            .dir("/etc/extensions/stack.mstack")
            .dir("/etc/extensions/zz.sysext.mstack")
            .dir("/etc/extensions/looks.raw")
            .dir("/etc/extensions/.hidden")
            .file("/etc/extensions/notes.txt")
            .file("/etc/extensions/noext")
            .file("/etc/extensions/.raw")
            .file("/etc/extensions/.sysext.raw")
            .dir("/etc/extensions/.#lockdir")
            .file("/etc/extensions/.#foo.raw")
            .file("/etc/extensions/.sysupdate.tmp.raw")
            .dir("/etc/extensions/.sysupdate.dir");
        let d = t.sysext();
        let by = |n: &str| image(&d, n);
        assert_eq!(by("foo").kind, ImageKind::Raw);
        assert_eq!(by("foo").path, pb("/etc/extensions/foo.raw"));
        assert_eq!(by("bar").entry, pb("/etc/extensions/bar.sysext.raw"));
        assert_eq!(by("baz.confext").kind, ImageKind::Raw);
        assert_eq!(by("foo_1.2").entry, pb("/etc/extensions/foo_1.2.raw"));
        assert_eq!(by("qux").kind, ImageKind::Directory);
        assert_eq!(by("quux").entry, pb("/etc/extensions/quux.sysext"));
        assert_eq!(by("dirconf.confext").kind, ImageKind::Directory);
        assert_eq!(by("stack").kind, ImageKind::Directory);
        assert_eq!(by("zz").entry, pb("/etc/extensions/zz.sysext.mstack"));
        assert_eq!(by("looks.raw").kind, ImageKind::Directory);
        assert_eq!(by(".hidden").entry, pb("/etc/extensions/.hidden"));
        assert_eq!(d.images.len(), 11, "{d:#?}");

        assert_eq!(reason(&d, "/etc/extensions/notes.txt"), "not a .raw file");
        assert_eq!(reason(&d, "/etc/extensions/noext"), "not a .raw file");
        assert!(reason(&d, "/etc/extensions/.raw").starts_with("invalid image name"));
        assert!(reason(&d, "/etc/extensions/.sysext.raw").starts_with("invalid image name"));
        assert!(reason(&d, "/etc/extensions/.#lockdir").starts_with("invalid image name"));
        assert!(reason(&d, "/etc/extensions/.#foo.raw").starts_with("invalid image name"));
        assert!(reason(&d, "/etc/extensions/.sysupdate.tmp.raw").contains("sysupdate"));
        assert!(reason(&d, "/etc/extensions/.sysupdate.dir").contains("sysupdate"));
        assert_eq!(d.skipped.len(), 8, "{d:#?}");
    }

    #[test]
    fn naming_in_confext_strips_only_its_own_suffix() {
        let t = Tree::new();
        t.file("/run/confexts/foo.confext.raw")
            .file("/run/confexts/bar.sysext.raw")
            .dir("/run/confexts/etcfiles.confext");
        let d = t.run(ImageClass::Confext, false);
        assert_eq!(names(&d), ["bar.sysext", "etcfiles", "foo"]);
    }

    /// T50d:936-947: an empty directory of the same name in a higher directory masks an image.
    #[test]
    fn upstream_t50d_mask_with_empty_directory() {
        let t = Tree::new();
        t.file("/opt/app-nodistro.raw").link(
            "/opt/app-nodistro.raw",
            "/var/lib/extensions/app-nodistro.raw",
        );
        assert_eq!(
            image(&t.sysext(), "app-nodistro").path,
            pb("/opt/app-nodistro.raw")
        );

        t.dir("/etc/extensions/app-nodistro");
        let d = t.sysext();
        let c = image(&d, "app-nodistro");
        assert_eq!(c.kind, ImageKind::Directory);
        assert_eq!(c.entry, pb("/etc/extensions/app-nodistro"));
        assert_eq!(c.host_path, t.p("/etc/extensions/app-nodistro"));
        assert_eq!(
            reason(&d, "/var/lib/extensions/app-nodistro.raw"),
            "shadowed by /etc/extensions/app-nodistro"
        );
    }

    #[test]
    fn dev_null_symlink_masks_nothing() {
        let t = Tree::new();
        t.file("/var/lib/extensions/foo.raw")
            .file("/var/lib/extensions/bar.raw");
        assert!(t.node("/dev/null", NodeType::CharacterDevice, 1, 3));
        // "/dev/null" resolves inside the root, to the node just made
        t.link("/dev/null", "/etc/extensions/foo.raw")
            .link("/dev/null", "/etc/extensions/bar");
        let d = t.sysext();
        assert_eq!(names(&d), ["bar", "foo"]);
        assert_eq!(image(&d, "foo").entry, pb("/var/lib/extensions/foo.raw"));
        assert_eq!(image(&d, "bar").entry, pb("/var/lib/extensions/bar.raw"));
        for e in ["/etc/extensions/foo.raw", "/etc/extensions/bar"] {
            let r = reason(&d, e);
            assert!(
                r.starts_with("character device (e.g. a link to /dev/null)"),
                "{r}"
            );
            assert!(r.contains("does not mask anything"), "{r}");
        }
    }

    #[test]
    fn fifo_and_socket_are_not_images() {
        let t = Tree::new();
        t.dir("/run/extensions");
        assert!(t.node("/run/extensions/pipe.raw", NodeType::Fifo, 0, 0));
        let _sock = std::os::unix::net::UnixListener::bind(t.p("/run/extensions/sock")).unwrap();
        let d = t.sysext();
        assert!(d.images.is_empty());
        assert!(reason(&d, "/run/extensions/pipe.raw").starts_with("fifo"));
        assert!(reason(&d, "/run/extensions/sock").starts_with("socket"));
    }

    #[test]
    fn block_device_is_an_image_named_as_is() {
        let t = Tree::new();
        assert!(t.node("/dev/blk0", NodeType::BlockDevice, 7, 0));
        t.node("/run/extensions/disk.raw", NodeType::BlockDevice, 7, 1);
        t.link("/dev/blk0", "/etc/extensions/blk");
        let d = t.sysext();
        let b = image(&d, "blk");
        assert_eq!(b.kind, ImageKind::Block);
        assert_eq!(b.path, pb("/dev/blk0"));
        assert_eq!(b.host_path, t.p("/dev/blk0"));
        // no suffix stripping for block devices
        assert_eq!(image(&d, "disk.raw").kind, ImageKind::Block);
    }

    /// T50:1313: the extension directory lives elsewhere; a relative symlink points to it.
    #[test]
    fn upstream_t50_40_relative_symlink_to_dir() {
        let t = Tree::new();
        t.dir("/var/othername-extension/usr/lib/extension-release.d")
            .link(
                "../../othername-extension",
                "/var/lib/extensions/test-extension",
            );
        let d = t.sysext();
        let c = image(&d, "test-extension");
        assert_eq!(c.kind, ImageKind::Directory);
        assert_eq!(c.entry, pb("/var/lib/extensions/test-extension"));
        assert_eq!(c.path, pb("/var/othername-extension"));
        assert_eq!(c.host_path, t.p("/var/othername-extension"));
    }

    #[test]
    fn upstream_t50_41_absolute_symlink_to_dir() {
        let t = Tree::new();
        t.dir("/var/othername-extension").link(
            "/var/othername-extension",
            "/var/lib/extensions/test-extension",
        );
        let c = t.sysext().images.remove(0);
        assert_eq!(
            (c.name.as_str(), c.kind),
            ("test-extension", ImageKind::Directory)
        );
        assert_eq!(c.path, pb("/var/othername-extension"));
        assert_eq!(c.host_path, t.p("/var/othername-extension"));
    }

    #[test]
    fn upstream_t50_42_relative_symlink_to_raw() {
        let t = Tree::new();
        t.file("/var/othername-extension.raw").link(
            "../../othername-extension.raw",
            "/var/lib/extensions/test-extension.raw",
        );
        let c = t.sysext().images.remove(0);
        assert_eq!(
            (c.name.as_str(), c.kind),
            ("test-extension", ImageKind::Raw)
        );
        assert_eq!(c.entry, pb("/var/lib/extensions/test-extension.raw"));
        assert_eq!(c.path, pb("/var/othername-extension.raw"));
    }

    #[test]
    fn upstream_t50_43_absolute_symlink_to_raw() {
        let t = Tree::new();
        t.file("/var/othername-extension.raw").link(
            "/var/othername-extension.raw",
            "/var/lib/extensions/test-extension.raw",
        );
        let c = t.sysext().images.remove(0);
        assert_eq!(
            (c.name.as_str(), c.kind),
            ("test-extension", ImageKind::Raw)
        );
        assert_eq!(c.path, pb("/var/othername-extension.raw"));
        assert_eq!(c.host_path, t.p("/var/othername-extension.raw"));
    }

    #[test]
    fn absolute_symlink_cannot_escape_root() {
        let t = Tree::new();
        t.file("/store/x.raw")
            .link("/../../../../store/x.raw", "/etc/extensions/x.raw")
            .link("../../../../../../../../store", "/etc/extensions/s");
        let d = t.sysext();
        assert_eq!(image(&d, "x").path, pb("/store/x.raw"));
        assert_eq!(image(&d, "x").host_path, t.p("/store/x.raw"));
        assert_eq!(image(&d, "s").path, pb("/store"));
        for c in &d.images {
            assert!(c.host_path.starts_with(&t.root));
        }
    }

    #[test]
    fn raw_symlink_target_must_end_in_raw() {
        let t = Tree::new();
        t.file("/store/foo-1.2.img")
            .file("/store/bar.raw")
            .link("/store/foo-1.2.img", "/etc/extensions/foo.raw")
            .link("/store/bar.raw", "/etc/extensions/bar");
        let d = t.sysext();
        assert!(d.images.is_empty(), "{d:#?}");
        assert!(reason(&d, "/etc/extensions/foo.raw").contains("does not end in .raw"));
        assert_eq!(reason(&d, "/etc/extensions/bar"), "not a .raw file");
    }

    #[test]
    fn dangling_and_looping_symlinks_are_skipped_with_reasons() {
        let t = Tree::new();
        t.link("/opt/store/missing.raw", "/etc/extensions/gone.raw")
            .link("loop2", "/etc/extensions/loop1")
            .link("loop1", "/etc/extensions/loop2")
            .file("/etc/extensions/ok.raw")
            .file("/store/file")
            .link("/store/file/x", "/etc/extensions/notdir");
        let d = t.sysext();
        assert_eq!(names(&d), ["ok"]);
        assert!(reason(&d, "/etc/extensions/gone.raw")
            .starts_with("dangling symlink to /opt/store/missing.raw"));
        assert!(reason(&d, "/etc/extensions/loop1").contains("too many levels of symbolic links"));
        assert!(reason(&d, "/etc/extensions/loop2").contains("too many levels of symbolic links"));
        assert!(reason(&d, "/etc/extensions/notdir").contains("not a directory"));
    }

    #[test]
    fn broken_search_directory_does_not_block_the_others() {
        let t = Tree::new();
        t.file("/etc/extensions") // a file where a directory is expected
            .link("/run/extensions", "/run/extensions") // a symlink loop
            .file("/var/lib/extensions/ok.raw");
        let d = t.sysext();
        assert_eq!(names(&d), ["ok"]);
        assert!(reason(&d, "/etc/extensions").starts_with("cannot read search directory"));
        assert!(reason(&d, "/run/extensions").starts_with("cannot open search directory"));
    }

    #[test]
    fn search_directory_may_be_a_symlink() {
        let t = Tree::new();
        t.file("/data/ext/a.raw")
            .link("/data/ext", "/etc/extensions");
        let c = t.sysext().images.remove(0);
        assert_eq!(c.entry, pb("/etc/extensions/a.raw"));
        assert_eq!(c.search_dir, pb("/etc/extensions"));
        assert_eq!(c.path, pb("/data/ext/a.raw"));
    }

    #[test]
    fn empty_directory_is_still_a_candidate() {
        let t = Tree::new();
        t.dir("/run/extensions/empty");
        let c = t.sysext().images.remove(0);
        assert_eq!((c.name.as_str(), c.kind), ("empty", ImageKind::Directory));
    }

    #[test]
    fn layer_order_is_strverscmp_highest_last() {
        let t = Tree::new();
        t.file("/etc/extensions/a_10.raw")
            .file("/run/extensions/a_9.raw")
            .dir("/var/lib/extensions/a_9.1")
            .file("/var/lib/extensions/b.raw")
            .file("/etc/extensions/a_1.0~rc1.raw")
            .file("/etc/extensions/a_1.0.raw");
        let d = t.sysext();
        assert_eq!(
            names(&d),
            ["a_1.0~rc1", "a_1.0", "a_9", "a_9.1", "a_10", "b"]
        );
    }

    #[test]
    fn sort_layers_breaks_strverscmp_ties_by_bytes() {
        let c = |n: &str| Candidate {
            name: n.into(),
            kind: ImageKind::Raw,
            entry: pb("/e"),
            path: pb("/e"),
            host_path: pb("/e"),
            search_dir: pb("/"),
        };
        // "foo_1" and "foo1" compare equal under strverscmp_improved
        let mut v = vec![c("foo_1"), c("foo1"), c("a"), c("foo_01")];
        sort_layers(&mut v);
        let got: Vec<_> = v.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(got, ["a", "foo1", "foo_01", "foo_1"]);
    }

    #[test]
    fn same_name_in_one_directory_first_by_file_name_wins() {
        let t = Tree::new();
        t.file("/etc/extensions/foo.raw")
            .file("/etc/extensions/foo.sysext.raw")
            .dir("/etc/extensions/foo")
            .file("/run/extensions/bar.sysext.raw")
            .file("/run/extensions/bar.raw");
        let d = t.sysext();
        assert_eq!(image(&d, "foo").entry, pb("/etc/extensions/foo"));
        assert_eq!(image(&d, "bar").entry, pb("/run/extensions/bar.raw"));
        for e in ["/etc/extensions/foo.raw", "/etc/extensions/foo.sysext.raw"] {
            let r = reason(&d, e);
            assert!(
                r.contains("/etc/extensions/foo,") && r.contains("sorts first"),
                "{r}"
            );
        }
        assert!(reason(&d, "/run/extensions/bar.sysext.raw").contains("/run/extensions/bar.raw"));
    }

    #[test]
    fn image_names() {
        for ok in [
            "foo",
            ".foo",
            "foo_1.2",
            "a b",
            "ü",
            "x".repeat(255).as_str(),
            "\u{80}",
        ] {
            assert!(image_name_is_valid(ok), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".#foo",
            "a/b",
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "\u{fdd0}",
            "\u{fffe}",
            "a\u{1ffff}",
            "x".repeat(256).as_str(),
        ] {
            assert!(!image_name_is_valid(bad), "{bad:?}");
        }
    }

    // T50:1391-1588, vpick: all are expected to merge as "test-extension".

    fn vpick_one(t: &Tree) -> Candidate {
        let d = t.sysext();
        assert_eq!(names(&d), ["test-extension"], "{d:#?}");
        d.images.into_iter().next().unwrap()
    }

    #[test]
    fn upstream_t50_44_vpick_dir() {
        let t = Tree::new();
        t.dir("/var/lib/extensions/test-extension.v/test-extension_1.0");
        let c = vpick_one(&t);
        assert_eq!(c.kind, ImageKind::Directory);
        assert_eq!(c.entry, pb("/var/lib/extensions/test-extension.v"));
        assert_eq!(
            c.path,
            pb("/var/lib/extensions/test-extension.v/test-extension_1.0")
        );
    }

    #[test]
    fn upstream_t50_45_vpick_image() {
        let t = Tree::new();
        t.file("/var/lib/extensions/test-extension.raw.v/test-extension_1.0.raw");
        let c = vpick_one(&t);
        assert_eq!(c.kind, ImageKind::Raw);
        assert_eq!(c.entry, pb("/var/lib/extensions/test-extension.raw.v"));
        assert_eq!(
            c.path,
            pb("/var/lib/extensions/test-extension.raw.v/test-extension_1.0.raw")
        );
    }

    #[test]
    fn upstream_t50_46_vpick_dir_v_relative_symlink() {
        let t = Tree::new();
        t.dir("/var/test-extension-vpick/test-extension_1.0").link(
            "../../test-extension-vpick",
            "/var/lib/extensions/test-extension.v",
        );
        let c = vpick_one(&t);
        assert_eq!(c.kind, ImageKind::Directory);
        assert_eq!(c.path, pb("/var/test-extension-vpick/test-extension_1.0"));
    }

    #[test]
    fn upstream_t50_47_vpick_dir_v_absolute_symlink() {
        let t = Tree::new();
        t.dir("/var/test-extension-vpick/test-extension_1.0").link(
            "/var/test-extension-vpick",
            "/var/lib/extensions/test-extension.v",
        );
        let c = vpick_one(&t);
        assert_eq!(c.path, pb("/var/test-extension-vpick/test-extension_1.0"));
        assert_eq!(
            c.host_path,
            t.p("/var/test-extension-vpick/test-extension_1.0")
        );
    }

    #[test]
    fn upstream_t50_48_vpick_image_v_relative_symlink() {
        let t = Tree::new();
        t.file("/var/test-extension-vpick/test-extension_1.0.raw")
            .link(
                "../../test-extension-vpick",
                "/var/lib/extensions/test-extension.raw.v",
            );
        let c = vpick_one(&t);
        assert_eq!(c.kind, ImageKind::Raw);
        assert_eq!(
            c.path,
            pb("/var/test-extension-vpick/test-extension_1.0.raw")
        );
    }

    #[test]
    fn upstream_t50_49_vpick_image_v_absolute_symlink() {
        let t = Tree::new();
        t.file("/var/test-extension-vpick/test-extension_1.0.raw")
            .link(
                "/var/test-extension-vpick",
                "/var/lib/extensions/test-extension.raw.v",
            );
        let c = vpick_one(&t);
        assert_eq!(c.kind, ImageKind::Raw);
        assert_eq!(
            c.path,
            pb("/var/test-extension-vpick/test-extension_1.0.raw")
        );
    }

    #[test]
    fn upstream_t50_50_vpick_dir_relative_symlink_inside() {
        let t = Tree::new();
        t.dir("/var/othername-extension").link(
            "../../../othername-extension",
            "/var/lib/extensions/test-extension.v/test-extension_1.0",
        );
        let c = vpick_one(&t);
        assert_eq!(c.kind, ImageKind::Directory);
        assert_eq!(c.path, pb("/var/othername-extension"));
    }

    #[test]
    fn upstream_t50_51_vpick_dir_absolute_symlink_inside() {
        let t = Tree::new();
        t.dir("/var/othername-extension").link(
            "/var/othername-extension",
            "/var/lib/extensions/test-extension.v/test-extension_1.0",
        );
        let c = vpick_one(&t);
        assert_eq!(c.path, pb("/var/othername-extension"));
        assert_eq!(c.host_path, t.p("/var/othername-extension"));
    }

    #[test]
    fn upstream_t50_52_vpick_image_relative_symlink_inside() {
        let t = Tree::new();
        t.file("/var/othername-extension.raw").link(
            "../../../othername-extension.raw",
            "/var/lib/extensions/test-extension.raw.v/test-extension_1.0.raw",
        );
        let c = vpick_one(&t);
        assert_eq!(c.kind, ImageKind::Raw);
        assert_eq!(c.path, pb("/var/othername-extension.raw"));
    }

    #[test]
    fn upstream_t50_53_vpick_image_absolute_symlink_inside() {
        let t = Tree::new();
        t.file("/var/othername-extension.raw").link(
            "/var/othername-extension.raw",
            "/var/lib/extensions/test-extension.raw.v/test-extension_1.0.raw",
        );
        let c = vpick_one(&t);
        assert_eq!(c.kind, ImageKind::Raw);
        assert_eq!(c.path, pb("/var/othername-extension.raw"));
        assert_eq!(c.host_path, t.p("/var/othername-extension.raw"));
    }

    #[test]
    fn vpick_highest_version_wins_and_name_has_no_version() {
        let t = Tree::new();
        for v in ["1.9", "1.10", "1.2", "2.0~rc1"] {
            t.dir(&format!("/etc/extensions/foo.v/foo_{v}"));
        }
        t.file("/etc/extensions/foo.v/foo_3.0"); // wrong type: passed over
        t.file("/etc/extensions/img.sysext.raw.v/img_1.sysext.raw")
            .file("/etc/extensions/img.sysext.raw.v/img_2.sysext.raw")
            .file("/etc/extensions/img.sysext.raw.v/img_3.raw"); // lacks the class suffix
        let d = t.sysext();
        assert_eq!(names(&d), ["foo", "img"]);
        // '~' is not a valid vpick version character, so 2.0~rc1 is ignored
        assert_eq!(image(&d, "foo").path, pb("/etc/extensions/foo.v/foo_1.10"));
        assert_eq!(
            image(&d, "img").path,
            pb("/etc/extensions/img.sysext.raw.v/img_2.sysext.raw")
        );
    }

    #[test]
    fn vpick_shadows_and_is_shadowed_by_name() {
        let t = Tree::new();
        t.dir("/etc/extensions/foo.v/foo_1")
            .file("/run/extensions/foo.raw")
            .file("/etc/extensions/bar.raw")
            .file("/run/extensions/bar.raw.v/bar_5.raw");
        let d = t.sysext();
        assert_eq!(image(&d, "foo").entry, pb("/etc/extensions/foo.v"));
        assert_eq!(
            reason(&d, "/run/extensions/foo.raw"),
            "shadowed by /etc/extensions/foo.v"
        );
        assert_eq!(
            reason(&d, "/run/extensions/bar.raw.v"),
            "shadowed by /etc/extensions/bar.raw"
        );
    }

    #[test]
    fn vpick_without_usable_entry_is_skipped_and_does_not_claim_the_name() {
        let t = Tree::new();
        t.dir("/etc/extensions/foo.v")
            .file("/etc/extensions/foo.v/foo_1.raw") // a file, but a directory is wanted
            .dir("/etc/extensions/bar.raw.v/bar_1.raw") // a directory, but a file is wanted
            .dir("/etc/extensions/.sysext.v/_1")
            .link("/nowhere", "/etc/extensions/baz.v/baz_2")
            .dir("/etc/extensions/baz.v/baz_1")
            .file("/run/extensions/foo.raw");
        let d = t.sysext();
        assert_eq!(names(&d), ["foo"]);
        assert_eq!(image(&d, "foo").entry, pb("/run/extensions/foo.raw"));
        assert!(reason(&d, "/etc/extensions/foo.v").contains("no directory named foo_<version>"));
        assert!(reason(&d, "/etc/extensions/bar.raw.v")
            .contains("no regular file or block device named bar_<version>.raw"));
        assert!(reason(&d, "/etc/extensions/.sysext.v").starts_with("invalid versioned image name"));
        // like systemd, a dangling entry matching the pattern fails the whole .v
        let r = reason(&d, "/etc/extensions/baz.v");
        assert!(
            r.starts_with("cannot pick a version") && r.contains("baz_2"),
            "{r}"
        );
    }

    #[test]
    fn vpick_foreign_architecture_is_ignored() {
        let t = Tree::new();
        let foreign = if vpick::native_architecture() == "sparc" {
            "ia64"
        } else {
            "sparc"
        };
        let native = vpick::native_architecture();
        t.dir(&format!("/etc/extensions/foo.v/foo_9_{foreign}"))
            .dir(&format!("/etc/extensions/foo.v/foo_2_{native}"))
            .dir("/etc/extensions/foo.v/foo_2");
        let c = t.sysext().images.remove(0);
        assert_eq!(
            c.path,
            PathBuf::from(format!("/etc/extensions/foo.v/foo_2_{native}"))
        );
    }

    #[test]
    fn serializes_for_json_output() {
        let t = Tree::new();
        t.file("/etc/extensions/a.raw")
            .file("/etc/extensions/b.txt");
        let json = serde_json::to_value(t.sysext()).unwrap();
        assert_eq!(json["images"][0]["kind"], "raw");
        assert_eq!(json["images"][0]["name"], "a");
        assert_eq!(json["skipped"][0]["entry"], "/etc/extensions/b.txt");
    }
}
