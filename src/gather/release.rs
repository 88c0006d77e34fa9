//! What an extension tree says about itself, read through a [`Root`] on the tree (a directory
//! extension or a mounted image): its extension-release file (systemd's
//! `open_extension_release_at()` lookup), whether it ships `usr/lib/os-release` or a meta
//! directory, whether it is empty. The decision is [`crate::decide::release::judge`].

use crate::class::ImageClass;
use crate::decide::mutable::parse_boolean;
use crate::decide::release::{
    image_name_is_valid, pick_release_file, pick_release_file_relaxed, release_suffix,
    ReleaseCandidate, ReleaseData, TreeFacts, RELEASE_PREFIX,
};
use crate::gather::discover::list_dir;
use crate::kernel::root::{file_type_name, proc_fd_path, Found, Root};
use crate::ondisk::envfile::parse_env_strict;
use anyhow::{anyhow, bail, Context, Result};
use rustix::fs::FileType;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

const STRICT_XATTR: &str = "user.extension-release.strict";

/// Read an env file (os-release syntax) found in `root`, at most `limit` bytes: where it
/// resolved to (in-root) and its data. Warnings about left-out entries are logged; a file
/// systemd refuses entirely is an error naming it.
pub fn read_env(root: &Root, path: &Path, limit: u64) -> Result<Option<(PathBuf, ReleaseData)>> {
    let Some((file, found)) = root.open_read_optional(path)? else {
        return Ok(None);
    };
    let shown = root.show(&found.in_root);
    let bytes = crate::kernel::root::read_bounded(file, limit)
        .with_context(|| format!("reading {}", shown.display()))?;
    match parse_env_strict(&bytes) {
        Ok((data, warnings)) => {
            for w in warnings {
                tracing::warn!("{}:{}: {}", shown.display(), w.line, w.message);
            }
            Ok(Some((found.in_root, data)))
        }
        Err(w) => bail!(
            "{}:{}: {} (systemd refuses such a file entirely)",
            shown.display(),
            w.line,
            w.message
        ),
    }
}

/// Parsed `user.extension-release.strict` xattr; None when absent, unreadable or not a boolean.
fn read_strict_xattr(found: &Found) -> Option<bool> {
    // Longer values cannot be a boolean anyway, so ERANGE simply means "not false".
    let mut buf = [0u8; 256];
    // An O_PATH fd has no xattr calls of its own: its magic link reaches exactly its inode.
    let n =
        rustix::fs::getxattr(proc_fd_path(found.fd.as_fd()), STRICT_XATTR, &mut buf[..]).ok()?;
    // One trailing NUL is tolerated, an embedded one is not (getxattr_at_malloc: EBADMSG).
    let v = buf[..n].strip_suffix(b"\0").unwrap_or(&buf[..n]);
    if v.contains(&0) {
        return None;
    }
    parse_boolean(std::str::from_utf8(v).ok()?)
}

/// Locate the extension-release file of image `name` inside `tree` the way systemd does.
pub fn find_extension_release(
    tree: &Root,
    class: ImageClass,
    name: &str,
) -> Result<Option<PathBuf>> {
    find_release(tree, class, name, false)
}

/// The same with systemd's relaxed fallback (any single candidate), which its service-manager
/// reload uses on the merged tree.
pub fn find_extension_release_relaxed(
    tree: &Root,
    class: ImageClass,
    name: &str,
) -> Result<Option<PathBuf>> {
    find_release(tree, class, name, true)
}

fn find_release(
    tree: &Root,
    class: ImageClass,
    name: &str,
    relax: bool,
) -> Result<Option<PathBuf>> {
    if !image_name_is_valid(name) {
        bail!("'{name}' is not a valid image name, so it has no extension-release file");
    }
    let exact = PathBuf::from(format!("/{}/{RELEASE_PREFIX}{name}", class.release_dir()));
    // Like systemd's flagless chaseat(): any existing inode wins, only ENOENT falls back to the scan.
    if tree
        .resolve_optional(&exact)
        .map_err(anyhow::Error::new)?
        .is_some()
    {
        return Ok(Some(exact));
    }
    let dir_path = PathBuf::from(format!("/{}", class.release_dir()));
    let dir = match tree
        .resolve_optional(&dir_path)
        .map_err(anyhow::Error::new)?
    {
        Some(d) if d.is_dir() => d,
        _ => return Ok(None),
    };
    let shown = tree.show(&dir.in_root);
    let mut candidates = Vec::new();
    for file_name in list_dir(&dir).with_context(|| format!("cannot list {}", shown.display()))? {
        let Some(file_name) = file_name
            .to_str()
            .filter(|n| release_suffix(n).is_some())
            .map(str::to_owned)
        else {
            continue;
        };
        // The scan never follows symlinks (systemd opens O_NOFOLLOW and insists on a regular file).
        let entry = tree
            .resolve_nofollow(&dir.in_root.join(&file_name))
            .map_err(anyhow::Error::new)?;
        if entry.file_type() == FileType::RegularFile {
            candidates.push(ReleaseCandidate {
                // The relaxed lookup takes any candidate: its xattr does not matter.
                strict: if relax {
                    None
                } else {
                    read_strict_xattr(&entry)
                },
                file_name,
            });
        }
    }
    let pick = if relax {
        pick_release_file_relaxed
    } else {
        pick_release_file
    };
    match pick(name, false, &candidates) {
        Ok(found) => Ok(found.map(|f| dir.in_root.join(f))),
        Err(msg) => Err(anyhow!("{msg} (in {})", shown.display())),
    }
}

/// Find and parse the extension-release file of image `name`; Ok(None) if the image has none.
pub fn load_extension_release(
    tree: &Root,
    class: ImageClass,
    name: &str,
) -> Result<Option<(PathBuf, ReleaseData)>> {
    let Some(path) = find_extension_release(tree, class, name)? else {
        return Ok(None);
    };
    let (_, data) = read_env(tree, &path, crate::limits::RELEASE_FILE)?
        .ok_or_else(|| anyhow!("{} vanished while being read", tree.show(&path).display()))?;
    Ok(Some((path, data)))
}

/// What the tree has at `usr/lib/os-release` (not following a final symlink: a link, dangling
/// or not, is forbidden content too); `None` when nothing is there.
fn os_release_entry(tree: &Root) -> Result<Option<String>, String> {
    match tree.resolve_nofollow(Path::new("/usr/lib/os-release")) {
        Ok(f) => Ok(Some(format!("a {}", file_type_name(f.file_type())))),
        Err(e) if e.is_not_found() => Ok(None),
        // usr or usr/lib is something else than a directory: nothing can be at the path.
        Err(crate::kernel::root::ChaseError::NotADirectory { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The meta directory `tree` ships at one of `hierarchies` (`usr/.systemd-sysext`), if any.
fn shipped_meta(tree: &Root, class: ImageClass, hierarchies: &[PathBuf]) -> Option<String> {
    hierarchies.iter().find_map(|h| {
        let p = h.join(class.meta_dir_name());
        tree.resolve_nofollow(&p)
            .ok()
            .map(|_| p.display().to_string().trim_start_matches('/').to_string())
    })
}

/// Everything [`crate::decide::release::judge`] needs about the tree of extension `name`.
pub fn tree_facts(
    tree: &Root,
    class: ImageClass,
    name: &str,
    hierarchies: &[PathBuf],
) -> TreeFacts {
    let empty = tree
        .top()
        .ok()
        .and_then(|t| list_dir(&t).ok())
        .is_some_and(|l| l.is_empty());
    TreeFacts {
        release: load_extension_release(tree, class, name)
            .map(|r| r.map(|(_, d)| d))
            .map_err(|e| format!("{e:#}")),
        release_dir: class.release_dir().to_string(),
        os_release: os_release_entry(tree),
        ships_meta: shipped_meta(tree, class, hierarchies),
        empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use ImageClass::{Confext, Sysext};

    const SYS_DIR: &str = "usr/lib/extension-release.d";

    fn write(path: &Path, text: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn set_strict(path: &Path, value: &[u8]) {
        rustix::fs::setxattr(path, STRICT_XATTR, value, rustix::fs::XattrFlags::empty()).unwrap();
    }

    fn data(pairs: &[(&str, &str)]) -> ReleaseData {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn find_exact_and_symlinks_stay_inside_the_image() {
        let t = tempfile::tempdir().unwrap();
        let img = t.path();
        write(&img.join("real.d/extension-release.foo"), b"ID=_any\n");
        fs::create_dir_all(img.join("usr/lib")).unwrap();
        // An absolute symlink must resolve inside the image, never on the host.
        symlink("/real.d", img.join(SYS_DIR)).unwrap();
        let tree = Root::open(img).unwrap();
        let (_, d) = load_extension_release(&tree, Sysext, "foo")
            .unwrap()
            .unwrap();
        assert_eq!(d, data(&[("ID", "_any")]));
        let escape = "../../../../../../real.d/extension-release.foo";
        symlink(escape, img.join("real.d/extension-release.bar")).unwrap();
        let (_, d) = load_extension_release(&tree, Sysext, "bar")
            .unwrap()
            .unwrap();
        assert_eq!(d, data(&[("ID", "_any")]));
        assert_eq!(
            find_extension_release(&tree, Confext, "foo").unwrap(),
            None,
            "confext has its own dir"
        );
    }

    #[test]
    fn find_fallback_scan() {
        let t = tempfile::tempdir().unwrap();
        let (img, dir) = (t.path(), t.path().join(SYS_DIR));
        let tree = Root::open(img).unwrap();
        let find = |name: &str| find_extension_release(&tree, Sysext, name);
        let in_dir = |n: &str| Path::new("/").join(SYS_DIR).join(n);
        write(&dir.join("extension-release.foo"), b"ID=a\n");
        assert_eq!(
            find("foo_1.2").unwrap(),
            Some(in_dir("extension-release.foo")),
            "stem"
        );
        let renamed = dir.join("extension-release.renamed");
        write(&renamed, b"ID=b\n");
        set_strict(&renamed, b"1");
        assert_eq!(find("zzz").unwrap(), None, "xattr true is skipped");
        set_strict(&renamed, b"no\0");
        assert_eq!(
            find("zzz").unwrap(),
            Some(in_dir("extension-release.renamed")),
            "xattr false"
        );
        let err = format!("{:#}", find("foo_9").unwrap_err());
        assert!(
            err.contains("extension-release.foo,") && err.contains("extension-release.renamed"),
            "{err}"
        );
        // A dangling exact symlink falls back to the scan.
        symlink("/nowhere", dir.join("extension-release.zzz")).unwrap();
        assert_eq!(
            find("zzz").unwrap(),
            Some(in_dir("extension-release.renamed"))
        );
        // The scan never uses symlinked candidates.
        fs::remove_file(&renamed).unwrap();
        symlink("extension-release.foo", dir.join("extension-release.lnk")).unwrap();
        assert_eq!(find("lnk_1").unwrap(), None);
    }

    #[test]
    fn find_confext_and_non_regular_exact_match() {
        let t = tempfile::tempdir().unwrap();
        let img = t.path();
        write(
            &img.join("etc/extension-release.d/extension-release.cfg"),
            b"ID=x\n",
        );
        let tree = Root::open(img).unwrap();
        assert!(load_extension_release(&tree, Confext, "cfg")
            .unwrap()
            .is_some());
        // Like systemd, an exact name that exists as a directory is chosen and then fails to read.
        fs::create_dir_all(img.join(SYS_DIR).join("extension-release.d1")).unwrap();
        assert!(find_extension_release(&tree, Sysext, "d1")
            .unwrap()
            .is_some());
        let e = format!(
            "{:#}",
            load_extension_release(&tree, Sysext, "d1").unwrap_err()
        );
        assert!(e.contains("not a regular file (directory)"), "{e}");
        // A huge release file is refused, naming the file and the cap.
        write(
            &img.join(SYS_DIR).join("extension-release.big"),
            &vec![b'#'; 100_000],
        );
        let e = format!(
            "{:#}",
            load_extension_release(&tree, Sysext, "big").unwrap_err()
        );
        assert!(
            e.contains("extension-release.big") && e.contains("65536 bytes"),
            "{e}"
        );
    }

    #[test]
    fn os_release_in_an_extension_is_forbidden_whatever_it_is() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let usr = r.join("usr/lib/os-release");
        write(&r.join("etc/os-release"), b"ID=x\n");
        let tree = Root::open(r).unwrap();
        assert_eq!(os_release_entry(&tree), Ok(None), "etc/os-release is fine");
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("/etc/missing", &usr).unwrap();
        assert_eq!(
            os_release_entry(&tree),
            Ok(Some("a symbolic link".into())),
            "a dangling link is forbidden too"
        );
        fs::remove_file(&usr).unwrap();
        write(&usr, b"ID=x\n");
        assert_eq!(os_release_entry(&tree), Ok(Some("a regular file".into())));
        // usr as a file: nothing can be at usr/lib/os-release.
        let t2 = tempfile::tempdir().unwrap();
        write(&t2.path().join("usr"), b"");
        assert_eq!(os_release_entry(&Root::open(t2.path()).unwrap()), Ok(None));
    }

    #[test]
    fn an_extension_shipping_meta_files_is_noticed() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("usr/.systemd-sysext/work_dir"), b"../../x\n");
        let tree = Root::open(t.path()).unwrap();
        let hs = [PathBuf::from("/usr"), PathBuf::from("/opt")];
        assert_eq!(
            shipped_meta(&tree, Sysext, &hs).as_deref(),
            Some("usr/.systemd-sysext")
        );
        assert_eq!(shipped_meta(&tree, Confext, &[PathBuf::from("/etc")]), None);
    }
}
