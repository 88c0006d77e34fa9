//! `flatcar-select` and missing images, through the real binary: the `--json` report (exact
//! fields), the `warn` and `fail` policies, the policy on the kernel command line, and the
//! failure message naming each missing image and where it must go. No mounts: temporary trees.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::write_files;
use serde_json::json;

const V: &str = "4000.0.0";
const OEM_IMAGE: &str = "/oem/sysext/oem-qemu-4000.0.0.raw";
const ZFS_IMAGE: &str = "/etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw";
const PODMAN_IMAGE: &str = "/etc/flatcar/sysext/flatcar-podman-4000.0.0.raw";

/// Run extmerge with `args` and a fixed kernel command line (`$SYSTEMD_PROC_CMDLINE`), not as
/// a systemd service, logging at the default level (the lines a user sees).
fn extmerge(args: &[&str], cmdline: &str) -> Output {
    common::extmerge_command()
        .args(args)
        .env("SYSTEMD_PROC_CMDLINE", cmdline)
        .env("EXTMERGE_LOG", "info")
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

/// A Flatcar root with the OEM `qemu` active and `zfs`, `podman` enabled; only `podman`'s
/// image is there.
fn lacking_two() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    write_files(
        t.path(),
        &[
            (
                "usr/lib/os-release",
                "ID=flatcar\nVERSION=4000.0.0\nVERSION_ID=4000.0.0\nFLATCAR_BOARD=amd64-usr\n",
            ),
            ("usr/share/flatcar/enabled-sysext.conf", "# none\n"),
            ("etc/flatcar/enabled-sysext.conf", "zfs\npodman\n"),
            (&PODMAN_IMAGE[1..], "podman image"),
            ("oem/oem-release", "ID=qemu\n"),
            ("oem/sysext/active-oem-qemu", ""),
        ],
    );
    t
}

fn root_arg(root: &Path) -> String {
    format!("--root={}", root.display())
}

/// The report every run below must print: exactly these objects, exactly these fields.
fn expected_report() -> serde_json::Value {
    json!([
        {"name": "oem-qemu", "version": V, "path": OEM_IMAGE, "kind": "oem"},
        {"name": "flatcar-zfs", "version": V, "path": ZFS_IMAGE, "kind": "official"},
    ])
}

fn report(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// The stderr lines that report a missing image.
fn missing_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains("Missing "))
        .map(str::to_owned)
        .collect()
}

fn podman_linked(r: &Path) -> bool {
    fs::read_link(r.join("etc/extensions/flatcar-podman.raw"))
        .is_ok_and(|t| t == Path::new(PODMAN_IMAGE))
}

#[test]
fn dry_run_json_lists_each_missing_image_with_exact_fields() {
    let t = lacking_two();
    let o = extmerge(
        &[
            "flatcar-select",
            "--dry-run",
            "--json=short",
            &root_arg(t.path()),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 1, "--json=short is one line: {out}");
    assert_eq!(report(&o), expected_report());
    for entry in report(&o).as_array().unwrap() {
        let mut keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["kind", "name", "path", "version"]);
    }
    assert!(
        !t.path().join("etc/extensions").exists(),
        "--dry-run changed the root"
    );

    // The policy judges boots, not plans: a dry run under `fail` still reports and exits 0.
    let o = extmerge(
        &[
            "flatcar-select",
            "--dry-run",
            "--json=pretty",
            "--missing=fail",
            &root_arg(t.path()),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(report(&o), expected_report());
    // The text plan says the same.
    let o = extmerge(&["flatcar-select", "--dry-run", &root_arg(t.path())], "");
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(
        plan.contains(&format!(
            "missing oem-qemu: place it at {OEM_IMAGE} (preferred) or \
             /etc/flatcar/oem-sysext/oem-qemu-{V}.raw"
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("missing flatcar-zfs: place it at {ZFS_IMAGE}")),
        "{plan}"
    );
}

#[test]
fn warn_logs_one_warning_per_missing_image_and_succeeds() {
    common::require_root();
    let t = lacking_two();
    let r = t.path();
    let o = extmerge(&["flatcar-select", "--json=short", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(report(&o), expected_report(), "still missing after the run");
    let lines = missing_lines(&o);
    assert_eq!(lines.len(), 2, "{}", text(&o));
    assert!(
        lines[0].contains(&format!(
            "Missing OEM extension image oem-qemu for version {V}: place it at {OEM_IMAGE}"
        )),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(&format!(
            "Missing official extension image flatcar-zfs for version {V}: place it at {ZFS_IMAGE}"
        )),
        "{lines:?}"
    );
    for l in &lines {
        assert!(l.starts_with(" WARN "), "{l}");
        assert!(
            l.ends_with("going on without it (missing-image policy warn, the default)."),
            "{l}"
        );
    }
    assert!(podman_linked(r), "the image that is there must be linked");
}

#[test]
fn fail_logs_one_error_per_missing_image_and_exits_1() {
    common::require_root();
    let t = lacking_two();
    let r = t.path();
    let o = extmerge(&["flatcar-select", "--missing=fail", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let lines = missing_lines(&o);
    assert_eq!(
        lines,
        [
            format!(
                "ERROR Missing OEM extension image oem-qemu for version {V}: place it at \
                 {OEM_IMAGE} (preferred) or /etc/flatcar/oem-sysext/oem-qemu-{V}.raw (Flatcar \
                 downloads https://update.release.flatcar-linux.net/amd64-usr/{V}/oem-qemu.gz, a \
                 signed update payload); failing (missing-image policy fail, --missing=fail)."
            ),
            format!(
                "ERROR Missing official extension image flatcar-zfs for version {V}: place it \
                 at {ZFS_IMAGE} (Flatcar downloads \
                 https://update.release.flatcar-linux.net/amd64-usr/{V}/flatcar-zfs.gz, a signed \
                 update payload); failing (missing-image policy fail, --missing=fail)."
            ),
        ],
        "{}",
        text(&o)
    );
    // Nothing else is an error: exactly one line per missing image.
    let errors = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.starts_with("ERROR"))
        .count();
    assert_eq!(errors, 2, "{}", text(&o));
    assert!(
        podman_linked(r),
        "the image that is there is linked even when failing"
    );

    // Once the images are placed, the same policy succeeds.
    write_files(r, &[(&OEM_IMAGE[1..], "oem"), (&ZFS_IMAGE[1..], "zfs")]);
    let o = extmerge(
        &[
            "flatcar-select",
            "--missing=fail",
            "--json=short",
            &root_arg(r),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(report(&o), json!([]));
    assert_eq!(missing_lines(&o), Vec::<String>::new());
    assert_eq!(
        fs::read_link(r.join("etc/extensions/oem-qemu.raw")).unwrap(),
        Path::new(OEM_IMAGE)
    );
}

#[test]
fn the_kernel_command_line_sets_the_policy_and_wins_over_the_option() {
    common::require_root();
    let t = lacking_two();
    let r = t.path();
    let o = extmerge(
        &["flatcar-select", &root_arg(r)],
        "quiet extmerge.missing=fail",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let lines = missing_lines(&o);
    assert_eq!(lines.len(), 2, "{}", text(&o));
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with("failing (missing-image policy fail, extmerge.missing=fail).")),
        "{lines:?}"
    );

    let o = extmerge(
        &["flatcar-select", "--missing=fail", &root_arg(r)],
        "extmerge.missing=warn",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        missing_lines(&o)
            .iter()
            .all(|l| l.ends_with("(missing-image policy warn, extmerge.missing=warn).")),
        "{}",
        text(&o)
    );

    // Outside the initrd the rd. key does not count; a value that is neither word is ignored.
    let o = extmerge(
        &["flatcar-select", &root_arg(r)],
        "rd.extmerge.missing=fail",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = extmerge(
        &["flatcar-select", "--missing=fail", &root_arg(r)],
        "extmerge.missing=maybe",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "Ignoring the kernel command line option extmerge.missing=maybe: the missing-image \
             policy is 'warn' or 'fail'."
        ),
        "{}",
        text(&o)
    );
}

/// A selection that cannot run (here: an oversized enabled-sysext.conf) is a failure either
/// way: exit 1 under `fail`, and 3 under `warn`, the status the initrd unit boots past.
#[test]
fn a_failed_selection_is_exit_3_under_warn_and_1_under_fail() {
    common::require_root();
    let t = lacking_two();
    let r = t.path();
    fs::write(
        r.join("etc/flatcar/enabled-sysext.conf"),
        "zfs\n".repeat(300_000),
    )
    .unwrap();
    let conf = r.join("etc/flatcar/enabled-sysext.conf");
    let why = format!(
        "reading {}: larger than the 1048576 bytes allowed",
        conf.display()
    );

    let o = extmerge(&["flatcar-select", &root_arg(r)], "");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        format!("ERROR Flatcar selection failed: {why}; going on (missing-image policy warn, the default).")
    );

    let o = extmerge(&["flatcar-select", &root_arg(r)], "extmerge.missing=fail");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        format!("ERROR Flatcar selection failed (missing-image policy fail, extmerge.missing=fail): {why}")
    );

    // A dry run that cannot report is exit 1 whatever the policy.
    let o = extmerge(
        &["flatcar-select", "--dry-run", "--json=short", &root_arg(r)],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
}

#[test]
fn outside_flatcar_the_report_is_empty() {
    let t = tempfile::tempdir().unwrap();
    write_files(
        t.path(),
        &[
            ("usr/lib/os-release", "ID=debian\n"),
            ("etc/flatcar/enabled-sysext.conf", "zfs\n"),
        ],
    );
    let o = extmerge(
        &[
            "flatcar-select",
            "--dry-run",
            "--json=short",
            "--missing=fail",
            &root_arg(t.path()),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "[]\n");
}
