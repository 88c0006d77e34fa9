//! Whether one extension tree is usable on a host: forbidden content, extension-release lookup and
//! validation, combined in systemd's order. Used by `list` on directories and by `merge` on opened images.

use crate::class::ImageClass;
use crate::decide::release::{self, HostInfo, Verdict};
use crate::gather::discover::ImageKind;
use std::path::Path;

/// Decide whether the tree at `tree_root` (a directory extension or a mounted image) is accepted.
///
/// `host` is `Err` when the host os-release could not be read; then nothing can be accepted.
pub fn check_tree(
    host: Result<&HostInfo, &str>,
    class: ImageClass,
    name: &str,
    kind: ImageKind,
    tree_root: &Path,
    force: bool,
) -> Verdict {
    // systemd refuses directory sysexts with usr/lib/os-release even under --force; raw images only without it.
    let forbidden_applies = class == ImageClass::Sysext && (kind == ImageKind::Directory || !force);
    if forbidden_applies {
        match release::has_forbidden_content(tree_root) {
            Ok(true) => {
                return Verdict::Reject(
                    "it contains usr/lib/os-release, which an extension must not ship (it would replace the OS identity)"
                        .to_string(),
                )
            }
            Ok(false) => {}
            Err(e) => return Verdict::Reject(format!("cannot check {} for usr/lib/os-release: {e}", tree_root.display())),
        }
    }
    if force {
        return Verdict::Accept;
    }
    let host = match host {
        Ok(h) => h,
        Err(e) => return Verdict::Reject(format!("the host's os-release cannot be used: {e}")),
    };
    match release::load_extension_release(tree_root, class, name) {
        Ok(Some((_, data))) => release::validate(host, class, name, Some(&data)),
        Ok(None) => {
            if kind == ImageKind::Directory && dir_is_empty(tree_root) {
                Verdict::Reject(format!(
                    "empty directory: it carries no extension-release data and masks any lower-precedence image named '{name}'"
                ))
            } else {
                Verdict::Reject(format!(
                    "no {}/extension-release.{name} (or an accepted fallback) in the image",
                    class.release_dir()
                ))
            }
        }
        Err(e) => Verdict::Reject(format!("{e:#}")),
    }
}

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}
