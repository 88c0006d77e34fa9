//! QEMU boot tests (DESIGN.md, "Testing layers" 4): each scenario of `qemu-tests/scenarios/`
//! boots a Debian unstable guest (6.12 kernel, dracut initrd with `dracut-module/90extmerge`
//! and our static binary) under TCG and checks what the initrd merged. One test per scenario,
//! so the nextest summary counts them; `.config/nextest.toml` runs at most two guests at once.
//!
//! The guest is built and cached under `target/qemu/` by `qemu-tests/build-guest.sh` on first
//! use (the first test to get its lock builds; the others wait). These tests need root and
//! QEMU (`scripts/install-deps.sh` installs it); they fail, never skip, when either is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require_root() {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .expect("running id -u");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "the QEMU boot tests need root (debootstrap, chroot, mount namespaces); CI runs as root"
    );
}

/// Run a harness script with inherited output (nextest shows it for failures) and panic
/// with `what` when it fails.
fn run_script(script: &str, args: &[&str], what: &str) {
    require_root();
    let path = repo().join(script);
    let status = Command::new(&path)
        .args(args)
        .current_dir(repo())
        // A nested `make static` must not try to join the outer make's jobserver.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(
        status.success(),
        "{what} failed ({status}); the output above has the results and the guest's console \
         tail, the logs are in target/qemu/runs/"
    );
}

fn boot(scenario: &str) {
    run_script(
        "qemu-tests/run-scenario.sh",
        &[scenario],
        &format!("QEMU scenario {scenario}"),
    );
}

/// Scenarios that have a test below; `every_scenario_has_a_test` keeps this list honest.
const SCENARIOS: &[&str] = &[
    "first_boot",
    "second_boot",
    "incompatible",
    "demo",
    "refresh_skip",
    "refresh_new_on_second_boot",
    "refresh_live",
    "verity_sidecar",
    "verity_ddi_signed",
    "verity_tampered",
    "verity_untrusted",
    "flatcar_boot",
    "var_disk",
    "kill_switch",
    "missing_default_confext",
    "reload_units",
    "flatcar_download",
    "booted_refresh",
    "booted_systemd257",
    "flatcar_faithful",
    "upstream_verity",
];

#[test]
fn boot_first_boot() {
    boot("first_boot");
}

#[test]
fn boot_second_boot() {
    boot("second_boot");
}

#[test]
fn boot_incompatible() {
    boot("incompatible");
}

/// The guest `make demo` boots, checked like any scenario (its summary is printed by
/// `qemu-tests/demo.sh`).
#[test]
fn boot_demo() {
    boot("demo");
}

/// Issue 6, 7a: two unchanged boots; the stock `systemd-sysext.service` and
/// `systemd-confext.service` skip their refresh, PID 1 never reloads, the mounts keep their IDs
/// and `extmerge refresh` exits 77 in the booted system.
#[test]
fn boot_refresh_skip() {
    boot("refresh_skip");
}

/// Issue 6, 7b: a sysext added before the second boot is merged by that boot's initrd, and the
/// booted system's `systemd-sysext.service` skips.
#[test]
fn boot_refresh_new_on_second_boot() {
    boot("refresh_new_on_second_boot");
}

/// Issue 6, 7c: `extmerge refresh` in the booted system after adding an image, with a reader
/// looping over `/usr`: no failed read, the old overlay's loop devices released.
#[test]
fn boot_refresh_live() {
    boot("refresh_live");
}

/// Issue 5a: a squashfs sysext with `.roothash` and `.verity` sidecars.
#[test]
fn boot_verity_sidecar() {
    boot("verity_sidecar");
}

/// Issue 5b and 5c: signed erofs DDIs from `systemd-repart --make-ddi`, a sysext and Flatcar's
/// default confext (`/usr/lib/confexts/00-flatcar-default.raw`, `/etc` its own upper dir).
#[test]
fn boot_verity_ddi_signed() {
    boot("verity_ddi_signed");
}

/// Issue 5d: a verity image with one flipped byte is not merged; the boot continues.
#[test]
fn boot_verity_tampered() {
    boot("verity_tampered");
}

/// Issue 5e: a DDI signed by an untrusted key under a signed-only image policy is refused.
#[test]
fn boot_verity_untrusted() {
    boot("verity_untrusted");
}

/// Issue 7 (points 1, 2, 4, 5, 6): Flatcar's flow over two boots. The OS image ships the
/// default confext (required), docker built in and an OEM sysext; Ignition writes
/// enabled-sysext.conf, a `/dev/null` mask, an /etc edit, a user confext, a version-pinned and
/// a corrupt sysext. Stage 1 merges /etc before Ignition; stage 2 selects and merges; the units
/// are re-run in the initrd; an A/B update between the boots re-points the links and drops the
/// pinned sysext loudly.
#[test]
fn boot_flatcar_boot() {
    boot("flatcar_boot");
}

/// Issue 7 (point 3): a separate /var disk from `systemd.mount-extra=LABEL=…`, then
/// `rd.extmerge.var=PARTUUID=…` on a GPT partition, with a sysext and a confext on it.
#[test]
fn boot_var_disk() {
    boot("var_disk");
}

/// Issue 7 (point 4): `rd.systemd.sysext=0`, then `rd.extmerge=0`.
#[test]
fn boot_kill_switch() {
    boot("kill_switch");
}

/// Issue 7 (point 5): a required default confext that is missing ends in emergency.target.
#[test]
fn boot_missing_default_confext() {
    boot("missing_default_confext");
}

/// Issue 13 (points 5 and 6): upstream's TEST-50-DISSECT blocks that need a booted systemd
/// (EXTENSION_RESTART_UNITS=, EXTENSION_RELOAD_OR_RESTART_UNITS=, EXTENSION_RELOAD_MANAGER=)
/// pass with extmerge as systemd-sysext, after passing with systemd's own.
#[test]
fn boot_reload_units() {
    boot("reload_units");
}

/// Upstream's TEST-50-DISSECT.sysext.sh cases that need dm-verity (skipped by the chroot layer)
/// pass with extmerge as systemd-sysext wherever they pass with systemd's own.
#[test]
fn boot_upstream_verity() {
    boot("upstream_verity");
}

/// Issue 15 (points 2 and 4): under `rd.extmerge.missing=fail`, a stub downloader ordered between
/// `flatcar-select --dry-run --json` and extmerge-sysroot.service copies the missing official
/// and OEM images from a second disk (the OEM partition is a disk, mounted the way Flatcar's
/// after-Ignition unit does); then an update whose images nobody placed fails the boot with one
/// line per missing image.
#[test]
fn boot_flatcar_download() {
    boot("flatcar_download");
}

/// Issue 16 (point 3): extmerge as the booted system's refresh through systemd's own units
/// (units/booted linked): `systemctl restart systemd-sysext systemd-confext` with a reader busy
/// in /usr and /etc, a new sysext whose service starts after the reload, a user confext, a broken
/// image skipped; a second restart keeps every mount; Varlink over the socket and exec:.
#[test]
fn boot_booted_refresh() {
    boot("booted_refresh");
}

/// Issue 16 (point 3): a systemd 257 guest (Debian trixie, Flatcar Stable's systemd, no
/// refresh-skip logic) with the drop-ins: the booted system does not remount after the initrd's
/// merge; 257's own refresh, run by hand, does.
#[test]
fn boot_booted_systemd257() {
    boot("booted_systemd257");
}

/// Issue 15 (point 5): Flatcar as it ships: signed erofs DDIs (the `Require=`d default confext
/// made by `systemd-repart --make-ddi=confext`, docker, zfs from `enabled-sysext.conf`, the OEM
/// sysext on the OEM partition), `Mutable=auto` with the mutable-/etc link; Ignition mounts the
/// /var disk and writes a user confext there, a user sysext and `var.mount`. Both boots merge
/// everything in the initrd (boot 2 mounts /var from `var.mount`); the stock refresh units merge
/// nothing and /etc, /usr, /var keep the mounts the initrd left (unique mount IDs).
#[test]
fn boot_flatcar_faithful() {
    boot("flatcar_faithful");
}

#[test]
fn every_scenario_has_a_test() {
    let dir = repo().join("qemu-tests/scenarios");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("reading a directory entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut listed: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "every directory of qemu-tests/scenarios needs a #[test] in tests/qemu_boot.rs"
    );
    for s in SCENARIOS {
        // Boot 1 is checked in the guest, or (emergency-boot-1) by what the emergency reports.
        let checks = Path::new(&dir).join(s).join("check-boot-1.sh");
        let emergency = Path::new(&dir).join(s).join("emergency-boot-1");
        assert!(
            checks.is_file() || emergency.is_file(),
            "{} is missing",
            checks.display()
        );
    }
}

/// `systemd-analyze verify` (systemd 262, in the Debian unstable chroot) accepts every unit
/// we ship: the initrd unit, the test stubs and the guest's test units; the dracut modules'
/// scripts parse.
#[test]
fn units_pass_systemd_analyze_verify() {
    run_script(
        "qemu-tests/verify-units.sh",
        &[],
        "systemd-analyze verify of the shipped units",
    );
}
