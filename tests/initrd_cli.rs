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
    common::extmerge_command()
        .args(args)
        .env("SYSTEMD_PROC_CMDLINE", cmdline)
        .env_remove("SYSTEMD_EXEC_PID")
        .output()
        .unwrap_or_else(|e| panic!("running extmerge: {e}"))
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
fn sysext_at(root: &Path, dir: &str, name: &str, release: &str) {
    let file = format!("usr/lib/{name}.txt");
    common::sysext_dir(&root.join(dir).join(name), name, release, &[(&file, name)]);
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
    let o = extmerge(&["flatcar-select", "--dry-run", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
}

/// `flatcar-select --dry-run` printing its plan to a pipe whose reader has gone, or to a full
/// device: exit 1 with an error naming standard output, never a panic.
#[test]
fn flatcar_select_dry_run_to_a_closed_stdout_is_an_error() {
    let t = flatcar_root();
    let r = t.path();
    let run = |stdout: std::process::Stdio| {
        Command::new(BIN)
            .args(["flatcar-select", "--dry-run", &root_arg(r)])
            .env("SYSTEMD_PROC_CMDLINE", "")
            .env_remove("SYSTEMD_EXEC_PID")
            .env("RUST_BACKTRACE", "0")
            .stdout(stdout)
            .output()
            .unwrap()
    };
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    for (o, why) in [
        (run(writer.into()), "Broken pipe (os error 32)"),
        (run(full.into()), "No space left on device (os error 28)"),
    ] {
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains(&format!("ERROR writing to standard output: {why}")),
            "{}",
            text(&o)
        );
        assert!(!stderr.contains("panicked"), "{}", text(&o));
    }
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

/// `check --os-release=FILE` decides "Flatcar or not" inside the root like `flatcar-select`: a
/// `/usr/share/flatcar` that cannot be resolved is an error naming it, never "not Flatcar"
/// (which would skip the images the update needs and report that it loses nothing).
#[test]
fn check_os_release_fails_when_the_flatcar_marker_cannot_be_resolved() {
    common::require_root();
    let t = flatcar_root();
    let r = t.path();
    fs::remove_dir_all(r.join("usr/share/flatcar")).unwrap();
    std::os::unix::fs::symlink("flatcar", r.join("usr/share/flatcar")).unwrap();
    let next = r.join("next-os-release");
    fs::write(&next, FLATCAR_NEXT).unwrap();
    let arg = format!("--os-release={}", next.display());
    let want = format!(
        "{}: too many levels of symbolic links",
        r.join("usr/share/flatcar").display()
    );
    let o = extmerge(&["flatcar-select", "--dry-run", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&want),
        "{}",
        text(&o)
    );
    let o = extmerge(&["--class=sysext", "check", &arg, &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&want),
        "{}",
        text(&o)
    );
}

#[test]
fn check_os_release_lists_what_an_update_would_lose() {
    common::require_root();
    let t = flatcar_root();
    let r = t.path();
    sysext_at(
        r,
        "var/lib/extensions",
        "pinned",
        "ID=flatcar\nVERSION_ID=4000.0.0\n",
    );
    sysext_at(
        r,
        "var/lib/extensions",
        "leveled",
        "ID=flatcar\nSYSEXT_LEVEL=1.0\n",
    );
    sysext_at(
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
    sysext_at(&ext, "", "onvar", "ID=debian\nVERSION_ID=13\n");
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

/// `/etc/extensions` and `/etc/flatcar` linking out of the root: `flatcar-select` works on the
/// same paths inside the root; the sentinel tree outside is unchanged.
#[test]
fn flatcar_select_never_touches_anything_outside_the_root() {
    common::require_root();
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path();
    write_files(
        o,
        &[
            ("extensions/flatcar-zfs.raw", "sentinel"),
            ("flatcar/enabled-sysext.conf", "evil\n"),
            ("flatcar/sysext/flatcar-evil-4000.0.0.raw", "evil"),
        ],
    );
    let before = common::tree_snapshot(o);
    let t = flatcar_root();
    let r = t.path();
    fs::remove_dir_all(r.join("etc/extensions")).unwrap();
    std::os::unix::fs::symlink(o.join("extensions"), r.join("etc/extensions")).unwrap();
    let o = o.strip_prefix("/").unwrap();
    let o_rel = o.display().to_string();
    let dotdot = format!("../../../../../../../../{o_rel}/flatcar");
    fs::rename(r.join("etc/flatcar"), r.join("real-flatcar")).unwrap();
    write_files(r, &[(&format!("{o_rel}/.keep"), "")]);
    fs::rename(r.join("real-flatcar"), r.join(o).join("flatcar")).unwrap();
    std::os::unix::fs::symlink(&dotdot, r.join("etc/flatcar")).unwrap();

    let out = extmerge(&["flatcar-select", &root_arg(r)], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        fs::read_link(r.join(o).join("extensions/flatcar-zfs.raw")).unwrap(),
        Path::new("/etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw")
    );
    assert!(!text(&out).contains("evil"), "{}", text(&out));
    assert_eq!(
        common::tree_snapshot(outside.path()),
        before,
        "the tree outside the root changed"
    );
}

/// A bad line in enabled-sysext.conf is a warning naming file, line and reason; the good lines
/// are applied and the selection succeeds.
#[test]
fn flatcar_select_warns_about_a_bad_line_and_applies_the_rest() {
    common::require_root();
    let t = flatcar_root();
    let r = t.path();
    fs::write(
        r.join("etc/flatcar/enabled-sysext.conf"),
        b"zfs\n../escape\n\xc3\x28\n",
    )
    .unwrap();
    let o = extmerge(&["flatcar-select", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("ignore /etc/")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings[0].contains(
            "Flatcar selection: ignore /etc/flatcar/enabled-sysext.conf line 2: \"../escape\" contains '/'."
        ),
        "{err}"
    );
    assert!(
        warnings[1].contains(
            "Flatcar selection: ignore /etc/flatcar/enabled-sysext.conf line 3: not valid UTF-8."
        ),
        "{err}"
    );
    assert_eq!(
        fs::read_link(r.join("etc/extensions/flatcar-zfs.raw")).unwrap(),
        Path::new("/etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw")
    );
}

/// An oversized configuration file is a warning naming it and the cap, and the run goes on
/// without any configuration of that class, as systemd 262 ignores a configuration it cannot
/// read ("Failed to parse sysext config file, ignoring: …").
#[test]
fn an_oversized_configuration_file_is_a_warning_and_the_run_goes_on() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let big = format!("[SysExt]\nMutable=yes\n{}", "#".repeat(1 << 20));
    write_files(
        r,
        &[
            ("usr/lib/os-release", "ID=debian\nVERSION_ID=13\n"),
            (
                "etc/systemd/sysext.conf",
                "[SysExt]\nMutable=auto\nImagePolicy=root=signed\n",
            ),
            ("usr/lib/systemd/sysext.conf.d/10-big.conf", &big),
        ],
    );
    let o = extmerge(
        &["--class=sysext", "status", "--json=short", &root_arg(r)],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let want = format!(
        "WARN Failed to parse sysext config file, ignoring the whole sysext configuration: \
         reading {}: larger than the 1048576 bytes allowed",
        r.join("usr/lib/systemd/sysext.conf.d/10-big.conf")
            .display()
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.contains(&want)).count(),
        1,
        "{}",
        text(&o)
    );
    assert!(!stderr.contains("ERROR"), "{}", text(&o));
}

/// `extmerge ARGS` as systemd starts it (`$SYSTEMD_EXEC_PID` is its pid, so the kill switches
/// count), with `$SYSTEMD_PROC_CMDLINE` set to `cmdline` or, for `None`, unset so that
/// `/proc/cmdline` is read; `no_dac_caps` drops the capabilities that bypass file modes.
fn extmerge_by_systemd(args: &[&str], cmdline: Option<&str>, no_dac_caps: bool) -> Output {
    let mut c = Command::new("sh");
    c.args(["-c", "SYSTEMD_EXEC_PID=$$ exec \"$@\"", "sh"]);
    if no_dac_caps {
        c.args([
            "setpriv",
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
        ]);
    }
    c.arg(BIN).args(args).env_remove("SYSTEMD_EXEC_PID");
    match cmdline {
        Some(v) => c.env("SYSTEMD_PROC_CMDLINE", v),
        None => c.env_remove("SYSTEMD_PROC_CMDLINE"),
    };
    c.output()
        .unwrap_or_else(|e| panic!("running {BIN} as systemd would: {e}"))
}

/// A root with one sysext directory `a` in /run/extensions.
fn root_with_one_sysext() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    write_files(
        t.path(),
        &[("usr/lib/os-release", "ID=debian\nVERSION_ID=13\n")],
    );
    sysext_at(t.path(), "run/extensions", "a", "ID=_any\n");
    t
}

/// How many lines of `list`'s table name the sysext `a` of [`root_with_one_sysext`].
fn listed_a(o: &Output) -> usize {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("/run/extensions/a"))
        .count()
}

/// The run went on as if the kernel command line were empty (sysext `a` listed, exit 0), with
/// one warning saying `why` and no error.
fn assert_cmdline_ignored(o: &Output, why: &str) {
    assert_eq!((o.status.code(), listed_a(o)), (Some(0), 1), "{}", text(o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let want = format!("WARN Failed to read the kernel command line, ignoring it: {why}");
    assert_eq!(
        stderr.lines().filter(|l| l.contains(&want)).count(),
        1,
        "{}",
        text(o)
    );
    assert!(!stderr.contains("ERROR"), "{}", text(o));
}

/// A kernel command line that cannot be read is logged and ignored, as systemd-sysext does
/// ("Failed to check 'systemd.sysext=' kernel command line option, proceeding"): a kill
/// switch beyond the cap does not count, the run goes on. Within the cap the same switch does.
#[test]
fn an_oversized_kernel_command_line_is_a_warning_and_ignored() {
    let t = root_with_one_sysext();
    let args = ["--class=sysext", "list", &root_arg(t.path())];
    let huge = format!("{} systemd.sysext=0", "x".repeat(1 << 16));
    let o = extmerge_by_systemd(&args, Some(&huge), false);
    assert_cmdline_ignored(
        &o,
        "$SYSTEMD_PROC_CMDLINE: 65553 bytes, larger than the 65536 bytes allowed for a kernel \
         command line",
    );
    let o = extmerge_by_systemd(&args, Some("quiet systemd.sysext=0"), false);
    assert_eq!(
        (o.status.code(), listed_a(&o)),
        (Some(0), 0),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("Disabled by the kernel command line option systemd.sysext=0"),
        "{}",
        text(&o)
    );
}

/// An unreadable `/proc/cmdline` (a mode-000 file bound over it, read without the capabilities
/// that bypass file modes): a warning naming it and why, and the run goes on, as systemd's.
#[test]
fn an_unreadable_proc_cmdline_is_a_warning_and_ignored() {
    enter_private_mount_ns();
    let t = root_with_one_sysext();
    let leak = LeakCheck::new(t.path());
    let locked = t.path().join("cmdline");
    fs::write(&locked, "systemd.sysext=0\n").unwrap();
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let bind = Command::new("mount")
        .arg("--bind")
        .arg(&locked)
        .arg("/proc/cmdline")
        .status()
        .unwrap();
    assert!(
        bind.success(),
        "mount --bind {} /proc/cmdline",
        locked.display()
    );
    let o = extmerge_by_systemd(&["--class=sysext", "list", &root_arg(t.path())], None, true);
    let unbind = Command::new("umount")
        .arg("/proc/cmdline")
        .status()
        .unwrap();
    assert!(unbind.success(), "umount /proc/cmdline");
    assert_cmdline_ignored(&o, "opening /proc/cmdline: Permission denied (os error 13)");
    leak.assert_clean();
}

/// `mount-var` with `<root>/var` linking to a directory outside the root: mounted on the same
/// path inside the root; the outside directory is neither mounted on nor changed. A `var` that
/// resolves to the root itself is refused before any device is looked for.
#[test]
fn mount_var_through_a_link_out_of_the_root_stays_inside() {
    enter_private_mount_ns();
    let t = tempfile::tempdir().unwrap();
    let leaks = LeakCheck::new(t.path());
    let sentinel = t.path().join("outside/var");
    write_files(&sentinel, &[("keep", "sentinel\n")]);
    let before = common::tree_snapshot(&t.path().join("outside"));
    let r = t.path().join("root");
    fs::create_dir_all(&r).unwrap();
    let src = t.path().join("src");
    write_files(&src, &[("lib/extensions/marker", "on var\n")]);
    let img = t.path().join("var.img");
    mkfs_ext4(&src, &img, 16);
    let dev = WritableLoop::attach(&img);
    let cmdline = format!("systemd.mount-extra={}:/var:ext4", dev.dev.display());

    std::os::unix::fs::symlink("/", r.join("var")).unwrap();
    let o = extmerge(&["mount-var", &root_arg(&r)], &cmdline);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "{} resolves to the root directory {} itself; refusing to mount /var over it",
            r.join("var").display(),
            r.display()
        )),
        "{}",
        text(&o)
    );
    fs::remove_file(r.join("var")).unwrap();

    std::os::unix::fs::symlink(&sentinel, r.join("var")).unwrap();
    let o = extmerge(&["mount-var", &root_arg(&r)], &cmdline);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let inside = r.join(sentinel.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read_to_string(inside.join("lib/extensions/marker")).unwrap(),
        "on var\n"
    );
    assert!(common::mountinfo_lines_containing(&format!(" {} ", sentinel.display())).is_empty());
    assert_eq!(
        common::mountinfo_lines_containing(&format!(" {} ", inside.display())).len(),
        1
    );
    rustix::mount::unmount(&inside, rustix::mount::UnmountFlags::empty()).unwrap();
    drop(dev);
    assert_eq!(common::tree_snapshot(&t.path().join("outside")), before);
    leaks.assert_clean();
}

/// `check` opens images under the image policy `merge` uses (one selection: the class settings,
/// then the pipeline's image opening): `ImagePolicy=` from the configuration refuses an
/// unsigned image in both with the same reason, and `--image-policy=` overrides it in both.
#[test]
fn check_and_merge_apply_the_same_image_policy() {
    enter_private_mount_ns();
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    let leaks = LeakCheck::new(t.path());
    write_files(
        &r,
        &[
            ("usr/lib/os-release", "ID=debian\nVERSION_ID=13\n"),
            (
                "etc/systemd/sysext.conf",
                "[SysExt]\nImagePolicy=root=signed+absent:usr=signed+absent\n",
            ),
        ],
    );
    let ext = t.path().join("ext");
    sysext_at(&ext, "", "plain", "ID=_any\n");
    fs::create_dir_all(r.join("var/lib/extensions")).unwrap();
    mkfs_squashfs(&ext.join("plain"), &r.join("var/lib/extensions/plain.raw"));
    let reason = "image policy 'root=signed+absent:usr=signed+absent' does not allow a \
                  unprotected root partition";

    let o = extmerge(
        &["--class=sysext", "check", "--json=short", &root_arg(&r)],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report[0]["ignored"][0]["name"], "plain", "{}", text(&o));
    assert_eq!(report[0]["ignored"][0]["reason"], reason, "{}", text(&o));

    let o = extmerge(&["--class=sysext", "merge", &root_arg(&r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "Ignoring sysext 'plain' (/var/lib/extensions/plain.raw): {reason}"
        )),
        "{}",
        text(&o)
    );
    assert!(!r.join("usr/lib/plain.txt").exists());

    let o = extmerge(
        &[
            "--class=sysext",
            "check",
            "--json=short",
            "--image-policy=*",
            &root_arg(&r),
        ],
        "",
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report[0]["ignored"], serde_json::json!([]), "{}", text(&o));
    let o = extmerge(
        &[
            "--class=sysext",
            "refresh",
            "--image-policy=*",
            &root_arg(&r),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        fs::read_to_string(r.join("usr/lib/plain.txt")).unwrap(),
        "plain"
    );
    let o = extmerge(&["--class=sysext", "unmerge", &root_arg(&r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    leaks.assert_clean();
}

/// `check` judges each class under that class's own conflict policy, as `merge` does: a
/// sysext conflict under the sysext configuration's `CheckConflicts=refuse` fails `check` also
/// when the confext class (checked first) keeps the default `warn`.
#[test]
fn check_uses_each_class_own_conflict_policy() {
    common::require_root();
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write_files(
        r,
        &[
            ("usr/lib/os-release", "ID=debian\nVERSION_ID=13\n"),
            (
                "etc/systemd/sysext.conf",
                "[SysExt]\nCheckConflicts=refuse\n",
            ),
        ],
    );
    sysext_at(r, "var/lib/extensions", "a", "ID=_any\n");
    sysext_at(r, "var/lib/extensions", "b", "ID=_any\n");
    write_files(
        r,
        &[
            ("var/lib/extensions/a/usr/lib/tool", "a\n"),
            ("var/lib/extensions/b/usr/lib/tool", "b\n"),
        ],
    );
    for class in ["--class=sysext", "--class=all"] {
        let o = extmerge(&[class, "check", "--json=short", &root_arg(r)], "");
        assert_eq!(o.status.code(), Some(1), "{class}: {}", text(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let sysext = report
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["class"] == "sysext")
            .unwrap();
        assert_eq!(
            sysext["conflicts"][0]["path"],
            "/usr/lib/tool",
            "{}",
            text(&o)
        );
    }
    // The confext class alone has no conflict and the default policy.
    let o = extmerge(&["--class=confext", "check", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// `extmerge initrd-stage ARGS --root=ROOT` with the kernel command line `cmdline`, not as
/// systemd (the kill switches do not count), logging at debug level.
fn stage(root: &Path, args: &[&str], cmdline: &str) -> Output {
    let root = root_arg(root);
    let mut all = vec!["initrd-stage"];
    all.extend_from_slice(args);
    all.push(&root);
    extmerge(&all, cmdline)
}

/// Each of `wanted` is on a line of `output`, each on a later line than the one before.
fn assert_in_order(output: &str, wanted: &[&str]) {
    let lines: Vec<&str> = output.lines().collect();
    let mut from = 0;
    for w in wanted {
        match lines[from..].iter().position(|l| l.contains(w)) {
            Some(i) => from += i + 1,
            None => panic!("{w:?} is not on a line after line {from}:\n{output}"),
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A root with the confext `site` and the sysext `a`, nothing required.
fn stage_root() -> common::TestRoot {
    let t = common::TestRoot::new(&[("usr/lib/os-release", common::DEBIAN)]);
    common::confext_dir(
        &t.p("var/lib/confexts/site"),
        "site",
        "ID=_any\n",
        &[("etc/site.conf", "site\n")],
    );
    sysext_at(&t.path, "var/lib/extensions", "a", "ID=_any\n");
    t
}

/// Stage 2 runs oem-mount, mount-var, flatcar-select, confext refresh and sysext refresh in
/// this order in one process; outside the initrd the OEM mount is not asked for (one line). A failing confext step (here: a `Require=`d confext that is not there) fails
/// the stage with its exit status and the sysext step does not run, as systemd stopped at the
/// failing `ExecStart=` line; a failing `/var` and a failing sysext step are logged and the
/// stage succeeds, as their `-` lines did.
#[test]
fn initrd_stage_2_fails_on_confext_and_goes_on_past_mount_var_and_sysext() {
    let t = stage_root();
    let bad_var = "systemd.mount-extra=/dev/sda1:/var:ext4:rw:extra";
    let require = |class: &str, section: &str, name: &str| {
        write_files(
            &t.path,
            &[(
                &format!("usr/lib/systemd/{class}.conf.d/50-require.conf"),
                &format!("[{section}]\nRequire={name}\n"),
            )],
        )
    };
    require("confext", "ConfExt", "00-default");
    let o = stage(&t.path, &["--stage=2"], bad_var);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = stderr(&o);
    assert_in_order(
        &err,
        &[
            "INFO Not starting sysroot-oem.mount: not in an initrd.",
            "Stage 2 step oem-mount: exit 0,",
            "Not mounting /var: systemd.mount-extra",
            "Stage 2 step mount-var: exit 1,",
            "Stage 2 step mount-var failed (exit 1); its failure does not fail the stage, going on.",
            "not a Flatcar root, nothing to select.",
            "Stage 2 step flatcar-select: exit 0,",
            "required confext cannot be used: '00-default' (not found in any confext directory)",
            "Stage 2 step confext refresh: exit 1,",
            "ERROR Stage 2 failed in step confext refresh (exit 1); not run: sysext refresh.",
        ],
    );
    assert!(!err.contains("step sysext refresh"), "{}", text(&o));
    assert!(
        !err.contains("confext refresh failed (exit"),
        "{}",
        text(&o)
    );
    assert_eq!(t.read("usr/lib/a.txt"), None, "the sysext step ran");
    assert!(t.mounts_at("usr").is_empty() && t.mounts_at("etc").is_empty());

    // The confext is fine now, a required sysext is missing: the sysext step fails, the stage
    // does not.
    require("confext", "ConfExt", "site");
    require("sysext", "SysExt", "absent");
    let o = stage(&t.path, &["--stage=2"], bad_var);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = stderr(&o);
    assert_in_order(
        &err,
        &[
            "Stage 2 step mount-var failed (exit 1)",
            "Stage 2 step flatcar-select: exit 0,",
            &format!("Merged extensions into '{}'", t.p("etc").display()),
            "Stage 2 step confext refresh: exit 0,",
            "required sysext cannot be used: 'absent' (not found in any sysext directory)",
            "Stage 2 step sysext refresh: exit 1,",
            "WARN Stage 2 step sysext refresh failed (exit 1); its failure does not fail the stage, going on.",
        ],
    );
    assert!(!err.contains("Stage 2 failed"), "{}", text(&o));
    assert_eq!(t.read("etc/site.conf").as_deref(), Some("site\n"));
    assert_eq!(t.read("usr/lib/a.txt"), None);

    // Everything fine: the unchanged confext is skipped (77, a success), the sysext merged.
    write_files(
        &t.path,
        &[("usr/lib/systemd/sysext.conf.d/50-require.conf", "")],
    );
    let o = stage(&t.path, &["--stage=2"], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_in_order(
        &stderr(&o),
        &[
            "Stage 2 step oem-mount: exit 0,",
            "Stage 2 step mount-var: exit 0,",
            "Stage 2 step flatcar-select: exit 0,",
            "Stage 2 step confext refresh: exit 77,",
            &format!("Merged extensions into '{}'", t.p("usr").display()),
            "Stage 2 step sysext refresh: exit 0,",
        ],
    );
    assert!(!stderr(&o).contains("WARN"), "{}", text(&o));
    assert_eq!(t.read("usr/lib/a.txt").as_deref(), Some("a"));
    t.finish();
}

/// Stage 2's selection keeps flatcar-select's policy: a missing image under `fail` (kernel
/// command line or `--missing=fail`) fails the stage before the merges; under `warn` the stage
/// goes on, also when the selection itself failed (its exit 3, a success of the step).
#[test]
fn initrd_stage_2_keeps_the_missing_image_policy() {
    let t = common::TestRoot::new(&[
        ("usr/lib/os-release", FLATCAR_OS),
        ("usr/share/flatcar/enabled-sysext.conf", "# none\n"),
        ("etc/flatcar/enabled-sysext.conf", "zfs\n"),
    ]);
    common::confext_dir(
        &t.p("var/lib/confexts/site"),
        "site",
        "ID=_any\n",
        &[("etc/site.conf", "site\n")],
    );
    let missing = "Missing official extension image flatcar-zfs for version 4000.0.0";
    for (args, cmdline) in [
        (&["--stage=2"][..], "extmerge.missing=fail"),
        (&["--stage=2", "--missing=fail"][..], ""),
    ] {
        let o = stage(&t.path, args, cmdline);
        assert_eq!(o.status.code(), Some(1), "{args:?} {cmdline}: {}", text(&o));
        assert_in_order(
            &stderr(&o),
            &[
                &format!("ERROR {missing}"),
                "Stage 2 step flatcar-select: exit 1,",
                "Stage 2 failed in step flatcar-select (exit 1); not run: confext refresh, sysext refresh.",
            ],
        );
        assert_eq!(t.read("etc/site.conf"), None, "a merge ran");
    }
    let o = stage(&t.path, &["--stage=2"], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_in_order(
        &stderr(&o),
        &[
            &format!("WARN {missing}"),
            "Stage 2 step flatcar-select: exit 0,",
            "Stage 2 step confext refresh: exit 0,",
        ],
    );
    assert_eq!(t.read("etc/site.conf").as_deref(), Some("site\n"));

    // A selection that fails (its marker a link loop): under warn exit 3 and the stage goes
    // on; under fail the stage fails there.
    fs::remove_dir_all(t.p("usr/share/flatcar")).unwrap();
    std::os::unix::fs::symlink("flatcar", t.p("usr/share/flatcar")).unwrap();
    let o = stage(&t.path, &["--stage=2"], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_in_order(
        &stderr(&o),
        &[
            "Flatcar selection failed: ",
            "Stage 2 step flatcar-select: exit 3,",
            "Stage 2 step confext refresh: exit 77,",
            "Stage 2 step sysext refresh: exit 0,",
        ],
    );
    assert!(
        !stderr(&o).contains("step flatcar-select failed"),
        "{}",
        text(&o)
    );
    let o = stage(&t.path, &["--stage=2", "--missing=fail"], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "Stage 2 failed in step flatcar-select (exit 1); not run: confext refresh, sysext refresh."
        ),
        "{}",
        text(&o)
    );
    t.finish();
}

/// Mount a tmpfs holding only `initrd-release` over `/etc` of this thread's private mount
/// namespace: extmerge started from here runs "in the initrd" (`rd.` parameters count).
struct PretendInitrd;

impl PretendInitrd {
    fn new() -> PretendInitrd {
        common::run(Command::new("mount").args(["-t", "tmpfs", "tmpfs", "/etc"]));
        fs::write("/etc/initrd-release", "ID=test\n").unwrap();
        PretendInitrd
    }
}

impl Drop for PretendInitrd {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("/etc").status();
    }
}

/// The kill switches and masks, through the stage as systemd starts it: every step honours
/// them, which it can only in the process whose pid systemd gave (`$SYSTEMD_EXEC_PID`), so the
/// steps ran in that one process.
#[test]
fn initrd_stage_2_honours_the_kill_switches_in_its_one_process() {
    let t = stage_root();
    let initrd = PretendInitrd::new();
    let args = ["initrd-stage", "--stage=2", &root_arg(&t.path)];
    let o = extmerge_by_systemd(&args, Some("quiet rd.extmerge=0"), false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_in_order(
        &stderr(&o),
        &[
            // In the initrd, but the unit mounts below /sysroot: PID 1 is not asked.
            &format!(
                "Not starting sysroot-oem.mount: it mounts below /sysroot, the root here is {}.",
                t.path.display()
            ),
            "Disabled by the kernel command line option rd.extmerge=0: not mounting /var.",
            "Disabled by the kernel command line option rd.extmerge=0: no Flatcar selection.",
            "Disabled by the kernel command line option rd.extmerge=0: not touching confexts.",
            "Disabled by the kernel command line option rd.extmerge=0: not touching sysexts.",
        ],
    );
    fs::create_dir_all(t.p("etc/systemd/system")).unwrap();
    std::os::unix::fs::symlink(
        "/dev/null",
        t.p("etc/systemd/system/systemd-sysext.service"),
    )
    .unwrap();
    let o = extmerge_by_systemd(&args, Some("rd.systemd.confext=0"), false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_in_order(
        &stderr(&o),
        &[
            "not a Flatcar root, nothing to select.",
            "Disabled by the kernel command line option rd.systemd.confext=0: not touching confexts.",
            &format!(
                "systemd-sysext.service is masked in {}: not merging sysexts.",
                t.path.display()
            ),
        ],
    );
    assert!(t.mounts_at("usr").is_empty() && t.mounts_at("etc").is_empty());
    // Not started by systemd: the switches do not count (an operator in the emergency shell).
    let o = stage(&t.path, &["--stage=2"], "rd.extmerge=0");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(t.read("etc/site.conf").as_deref(), Some("site\n"));
    assert_eq!(t.read("usr/lib/a.txt").as_deref(), Some("a"));
    drop(initrd);
    t.finish();
}

/// One process: traced with its children, the stage execs nothing after itself and creates
/// no process, only threads, while its steps mount /var, select and merge both classes.
#[test]
fn initrd_stage_2_is_one_process() {
    let t = stage_root();
    let trace = t.scratch("strace.out");
    let o = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=execve,execveat,fork,vfork,clone,clone3",
            "-o",
        ])
        .arg(&trace)
        .arg(BIN)
        .args(["initrd-stage", "--stage=2", &root_arg(&t.path)])
        .env("EXTMERGE_LOG", "debug")
        .env("SYSTEMD_PROC_CMDLINE", "")
        .env_remove("SYSTEMD_EXEC_PID")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap_or_else(|e| panic!("running strace (scripts/install-deps.sh installs it): {e}"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_in_order(
        &stderr(&o),
        &[
            "Stage 2 step mount-var: exit 0,",
            "Stage 2 step flatcar-select: exit 0,",
            "Stage 2 step confext refresh: exit 0,",
            "Stage 2 step sysext refresh: exit 0,",
        ],
    );
    let calls = fs::read_to_string(&trace).unwrap();
    let execs: Vec<&str> = calls
        .lines()
        .filter(|l| l.contains("execve(") || l.contains("execveat("))
        .collect();
    assert_eq!(execs.len(), 1, "{calls}");
    assert!(execs[0].contains(BIN), "{calls}");
    let threads = calls.lines().filter(|l| l.contains("CLONE_THREAD")).count();
    assert!(
        threads >= 1,
        "the merges spawn threads, so the trace sees clones:\n{calls}"
    );
    for l in calls.lines() {
        let starts_call = ["clone(", "clone3(", "fork(", "vfork("]
            .iter()
            .any(|c| l.contains(c));
        assert!(
            !starts_call || l.contains("CLONE_THREAD"),
            "a process was created: {l}\n{calls}"
        );
    }
    assert_eq!(t.read("usr/lib/a.txt").as_deref(), Some("a"));
    t.finish();
}

/// Stage 1 is the confext refresh alone; the options that do not apply are usage errors.
#[test]
fn initrd_stage_1_refreshes_the_confexts_only() {
    let t = stage_root();
    let o = stage(&t.path, &["--stage=1"], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_in_order(&stderr(&o), &["Stage 1 step confext refresh: exit 0,"]);
    assert!(!stderr(&o).contains("step mount-var"), "{}", text(&o));
    assert_eq!(t.read("etc/site.conf").as_deref(), Some("site\n"));
    assert_eq!(t.read("usr/lib/a.txt"), None);
    let o = stage(&t.path, &["--stage=1"], "");
    assert_eq!(
        o.status.code(),
        Some(0),
        "skipped is a success: {}",
        text(&o)
    );
    assert_in_order(&stderr(&o), &["Stage 1 step confext refresh: exit 77,"]);
    for (args, why) in [
        (
            &["--stage=1", "--missing=fail"][..],
            "--missing= is the policy of flatcar-select",
        ),
        (
            &["--stage=2", "--class=sysext"][..],
            "--class does not apply",
        ),
    ] {
        let o = stage(&t.path, args, "");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(stderr(&o).contains(why), "{args:?}: {}", text(&o));
    }
    for args in [&["--stage=2"][..], &["--stage=2", "--root=/"]] {
        let o = extmerge(&[&["initrd-stage"][..], args].concat(), "");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            stderr(&o).contains("not on the running system"),
            "{args:?}: {}",
            text(&o)
        );
    }
    let o = stage(&t.path, &["--stage=3"], "");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    t.finish();
}

/// A step that crashes (a panic on the main thread, injected where its tree is about to be
/// attached) is that step's failure, not the stage's: the crash of the sysext step is logged with
/// the step's name and the stage succeeds with the confext merged, as when each step was its
/// own `-` line of the unit; nothing of the crashed class is left attached. The same crash in the confext step fails the stage.
#[test]
fn initrd_stage_2_survives_a_crash_of_the_sysext_step_and_fails_on_one_of_the_confext_step() {
    let t = stage_root();
    let o = common::extmerge_command()
        .args(["initrd-stage", "--stage=2", &root_arg(&t.path)])
        .env("SYSTEMD_PROC_CMDLINE", "")
        .env_remove("SYSTEMD_EXEC_PID")
        .env("EXTMERGE_FAILPOINT", "before-attach:/usr=panic")
        .output()
        .unwrap_or_else(|e| panic!("running extmerge: {e}"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = stderr(&o);
    assert_in_order(
        &err,
        &[
            "Stage 2 step confext refresh: exit 0,",
            "Stage 2 step sysext refresh crashed: ",
            "WARN Stage 2 step sysext refresh failed (exit 1); its failure does not fail the stage, going on.",
        ],
    );
    assert_eq!(t.read("etc/site.conf").as_deref(), Some("site\n"));
    assert_eq!(
        t.read("usr/lib/a.txt"),
        None,
        "the crashed step merged /usr"
    );
    assert!(t.mounts_at("usr").is_empty(), "{:?}", t.mounts_at("usr"));
    t.ok(&["--class=confext", "unmerge"]);

    let o = common::extmerge_command()
        .args(["initrd-stage", "--stage=2", &root_arg(&t.path)])
        .env("SYSTEMD_PROC_CMDLINE", "")
        .env_remove("SYSTEMD_EXEC_PID")
        .env("EXTMERGE_FAILPOINT", "before-attach:/etc=panic")
        .output()
        .unwrap_or_else(|e| panic!("running extmerge: {e}"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_in_order(
        &stderr(&o),
        &[
            "Stage 2 step confext refresh crashed: ",
            "ERROR Stage 2 failed in step confext refresh (exit 1); not run: sysext refresh.",
        ],
    );
    assert!(t.mounts_at("etc").is_empty() && t.mounts_at("usr").is_empty());
    t.finish();
}
