//! `make install DESTDIR=…` puts the binary, the initrd units, the booted system's drop-ins and
//! the dracut module where a
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
    let dest_path = dest.path().to_path_buf();
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dest_path.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    let mut want: Vec<PathBuf> = vec![
        "usr/bin/extmerge".into(),
        "usr/lib/dracut/modules.d/90extmerge/module-setup.sh".into(),
    ];
    for u in std::fs::read_dir(repo.join("units")).unwrap() {
        let u = u.unwrap();
        if u.path().is_file() {
            want.push(Path::new("usr/lib/systemd/system").join(u.file_name()));
        }
    }
    // The booted system's drop-ins, inactive where they are installed (no unit directory).
    let booted = repo.join("units/booted");
    for d in std::fs::read_dir(&booted).unwrap() {
        let d = d.unwrap().path();
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            want.push(Path::new("usr/lib/extmerge/booted").join(f.strip_prefix(&booted).unwrap()));
        }
    }
    want.sort();
    assert_eq!(files_below(dest.path()), want);
    for unit in [
        "systemd-sysext.service",
        "systemd-confext.service",
        "systemd-sysext@.service",
        "systemd-sysupdate-notify-sysext@.service",
    ] {
        let conf = format!("usr/lib/extmerge/booted/{unit}.d/50-extmerge.conf");
        assert!(want.contains(&PathBuf::from(&conf)), "{conf} is installed");
        assert_eq!(mode(&conf), 0o644, "{conf}");
    }
    let installed = std::fs::read(dest.path().join("usr/bin/extmerge")).unwrap();
    assert_eq!(
        installed,
        std::fs::read(env!("CARGO_BIN_EXE_extmerge")).unwrap(),
        "the binary given"
    );
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
