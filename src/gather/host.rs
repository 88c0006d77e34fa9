//! The identity of the OS tree extensions are merged onto: its os-release, its scope (initrd or
//! system) and the architecture, read through the root handle.

use crate::decide::release::{HostInfo, ReleaseData, Scope};
use crate::gather::release::read_env;
use crate::kernel::features::uname_architecture;
use crate::kernel::root::Root;
use crate::limits;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// Read `/etc/os-release`, else `/usr/lib/os-release`, inside `root` (shown path, data).
pub fn read_os_release(root: &Root) -> Result<(PathBuf, ReleaseData)> {
    const CANDIDATES: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];
    for rel in CANDIDATES {
        // Only ENOENT moves on to the fallback, as in open_os_release_at().
        if let Some((found, data)) = read_env(root, Path::new(rel), limits::RELEASE_FILE)? {
            return Ok((root.show(&found), data));
        }
    }
    let [a, b] = CANDIDATES.map(|c| root.show(Path::new(c)));
    bail!(
        "neither {} nor {} exists, so the OS tree cannot be identified",
        a.display(),
        b.display()
    )
}

/// "initrd" iff `/etc/initrd-release` exists inside `root`, else "system".
pub fn host_scope(root: &Root) -> Result<Scope> {
    let p = Path::new("/etc/initrd-release");
    match root.resolve_optional(p) {
        Ok(Some(_)) => Ok(Scope::Initrd),
        Ok(None) => Ok(Scope::System),
        Err(e) => Err(anyhow::Error::new(e))
            .with_context(|| format!("checking for {}", root.show(p).display())),
    }
}

/// The host identity of the tree at `root` (os-release, scope, uname architecture).
pub fn load(root: &Root) -> Result<HostInfo> {
    let (path, data) = read_os_release(root)?;
    HostInfo::from_release(&data, host_scope(root)?, &uname_architecture(), &path)
        .map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn read_os_release_order_and_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let root = Root::open(r).unwrap();
        let err = format!("{:#}", read_os_release(&root).unwrap_err());
        assert!(
            err.contains("etc/os-release") && err.contains("usr/lib/os-release"),
            "{err}"
        );
        let usr = r.join("usr/lib/os-release");
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::fs::write(&usr, b"ID=usr\n").unwrap();
        assert_eq!(read_os_release(&root).unwrap().0, usr, "usr/lib fallback");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        symlink("/nowhere", r.join("etc/os-release")).unwrap();
        assert_eq!(
            read_os_release(&root).unwrap().0,
            usr,
            "dangling falls back"
        );
        std::fs::remove_file(r.join("etc/os-release")).unwrap();
        std::fs::write(r.join("etc/os-release"), b"ID=etc\n").unwrap();
        let (p, d) = read_os_release(&root).unwrap();
        assert_eq!((p, d["ID"].as_str()), (r.join("etc/os-release"), "etc"));
        std::fs::write(r.join("etc/os-release"), b"NAME=x\n").unwrap();
        assert!(format!("{:#}", load(&root).unwrap_err()).contains("ID="));
    }

    #[test]
    fn os_release_fallback_scope_and_links_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("usr/lib/os-release"), "ID=inside\nVERSION_ID=1\n").unwrap();
        // Flatcar's layout: an absolute link that must resolve inside the root.
        symlink("/usr/lib/os-release", r.join("etc/os-release")).unwrap();
        let root = Root::open(r).unwrap();
        let h = load(&root).unwrap();
        assert_eq!((h.id.as_str(), h.scope), ("inside", Scope::System));
        std::fs::write(r.join("etc/initrd-release"), "").unwrap();
        assert_eq!(load(&root).unwrap().scope, Scope::Initrd);
        std::fs::write(r.join("usr/lib/os-release"), vec![b'#'; 70_000]).unwrap();
        let e = format!("{:#}", load(&root).unwrap_err());
        assert!(e.contains("larger than the 65536 bytes allowed"), "{e}");
        assert!(e.contains("/usr/lib/os-release"), "{e}");
    }
}
