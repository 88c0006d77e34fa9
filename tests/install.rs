//! `make install DESTDIR=…` puts the binary, the initrd units and the dracut module where a
//! package (and the dracut module's own lookup) expects them, and nothing anywhere else.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file below `dir`, relative to it, sorted.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn make_install_stages_binary_units_and_dracut_module_in_destdir() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new("make")
        .args(["--no-print-directory", "-C"])
        .arg(repo)
        .arg("install")
        .arg(format!("DESTDIR={}", dest.path().display()))
        .arg(format!("EXTMERGE_BIN={}", env!("CARGO_BIN_EXE_extmerge")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want: Vec<PathBuf> = vec![
        "usr/bin/extmerge".into(),
        "usr/lib/dracut/modules.d/90extmerge/module-setup.sh".into(),
    ];
    for u in std::fs::read_dir(repo.join("units")).unwrap() {
        let name = u.unwrap().file_name();
        want.push(Path::new("usr/lib/systemd/system").join(name));
    }
    want.sort();
    assert_eq!(files_below(dest.path()), want);
    let installed = std::fs::read(dest.path().join("usr/bin/extmerge")).unwrap();
    assert_eq!(
        installed,
        std::fs::read(env!("CARGO_BIN_EXE_extmerge")).unwrap(),
        "the binary given"
    );
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dest.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("usr/bin/extmerge"), 0o755);
    assert_eq!(
        mode("usr/lib/systemd/system/extmerge-sysroot.service"),
        0o644
    );
    // The dracut module looks for what a package installs exactly there.
    let setup = std::fs::read_to_string(
        dest.path()
            .join("usr/lib/dracut/modules.d/90extmerge/module-setup.sh"),
    )
    .unwrap();
    assert!(
        setup.contains("/usr/bin/extmerge"),
        "module-setup.sh's lookup path"
    );
}
