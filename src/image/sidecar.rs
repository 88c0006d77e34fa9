//! Verity data stored next to an image, found the way systemd's `verity_settings_load()`
//! (`src/shared/dissect-image.c`) finds it: root hash in an xattr or a `.roothash` /
//! `.usrhash` file, a `.roothash.p7s` / `.usrhash.p7s` signature and a `.verity` hash tree.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::ddi::Designator;
use crate::ondisk::verity::{parse_roothash, to_hex};

/// What was found next to an image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VeritySidecars {
    /// Which file system the hash is for, and the root hash as lowercase hex.
    pub roothash: Option<(Designator, String)>,
    /// DER PKCS#7 signature of the root hash (only looked for when a root hash was found).
    pub signature: Option<Vec<u8>>,
    /// The `.verity` hash tree file (for images without a partition table).
    pub verity_data: Option<PathBuf>,
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

/// An xattr's value, `None` when absent or when the file system has no xattrs.
fn read_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::getxattr(path, name, &mut buf) {
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
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("reading xattr {name} of {}", path.display()))
            }
        }
    }
}

/// The first line of a file (`read_one_line_file()`), `None` if the file does not exist.
fn read_first_line(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let line = bytes
                .split(|&b| b == b'\n' || b == b'\r' || b == 0)
                .next()
                .unwrap_or_default();
            Ok(Some(String::from_utf8_lossy(line).into_owned()))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Look for a root hash for one designator: xattr first, then the sidecar file.
fn find_hash(image: &Path, d: Designator) -> Result<Option<(String, String)>> {
    let (xattr, suffix) = match d {
        Designator::Root => ("user.verity.roothash", ".roothash"),
        Designator::Usr => ("user.verity.usrhash", ".usrhash"),
    };
    if let Some(v) = read_xattr(image, xattr)? {
        let source = format!("xattr {xattr} of {}", image.display());
        return Ok(Some((String::from_utf8_lossy(&v).into_owned(), source)));
    }
    let file = auxiliary_path(image, suffix);
    Ok(read_first_line(&file)?.map(|text| (text, file.display().to_string())))
}

/// A `.p7s` signature file; an empty one is refused like systemd does (EINVAL).
fn read_signature(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) if b.is_empty() => bail!("signature file {} is empty", path.display()),
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn is_device_path(p: &Path) -> bool {
    p.starts_with("/dev") || p.starts_with("/sys")
}

/// Collect the verity sidecars of `image`, looking next to the path it resolves to.
///
/// Symlinks are followed on the host, so under `--root` pass the path already resolved
/// inside the root (`crate::chase`). Device paths get no sidecars, as in systemd.
pub fn load(image: &Path) -> Result<VeritySidecars> {
    let mut out = VeritySidecars::default();
    if is_device_path(image) || !sidecars_enabled() {
        return Ok(out);
    }
    let image = std::fs::canonicalize(image)
        .with_context(|| format!("resolving image path {}", image.display()))?;
    if is_device_path(&image) {
        return Ok(out);
    }

    for d in [Designator::Root, Designator::Usr] {
        if let Some((text, source)) = find_hash(&image, d)? {
            let bytes =
                parse_roothash(&text).with_context(|| format!("invalid root hash in {source}"))?;
            out.roothash = Some((d, to_hex(&bytes)));
            break;
        }
    }

    if let Some((d, _)) = &out.roothash {
        let suffix = match d {
            Designator::Root => ".roothash.p7s",
            Designator::Usr => ".usrhash.p7s",
        };
        out.signature = read_signature(&auxiliary_path(&image, suffix))?;
    }

    let verity = auxiliary_path(&image, ".verity");
    // access(F_OK) in systemd: a dangling link counts as absent.
    match std::fs::metadata(&verity) {
        Ok(_) => out.verity_data = Some(verity),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking for {}", verity.display())),
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

    #[test]
    fn device_paths_get_nothing() {
        assert_eq!(
            load(Path::new("/dev/loop0")).ok(),
            Some(VeritySidecars::default())
        );
    }
}
