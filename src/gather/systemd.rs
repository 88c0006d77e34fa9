//! What the root's own files say about its systemd, for [`crate::decide::skip_record`]: whether
//! its `systemd-sysext` reads a refresh-skip record, and which systemd major it is. Read from
//! the base OS, as os-release is (facts sheet `flatcar-systemd-versions.md` §4).
//!
//! Nothing here fails a merge: a file that cannot be read is a fact like any other.

use crate::decide::release::HostInfo;
use crate::decide::skip_record::{Binary, SystemdFacts};
use crate::gather::discover::list_dir;
use crate::kernel::root::Root;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The binary the booted system's `systemd-sysext.service` and `systemd-confext.service` run
/// (`systemd-confext` is a link to it).
pub const SYSEXT_BINARY: &str = "/usr/bin/systemd-sysext";

/// The `log_info()` format string of the skip in `merge_subprocess()`: compiled into the
/// executable (sysext.c), present since the skip exists (Flatcar's 258 backport, 260+).
const SKIP_MESSAGE: &[u8] = b"Skipping extension refresh because no change was found";

/// How every systemd shared library name starts (meson `shared_lib_tag`).
const SHARED_LIB: &[u8] = b"libsystemd-shared-";

/// Where systemd installs `libsystemd-shared-*.so` (`pkglibdir`, `<libdir>/systemd`): `lib`,
/// Gentoo's (Flatcar's) `lib64`, and Debian's multiarch `lib/<triplet>`.
const LIB_DIRS: [&str; 2] = ["/usr/lib/systemd", "/usr/lib64/systemd"];

/// Whether the bytes of a binary hold the skip message.
pub fn has_skip_logic(binary: &[u8]) -> bool {
    binary
        .windows(SKIP_MESSAGE.len())
        .any(|w| w == SKIP_MESSAGE)
}

/// The one `libsystemd-shared-<tag>.so` a binary names (its `DT_NEEDED` string), `None` when it
/// names none (a static build) or several different ones.
pub fn needed_shared_lib(binary: &[u8]) -> Option<String> {
    let mut found: Option<&[u8]> = None;
    let mut at = 0;
    while let Some(i) = binary[at..]
        .windows(SHARED_LIB.len())
        .position(|w| w == SHARED_LIB)
    {
        let start = at + i;
        let len = binary[start..]
            .iter()
            .take(128)
            .take_while(|b| **b != 0)
            .count();
        let name = &binary[start..start + len];
        at = start + SHARED_LIB.len();
        let plausible = name.ends_with(b".so")
            && name[SHARED_LIB.len()..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(b));
        if !plausible {
            continue;
        }
        match found {
            Some(seen) if seen != name => return None,
            _ => found = Some(name),
        }
    }
    found.map(|n| String::from_utf8_lossy(n).into_owned())
}

/// Read the binary at [`SYSEXT_BINARY`] inside `root`.
fn binary(root: &Root) -> Binary {
    match root.read_optional(Path::new(SYSEXT_BINARY), crate::limits::SYSTEMD_BINARY) {
        Ok(None) => Binary::Missing,
        Ok(Some(bytes)) => Binary::Read {
            skip_logic: has_skip_logic(&bytes),
            shared_lib: needed_shared_lib(&bytes),
        },
        Err(e) => Binary::Unreadable(format!("{e:#}")),
    }
}

/// The `libsystemd-shared-*.so` files in the root's systemd library directories, in-root.
fn shared_libs(root: &Root) -> Vec<PathBuf> {
    let list = |dir: &Path| -> Vec<PathBuf> {
        let Ok(Some(found)) = root.resolve_optional(dir) else {
            return Vec::new();
        };
        let names = list_dir(&found).unwrap_or_default();
        names
            .iter()
            .filter(|n| n.as_bytes().starts_with(SHARED_LIB) && n.as_bytes().ends_with(b".so"))
            .map(|n| dir.join(n))
            .collect()
    };
    let mut dirs: Vec<PathBuf> = LIB_DIRS.iter().map(PathBuf::from).collect();
    if let Ok(Some(lib)) = root.resolve_optional(Path::new("/usr/lib")) {
        let multiarch = list_dir(&lib).unwrap_or_default();
        let multiarch = multiarch.iter().filter(|n| {
            let n = n.as_bytes();
            n.windows(7).any(|w| w == b"-linux-")
        });
        dirs.extend(multiarch.map(|n| Path::new("/usr/lib").join(n).join("systemd")));
    }
    dirs.iter().flat_map(|d| list(d)).collect()
}

/// Everything [`crate::decide::skip_record::choose`] needs, from `root` and its os-release.
pub fn facts(root: &Root, host: &Result<HostInfo, String>) -> SystemdFacts {
    let host = host.as_ref().ok();
    SystemdFacts {
        binary_path: PathBuf::from(SYSEXT_BINARY),
        binary: binary(root),
        shared_libs: shared_libs(root),
        os_id: host.map(|h| h.id.clone()),
        version_id: host.and_then(|h| h.version_id.clone()),
    }
}

#[cfg(test)]
mod tests;
