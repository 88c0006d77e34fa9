//! Upstream's own sysext test (DESIGN.md, "Testing layers" 3b): every block of systemd's
//! `test/units/TEST-50-DISSECT.sysext.sh`, shipped by Debian's `systemd-tests` in the chroot of
//! `make chroot`, runs once with systemd 262's `systemd-sysext` and once with extmerge installed
//! as `systemd-sysext`/`systemd-confext`, on `/` of a disposable copy of the chroot and with
//! `--root=` (tests/upstream/sysext.sh: how the script is split, isolated and judged).
//!
//! Fails when a block passes with systemd but not with extmerge and is not listed in
//! tests/upstream/deliberate-differences.txt, when a listed block passes after all, or when
//! systemd itself fails a block. The per-block lines and the total are printed (nextest shows
//! them for a failure) and kept in target/upstream-sysext/summary.txt, with every run's log.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn upstream_test_50_dissect_sysext() {
    enter_private_mount_ns();
    let chroot = repo().join("target/chroot/unstable");
    assert!(
        chroot.join(".extmerge-ready").exists(),
        "the Debian unstable chroot is missing: run `make chroot` (make test does it)"
    );
    let out = repo().join("target/upstream-sysext");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("mkdir {}: {e}", out.display()));
    let leak = LeakCheck::new(&out);
    let script = repo().join("tests/upstream/sysext.sh");
    let status = Command::new(&script)
        .arg(&chroot)
        .arg(env!("CARGO_BIN_EXE_extmerge"))
        .arg(&out)
        .current_dir(repo())
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    leak.assert_clean();
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    let total = summary
        .lines()
        .rfind(|l| l.starts_with("extmerge "))
        .unwrap_or("(no total: the script stopped before running the blocks)");
    let flagged: Vec<&str> = summary
        .lines()
        .filter(|l| {
            l.contains("[regression") || l.contains("[listed as") || l.contains("(systemd: FAIL")
        })
        .collect();
    assert!(
        status.success(),
        "{} failed ({status}): {total}\n{}\n(per-block lines above; logs in {})",
        script.display(),
        flagged.join("\n"),
        Path::new(&out).join("logs").display()
    );
}
