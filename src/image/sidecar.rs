//! Verity data stored next to an image, found the way systemd's `verity_settings_load()`
//! (`src/shared/dissect-image.c`) finds it: root hash in an xattr or a `.roothash` /
//! `.usrhash` file, a `.roothash.p7s` / `.usrhash.p7s` signature and a `.verity` hash tree.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::ddi::Designator;
use crate::kernel::root::{proc_fd_path, Found, Root};
use crate::limits;
use crate::ondisk::bytes::hex;
use crate::ondisk::verity::parse_roothash;

/// What was found next to an image.
#[derive(Debug, Default)]
pub struct VeritySidecars {
    /// Which file system the hash is for, and the root hash as lowercase hex.
    pub roothash: Option<(Designator, String)>,
    /// DER PKCS#7 signature of the root hash (only looked for when a root hash was found).
    pub signature: Option<Vec<u8>>,
    /// The `.verity` hash tree file (for images without a partition table), open.
    pub verity_data: Option<HashTree>,
}

/// A `.verity` sidecar, opened inside the root.
#[derive(Debug)]
pub struct HashTree {
    /// The open file.
    pub file: std::fs::File,
    /// How messages name it.
    pub shown: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// `build_auxiliary_path()`: replace a trailing `.raw` with `suffix`, or append it.
pub fn auxiliary_path(image: &Path, suffix: &str) -> PathBuf {
    let mut bytes = image.as_os_str().to_owned().into_vec();
    if bytes.ends_with(b".raw") {
        bytes.truncate(bytes.len() - 4);
    }
    bytes.extend_from_slice(suffix.as_bytes());
    PathBuf::from(OsString::from_vec(bytes))
}

/// `$SYSTEMD_DISSECT_VERITY_SIDECAR=0` turns the lookup off, as in systemd.
fn sidecars_enabled() -> bool {
    match std::env::var("SYSTEMD_DISSECT_VERITY_SIDECAR") {
        Ok(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "no" | "n" | "false" | "f" | "off"
        ),
        Err(_) => true,
    }
}

/// An xattr of the image, `None` when absent or when the file system has no xattrs.
fn read_xattr(root: &Root, image: &Found, name: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    // An O_PATH fd has no xattr calls of its own: its magic link reaches exactly its inode.
    let path = proc_fd_path(image.fd.as_fd());
    loop {
        match rustix::fs::getxattr(&path, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(e) if e == rustix::io::Errno::RANGE && buf.len() < 64 * 1024 => {
                buf.resize(buf.len() * 4, 0);
            }
            Err(e)
                if e == rustix::io::Errno::NODATA
                    || e == rustix::io::Errno::NOTSUP
                    || e == rustix::io::Errno::NOENT =>
            {
                return Ok(None)
            }
            Err(e) => {
                return Err(std::io::Error::from(e)).with_context(|| {
                    format!(
                        "reading xattr {name} of {}",
                        root.show(&image.in_root).display()
                    )
                })
            }
        }
    }
}

/// The first line of a sidecar file (`read_one_line_file()`), `None` if it does not exist.
fn read_first_line(root: &Root, path: &Path) -> Result<Option<String>> {
    Ok(root
        .read_optional(path, limits::ROOTHASH_FILE)?
        .map(|bytes| {
            let line = bytes
                .split(|&b| b == b'\n' || b == b'\r' || b == 0)
                .next()
                .unwrap_or_default();
            String::from_utf8_lossy(line).into_owned()
        }))
}

/// The directory an image is in, for [`surely_absent`]; `None` when it cannot be had (then
/// every sidecar is looked up in full).
fn image_dir(root: &Root, image: &Found) -> Option<Found> {
    root.resolve(image.in_root.parent()?).ok()
}

/// Whether the sidecar `path` surely does not exist: its directory (the image's, resolved in
/// the root) has no entry by its name. One lookup instead of a walk of the whole path; anything
/// else (it exists, a link, an error) is left to the full lookup, which decides as always.
fn surely_absent(dir: Option<&Found>, path: &Path) -> bool {
    match (dir, path.file_name()) {
        (Some(dir), Some(name)) => dir.surely_lacks(name),
        _ => false,
    }
}

/// Look for a root hash for one designator: xattr first, then the sidecar file.
fn find_hash(
    root: &Root,
    image: &Found,
    dir: Option<&Found>,
    d: Designator,
) -> Result<Option<(String, String)>> {
    let (xattr, suffix) = match d {
        Designator::Root => ("user.verity.roothash", ".roothash"),
        Designator::Usr => ("user.verity.usrhash", ".usrhash"),
    };
    if let Some(v) = read_xattr(root, image, xattr)? {
        let source = format!("xattr {xattr} of {}", root.show(&image.in_root).display());
        return Ok(Some((String::from_utf8_lossy(&v).into_owned(), source)));
    }
    let file = auxiliary_path(&image.in_root, suffix);
    if surely_absent(dir, &file) {
        return Ok(None);
    }
    Ok(read_first_line(root, &file)?.map(|text| (text, root.show(&file).display().to_string())))
}

/// A `.p7s` signature file; an empty one is refused like systemd does (EINVAL).
fn read_signature(root: &Root, path: &Path) -> Result<Option<Vec<u8>>> {
    match root.read_optional(path, limits::SIGNATURE_FILE)? {
        Some(b) if b.is_empty() => bail!("signature file {} is empty", root.show(path).display()),
        other => Ok(other),
    }
}

/// Collect the verity sidecars of `image` (resolved inside `root`), looking next to it.
pub fn load(root: &Root, image: &Found) -> Result<VeritySidecars> {
    let mut out = VeritySidecars::default();
    if !sidecars_enabled() {
        return Ok(out);
    }
    let dir = image_dir(root, image);
    for d in [Designator::Root, Designator::Usr] {
        if let Some((text, source)) = find_hash(root, image, dir.as_ref(), d)? {
            let bytes =
                parse_roothash(&text).with_context(|| format!("invalid root hash in {source}"))?;
            out.roothash = Some((d, hex(&bytes)));
            break;
        }
    }

    if let Some((d, _)) = &out.roothash {
        let suffix = match d {
            Designator::Root => ".roothash.p7s",
            Designator::Usr => ".usrhash.p7s",
        };
        out.signature = read_signature(root, &auxiliary_path(&image.in_root, suffix))?;
    }

    let verity = auxiliary_path(&image.in_root, ".verity");
    if surely_absent(dir.as_ref(), &verity) {
        return Ok(out);
    }
    // access(F_OK) in systemd: a dangling link counts as absent.
    if let Some((file, found)) = root.open_read_optional(&verity)? {
        out.verity_data = Some(HashTree {
            file,
            shown: root.show(&found.in_root),
            size: found.stat.st_size as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auxiliary_path_replaces_raw_or_appends() {
        assert_eq!(
            auxiliary_path(Path::new("/x/a.raw"), ".verity"),
            Path::new("/x/a.verity")
        );
        assert_eq!(
            auxiliary_path(Path::new("/x/a.img"), ".verity"),
            Path::new("/x/a.img.verity")
        );
        assert_eq!(
            auxiliary_path(Path::new("/x/a"), ".roothash.p7s"),
            Path::new("/x/a.roothash.p7s")
        );
        // only a trailing .raw counts, and it is case-sensitive like endswith()
        assert_eq!(
            auxiliary_path(Path::new("/x/a.raw.RAW"), ".usrhash"),
            Path::new("/x/a.raw.RAW.usrhash")
        );
    }

    /// Sidecars are links as often as files: the one-name check for an absent sidecar must
    /// leave a link to the full lookup, which follows it inside the root only — a link out of
    /// the root finds nothing, a link inside finds its target.
    #[test]
    fn sidecar_links_resolve_inside_the_root_only() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        let hash = "ab".repeat(32);
        std::fs::write(outside.path().join("h"), format!("{hash}\n")).unwrap();
        std::fs::write(outside.path().join("v"), "tree").unwrap();
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("var/lib/extensions");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.raw"), "image").unwrap();
        symlink(outside.path().join("h"), dir.join("a.roothash")).unwrap();
        let up = "../".repeat(12);
        let rel_out = format!("{up}{}", outside.path().join("v").display());
        symlink(&rel_out, dir.join("a.verity")).unwrap();
        let root = Root::open(t.path()).unwrap();
        let image = root
            .resolve(Path::new("/var/lib/extensions/a.raw"))
            .unwrap();
        let got = load(&root, &image).unwrap();
        assert!(
            got.roothash.is_none(),
            "read through a link out of the root"
        );
        assert!(
            got.verity_data.is_none(),
            "opened through a link out of the root"
        );
        // The same links' targets placed inside the root are found through them.
        let inside = t.path().join(outside.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("h"), format!("{hash}\n")).unwrap();
        std::fs::write(inside.join("v"), "tree").unwrap();
        let got = load(&root, &image).unwrap();
        assert_eq!(got.roothash, Some((Designator::Root, hash)));
        assert_eq!(got.verity_data.map(|v| v.size), Some(4));
    }
}
