//! The initrd verbs and policies through the real binary: `flatcar-select`, `mount-var`,
//! `check --os-release=FILE`, and `Require=`. Each test that mounts runs in its own private
//! mount namespace and ends with a `LeakCheck`.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{
    enter_private_mount_ns, mkfs_ext4, mkfs_squashfs, write_files, LeakCheck, WritableLoop,
};

const BIN: &str = env!("CARGO_BIN_EXE_extmerge");

/// Run extmerge with `args` and a fixed kernel command line (`$SYSTEMD_PROC_CMDLINE`).
fn extmerge(args: &[&str], cmdline: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env("SYSTEMD_PROC_CMDLINE", cmdline)
        .env_remove("SYSTEMD_EXEC_PID")
        .output()
        .unwrap_or_else(|e| panic!("running {BIN}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn root_arg(root: &Path) -> String {
    format!("--root={}", root.display())
}

/// A sysext directory `NAME` at `<root>/<dir>/NAME` with one file `usr/lib/NAME.txt`.
fn sysext_dir(root: &Path, dir: &str, name: &str, release: &str) {
    write_files(
        &root.join(dir).join(name),
        &[
            (
                &format!("usr/lib/extension-release.d/extension-release.{name}"),
                release,
            ),
            (&format!("usr/lib/{name}.txt"), name),
        ],
    );
}

const FLATCAR_OS: &str = "ID=flatcar\nID_LIKE=coreos\nVERSION=4000.0.0\nVERSION_ID=4000.0.0\nSYSEXT_LEVEL=1.0\nFLATCAR_BOARD=amd64-usr\n";
const FLATCAR_NEXT: &str = "ID=flatcar\nID_LIKE=coreos\nVERSION=4001.0.0\nVERSION_ID=4001.0.0\nSYSEXT_LEVEL=1.0\nFLATCAR_BOARD=amd64-usr\n";

/// A Flatcar-like root with `zfs` enabled and its image for 4000.0.0 in place.
fn flatcar_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write_files(
        r,
        &[
            ("usr/lib/os-release", FLATCAR_OS),
            (
                "usr/share/flatcar/enabled-sysext.conf",
                "# vendor defaults\n",
            ),
            ("etc/flatcar/enabled-sysext.conf", "zfs\n"),
            ("etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw", "image"),
        ],
    );
    fs::create_dir_all(r.join("etc/extensions")).unwrap();
    t
}

#[test]
fn flatcar_select_plans_links_and_applies_them_once() {
    common::require_root();
    let t = flatcar_root();
    let r = t.path();
    let o = extmerge(&["flatcar-select", "--dry-run", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(
        plan.contains(
            "link /etc/extensions/flatcar-zfs.raw -> /etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw"
        ),
        "{plan}"
    );
    assert!(
        fs::symlink_metadata(r.join("etc/extensions/flatcar-zfs.raw")).is_err(),
        "--dry-run changed the root"
    );

    let o = extmerge(&["flatcar-select", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        fs::read_link(r.join("etc/extensions/flatcar-zfs.raw")).unwrap(),
        Path::new("/etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw")
    );
    // Settled: a second run plans nothing.
    let o = extmerge(
        &["flatcar-select", "--dry-run", "--json=short", &root_arg(r)],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
}

#[test]
fn flatcar_select_names_a_missing_image_and_where_to_place_it() {
    common::require_root();
    let t = flatcar_root();
    let r = t.path();
    write_files(r, &[("etc/flatcar/enabled-sysext.conf", "zfs\npodman\n")]);
    let o = extmerge(&["flatcar-select", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("flatcar-podman: place it at /etc/flatcar/sysext/flatcar-podman-4000.0.0.raw"),
        "{err}"
    );
    assert!(err.contains("does not download"), "{err}");
    // The image that is there is still linked.
    assert!(fs::read_link(r.join("etc/extensions/flatcar-zfs.raw")).is_ok());
}

#[test]
fn flatcar_select_does_nothing_outside_flatcar() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write_files(
        r,
        &[
            ("usr/lib/os-release", "ID=debian\n"),
            ("etc/flatcar/enabled-sysext.conf", "zfs\n"),
        ],
    );
    let o = extmerge(&["flatcar-select", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a Flatcar root"),
        "{}",
        text(&o)
    );
    assert!(!r.join("etc/extensions").exists());
}

#[test]
fn check_os_release_lists_what_an_update_would_lose() {
    common::require_root();
    let t = flatcar_root();
    let r = t.path();
    sysext_dir(
        r,
        "var/lib/extensions",
        "pinned",
        "ID=flatcar\nVERSION_ID=4000.0.0\n",
    );
    sysext_dir(
        r,
        "var/lib/extensions",
        "leveled",
        "ID=flatcar\nSYSEXT_LEVEL=1.0\n",
    );
    sysext_dir(
        r,
        "var/lib/extensions",
        "future",
        "ID=flatcar\nVERSION_ID=4001.0.0\n",
    );
    let next = r.join("next-os-release");
    fs::write(&next, FLATCAR_NEXT).unwrap();
    let arg = format!("--os-release={}", next.display());

    let o = extmerge(&["--class=sysext", "check", &arg, &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Would stop matching after the update to VERSION_ID=4001.0.0: sysext:pinned"),
        "{out}"
    );
    assert!(
        out.contains(
            "Stage before updating: missing flatcar-zfs: place it at /etc/flatcar/sysext/flatcar-zfs-4001.0.0.raw"
        ),
        "{out}"
    );

    let o = extmerge(
        &[
            "--class=sysext",
            "check",
            &arg,
            "--json=short",
            &root_arg(r),
        ],
        "",
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["would_stop"], serde_json::json!(["sysext:pinned"]));
    let ext = &v["classes"][0]["extensions"];
    let verdict = |name: &str| -> (bool, bool) {
        let e = ext
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {ext}"));
        (
            e["matches_now"].as_bool().unwrap(),
            e["matches_next"].as_bool().unwrap(),
        )
    };
    assert_eq!(verdict("pinned"), (true, false));
    assert_eq!(verdict("leveled"), (true, true));
    assert_eq!(verdict("future"), (false, true));

    // Once the new image is staged and the pinned extension replaced, the update loses nothing.
    write_files(
        r,
        &[("etc/flatcar/sysext/flatcar-zfs-4001.0.0.raw", "image")],
    );
    fs::remove_dir_all(r.join("var/lib/extensions/pinned")).unwrap();
    let o = extmerge(&["--class=sysext", "check", &arg, &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// `Require=` in the root's confext.conf.d fails a merge that leaves the name out.
#[test]
fn require_in_the_configuration_fails_a_merge_without_it() {
    enter_private_mount_ns();
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let leaks = LeakCheck::new(r);
    write_files(
        r,
        &[
            ("usr/lib/os-release", "ID=debian\nVERSION_ID=13\n"),
            (
                "usr/lib/systemd/confext.conf.d/50-require.conf",
                "[ConfExt]\nRequire=00-default\n",
            ),
            (
                "var/lib/confexts/site/etc/extension-release.d/extension-release.site",
                "ID=_any\n",
            ),
            ("var/lib/confexts/site/etc/site.conf", "site\n"),
        ],
    );
    let o = extmerge(&["--class=confext", "refresh", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "required confext cannot be used: '00-default' (not found in any confext directory)"
        ),
        "{}",
        text(&o)
    );
    write_files(
        r,
        &[
            (
                "usr/lib/confexts/00-default/etc/extension-release.d/extension-release.00-default",
                "ID=_any\n",
            ),
            ("usr/lib/confexts/00-default/etc/default.conf", "default\n"),
        ],
    );
    let o = extmerge(&["--class=confext", "refresh", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        fs::read_to_string(r.join("etc/default.conf")).unwrap(),
        "default\n"
    );
    // The required confext becomes unusable: the refresh fails before attaching anything,
    // so the merge that has it stays.
    write_files(
        r,
        &[(
            "usr/lib/confexts/00-default/etc/extension-release.d/extension-release.00-default",
            "ID=otheros\n",
        )],
    );
    let o = extmerge(&["--class=confext", "refresh", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not merging: required confext")
            && err.contains("'00-default' (")
            && err.contains("the hierarchies are left as they are"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(r.join("etc/default.conf")).unwrap(),
        "default\n",
        "the previous merge must stay"
    );
    let o = extmerge(&["--class=confext", "unmerge", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    leaks.assert_clean();
}

/// `mount-var` mounts the command line's /var below the root, so a following merge uses
/// the sysext on it; the spec is checked before anything is mounted.
#[test]
fn mount_var_then_merge_uses_the_extensions_on_that_var() {
    enter_private_mount_ns();
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    let leaks = LeakCheck::new(t.path());
    write_files(&r, &[("usr/lib/os-release", "ID=debian\nVERSION_ID=13\n")]);
    // The separate /var: a squashfs sysext in lib/extensions.
    let ext = t.path().join("ext");
    sysext_dir(&ext, "", "onvar", "ID=debian\nVERSION_ID=13\n");
    let var = t.path().join("var");
    fs::create_dir_all(var.join("lib/extensions")).unwrap();
    mkfs_squashfs(&ext.join("onvar"), &var.join("lib/extensions/onvar.raw"));
    let img = t.path().join("var.img");
    mkfs_ext4(&var, &img, 32);
    let dev = WritableLoop::attach(&img);
    let cmdline = format!(
        "quiet systemd.mount-extra={}:/var:ext4:rw",
        dev.dev.display()
    );

    // Without --root it refuses: the running system's /var is systemd's.
    let o = extmerge(&["mount-var"], &cmdline);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A bad spec fails at once and mounts nothing.
    let o = extmerge(
        &["mount-var", &root_arg(&r)],
        "systemd.mount-extra=/dev/sda1:/var:ext4:rw:extra",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("systemd.mount-extra"),
        "{}",
        text(&o)
    );
    assert!(common::mountinfo_lines_containing(&r.join("var").display().to_string()).is_empty());

    let o = extmerge(&["mount-var", &root_arg(&r)], &cmdline);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(r.join("var/lib/extensions/onvar.raw").is_file());
    // Again: already a mount point, used as is (Ignition's first-boot case).
    let o = extmerge(&["mount-var", &root_arg(&r)], &cmdline);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already a mount point"),
        "{}",
        text(&o)
    );
    let mounts = common::mountinfo_lines_containing(&format!("{}/var ", r.display()));
    assert_eq!(mounts.len(), 1, "one /var mount: {mounts:#?}");

    let o = extmerge(&["--class=sysext", "merge", &root_arg(&r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        fs::read_to_string(r.join("usr/lib/onvar.txt")).unwrap(),
        "onvar"
    );
    let o = extmerge(&["--class=sysext", "unmerge", &root_arg(&r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    rustix::mount::unmount(r.join("var"), rustix::mount::UnmountFlags::empty()).unwrap();
    drop(dev);
    leaks.assert_clean();
}
