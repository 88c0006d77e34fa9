//! The extension-release data of the extensions merged now, read from the merged trees as
//! systemd 262's `get_extension_release_metadata()` reads them for the service-manager reload:
//! for each hierarchy of the class that carries one of our (or systemd's) merges, the names in
//! its meta list; for each name, `extension-release.NAME` below the root (the merged
//! `/usr/lib/extension-release.d/` or `/etc/extension-release.d/`), with the relaxed fallback.

use crate::class::ImageClass;
use crate::gather::release::find_extension_release_relaxed;
use crate::kernel::root::Root;
use crate::meta;
use crate::ondisk::envfile::{parse_env_strict, ReleaseData};
use anyhow::{anyhow, Result};
use std::path::PathBuf;

/// The release data of one merged extension, `None` when it cannot be read (systemd then
/// ignores the extension, logging at debug level only).
fn read_release(root: &Root, class: ImageClass, name: &str) -> Result<Option<ReleaseData>> {
    let Some(path) = find_extension_release_relaxed(root, class, name)? else {
        return Ok(None);
    };
    let bytes = root
        .read_optional(&path, crate::limits::RELEASE_FILE)?
        .ok_or_else(|| anyhow!("{} vanished while being read", root.show(&path).display()))?;
    // Parse warnings were logged when the extension was merged; they are not repeated here.
    parse_env_strict(&bytes)
        .map(|(data, _)| Some(data))
        .map_err(|w| anyhow!("{}:{}: {}", root.show(&path).display(), w.line, w.message))
}

/// `(name, release data)` of every extension merged on `hierarchies` (each name once, in the
/// order of the first meta list that has it: systemd reads the same file once per hierarchy).
///
/// A merge whose meta files cannot be read is left out with a warning; the verb that goes on to
/// unmerge or replace it reports that as its own error.
pub fn merged_releases(
    root: &Root,
    class: ImageClass,
    hierarchies: &[PathBuf],
) -> Vec<(String, ReleaseData)> {
    let mut names: Vec<String> = Vec::new();
    for h in hierarchies {
        let merged = match meta::inspect(root, h, class) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(
                    "Not reading what the extensions merged on {} ask of the service manager: {e:#}",
                    root.show(h).display()
                );
                continue;
            }
        };
        for n in merged.into_iter().flat_map(|m| m.info.extensions) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let mut out = Vec::new();
    for name in names {
        match read_release(root, class, &name) {
            Ok(Some(data)) => out.push((name, data)),
            Ok(None) => tracing::debug!(
                "Failed to parse extension-release metadata of {name}, ignoring: no extension-release file found"
            ),
            Err(e) => tracing::debug!(
                "Failed to parse extension-release metadata of {name}, ignoring: {e:#}"
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(path: &std::path::Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn release_data_from_the_tree_with_the_relaxed_fallback() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("usr/lib/extension-release.d");
        write(
            &dir.join("extension-release.a"),
            "ID=_any\nEXTENSION_RELOAD_MANAGER=1\n",
        );
        let root = Root::open(t.path()).unwrap();
        let a = read_release(&root, ImageClass::Sysext, "a")
            .unwrap()
            .unwrap();
        assert_eq!(
            a.get("EXTENSION_RELOAD_MANAGER").map(String::as_str),
            Some("1")
        );
        // No exact file: the only candidate is taken, whatever its name (relaxed).
        let b = read_release(&root, ImageClass::Sysext, "b")
            .unwrap()
            .unwrap();
        assert_eq!(b, a);
        // Two candidates: ambiguous, an error (which the caller ignores, as systemd).
        write(&dir.join("extension-release.c"), "ID=_any\n");
        assert!(read_release(&root, ImageClass::Sysext, "b").is_err());
        assert_eq!(read_release(&root, ImageClass::Confext, "a").unwrap(), None);
    }

    #[test]
    fn nothing_merged_nothing_read() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("usr")).unwrap();
        let root = Root::open(t.path()).unwrap();
        let hs = [PathBuf::from("/usr"), PathBuf::from("/opt")];
        assert!(merged_releases(&root, ImageClass::Sysext, &hs).is_empty());
    }
}
