//! The two initrd units (`units/`): Flatcar's failure and OEM conventions, checked key by key,
//! and `systemd-analyze verify` of systemd 262 from the Debian unstable chroot (`make chroot`),
//! run as root in a throwaway overlay of the chroot in a private mount namespace.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{enter_private_mount_ns, run, LeakCheck};

const EARLY: &str = "extmerge-sysroot-early.service";
const LATE: &str = "extmerge-sysroot.service";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn unit_text(name: &str) -> String {
    let p = repo().join("units").join(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Every `KEY=VALUE` of `[section]`, in file order (comments and blank lines skipped).
fn entries(text: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.to_owned();
        } else if current == section {
            let (k, v) = line.split_once('=').expect("KEY=VALUE");
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

fn values(text: &str, section: &str, key: &str) -> Vec<String> {
    entries(text, section)
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect()
}

/// Each stage fails the way the Flatcar unit it sits next to does: stage 1 as
/// initrd-setup-root.service (isolate: before Ignition nothing queued may go on), stage 2 as
/// initrd-setup-root-after-ignition.service (replace-irreversibly since bootengine 1b557b4).
#[test]
fn each_stage_fails_into_emergency_as_its_flatcar_unit() {
    for (name, mode) in [(EARLY, "isolate"), (LATE, "replace-irreversibly")] {
        let t = unit_text(name);
        assert_eq!(
            values(&t, "Unit", "OnFailure"),
            ["emergency.target"],
            "{name}"
        );
        assert_eq!(values(&t, "Unit", "OnFailureJobMode"), [mode], "{name}");
        assert_eq!(values(&t, "Unit", "DefaultDependencies"), ["no"], "{name}");
        assert!(
            t.contains("flatcar/init#143") && t.contains("replace-irreversibly stops only"),
            "{name} must say why Flatcar moved to replace-irreversibly"
        );
    }
    assert!(
        unit_text(EARLY).contains("ignition-files.service started after emergency.target"),
        "stage 1 must say why it still isolates"
    );
}

/// Stage 2 starts Flatcar's OEM mount as its first step (`oem-mount`, over PID 1's bus), not in
/// a `systemctl` process of its own (`ExecStartPre=`), nor as a dependency.
#[test]
fn stage_2_starts_the_oem_mount_in_its_one_process_and_orders_its_steps() {
    let t = unit_text(LATE);
    for key in ["ExecStartPre", "ExecStartPost", "ExecCondition"] {
        assert_eq!(values(&t, "Service", key), Vec::<String>::new(), "{key}");
    }
    assert!(
        t.contains("1. oem-mount: ") && t.contains("sysroot-oem.mount"),
        "the unit must say that its first step starts sysroot-oem.mount"
    );
    // The unit's timeout outlasts the OEM job's wait plus the default /var device wait (30 s).
    assert_eq!(values(&t, "Service", "TimeoutStartSec"), ["10min"]);
    assert!(
        extmerge::initrd::oem_mount::JOB_LIMIT + std::time::Duration::from_secs(30)
            < std::time::Duration::from_secs(10 * 60)
    );
    // Not a dependency: /oem may be unmounted earlier in the same transaction.
    for (section, key) in [("Unit", "Wants"), ("Unit", "Requires"), ("Unit", "After")] {
        for v in values(&t, section, key) {
            assert!(!v.contains("sysroot-oem"), "{key}={v}");
        }
    }
    assert_eq!(values(&t, "Unit", "RequiresMountsFor"), ["/sysroot/usr"]);
    // One process runs the steps, in the order and with the failure policy of
    // initrd::stage::plan (tested there and in tests/initrd_cli.rs); it exits 0 unless a step
    // failed the stage, so no other exit status needs to count as a success.
    assert_eq!(
        values(&t, "Service", "ExecStart"),
        ["/usr/bin/extmerge initrd-stage --stage=2 --root=/sysroot"]
    );
    assert_eq!(
        values(&unit_text(EARLY), "Service", "ExecStart"),
        ["/usr/bin/extmerge initrd-stage --stage=1 --root=/sysroot"]
    );
    for name in [EARLY, LATE] {
        assert_eq!(
            values(&unit_text(name), "Service", "SuccessExitStatus"),
            Vec::<String>::new(),
            "{name}"
        );
    }
}

fn chroot_dir() -> PathBuf {
    let p = repo().join("target/chroot/unstable");
    assert!(
        p.join(".extmerge-ready").exists(),
        "the Debian unstable chroot is missing: run `make chroot` (make test does it)"
    );
    p
}

/// A throwaway root in `dir`: the chroot under a tmpfs overlay, with /proc, /dev and /run.
/// Unmounted recursively on drop, also when the test fails.
struct Throwaway {
    dir: PathBuf,
}

impl Throwaway {
    fn new(dir: &Path) -> Throwaway {
        let mount = |args: &[&str], at: PathBuf| run(Command::new("mount").args(args).arg(at));
        mount(&["-t", "tmpfs", "tmpfs"], dir.to_path_buf());
        let t = Throwaway {
            dir: dir.to_path_buf(),
        };
        for sub in ["upper", "work", "root"] {
            fs::create_dir(dir.join(sub)).unwrap();
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            chroot_dir().display(),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        mount(&["-t", "overlay", "overlay", "-o", &opts], t.root());
        mount(&["-t", "proc", "proc"], t.root().join("proc"));
        mount(&["--rbind", "/dev"], t.root().join("dev"));
        mount(&["-t", "tmpfs", "tmpfs"], t.root().join("run"));
        t
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Run `args` in the throwaway root; its exit status and everything it printed.
    fn chroot(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("chroot")
            .arg(self.root())
            .args(args)
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .unwrap_or_else(|e| panic!("running chroot {args:?}: {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Install `units` and the binary they run, then `systemd-analyze verify` them.
    fn verify(&self, units: &[(&str, String)]) -> (bool, String) {
        let r = self.root();
        fs::copy(env!("CARGO_BIN_EXE_extmerge"), r.join("usr/bin/extmerge")).unwrap();
        let mut args = vec!["systemd-analyze", "verify", "--man=no"];
        let paths: Vec<String> = units
            .iter()
            .map(|(name, text)| {
                let inside = format!("/usr/lib/systemd/system/{name}");
                fs::write(r.join(&inside[1..]), text).unwrap();
                inside
            })
            .collect();
        args.extend(paths.iter().map(String::as_str));
        self.chroot(&args)
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg("-R")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .args(["-R", "-l"])
                .arg(&self.dir)
                .status();
        }
    }
}

/// The lines of `output` that name one of `names`.
fn lines_about(output: &str, names: &[&str]) -> Vec<String> {
    output
        .lines()
        .filter(|l| names.iter().any(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

#[test]
fn systemd_analyze_verify_accepts_both_units() {
    enter_private_mount_ns();
    let dir = tempfile::tempdir().unwrap();
    let leaks = LeakCheck::new(dir.path());
    let t = Throwaway::new(dir.path());
    let (_, version) = t.chroot(&["systemd-analyze", "--version"]);
    let version = version.lines().next().unwrap_or_default().to_owned();
    assert!(
        version.starts_with("systemd 262"),
        "the chroot's systemd: {version}"
    );
    let (ok, output) = t.verify(&[(EARLY, unit_text(EARLY)), (LATE, unit_text(LATE))]);
    eprintln!("systemd-analyze verify ({version}), exit ok={ok}, output:\n{output}");
    assert!(ok, "systemd-analyze verify failed:\n{output}");
    assert_eq!(lines_about(&output, &[EARLY, LATE]), Vec::<String>::new());
    drop(t);
    leaks.assert_clean();
}

/// The same harness reports a unit systemd cannot use: the test above can fail.
#[test]
fn systemd_analyze_verify_reports_a_broken_unit() {
    enter_private_mount_ns();
    let dir = tempfile::tempdir().unwrap();
    let leaks = LeakCheck::new(dir.path());
    let t = Throwaway::new(dir.path());
    let broken = unit_text(LATE)
        .replace(
            "OnFailureJobMode=replace-irreversibly",
            "OnFailureJobMode=sometimes",
        )
        .replace(
            "/usr/bin/extmerge initrd-stage",
            "/usr/bin/no-such-tool initrd-stage",
        );
    let (_, output) = t.verify(&[(LATE, broken)]);
    eprintln!("systemd-analyze verify of a broken copy:\n{output}");
    let about = lines_about(&output, &[LATE]);
    assert!(
        about.iter().any(|l| l.contains("OnFailureJobMode"))
            && about.iter().any(|l| l.contains("/usr/bin/no-such-tool")),
        "verify did not report both problems:\n{output}"
    );
    drop(t);
    leaks.assert_clean();
}
