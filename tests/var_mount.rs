//! `/var` from the kernel command line (here) and from the root's own configuration
//! (`root_config`): `ensure_var` on writable loop devices (root, each test in its own private
//! mount namespace, each ending with a `LeakCheck`).
//!
//! The host has no udev, so `/dev/disk/by-*` links are absent and every LABEL=/UUID=
//! lookup exercises the sysfs + superblock fallback. PARTUUID=/PARTLABEL= cannot be tested
//! end to end here: the host kernel has no partition table support (`CONFIG_EFI_PARTITION`
//! unset, so a `losetup --partscan` device never gets partitions); the GPT reader has unit
//! tests and the QEMU guest (Debian kernel) is where a partitioned /var disk belongs.

mod common;
#[path = "var_mount/root_config.rs"]
mod root_config;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    enter_private_mount_ns, mountinfo_lines_containing, run, write_files, LeakCheck, WritableLoop,
};
use extmerge::initrd::cmdline::parse;
use extmerge::initrd::var::{
    ensure_var, resolve_device, spec_from_cmdline, VarOutcome, VarSpec, What,
};
use rustix::mount::{unmount, UnmountFlags};

/// Generous: the device is there from the start; this only bounds a broken lookup.
const WAIT: Duration = Duration::from_secs(5);

/// Something unique per test and run, short enough for an ext4 label (16 bytes).
fn unique(tag: &str) -> (String, String) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let pid = std::process::id();
    let label = format!("xv{tag}{:x}", (nanos as u32) ^ pid);
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        pid,
        (nanos >> 32) as u16,
        (nanos >> 48) as u16 & 0xfff,
        tag.len() as u16 & 0xfff,
        nanos as u64 & 0xffff_ffff_ffff
    );
    (label, uuid)
}

/// An ext4 image of `size_mb` MiB with a label, a UUID and a file.
fn make_ext4(dir: &Path, label: &str, uuid: &str, size_mb: u64) -> PathBuf {
    let src = dir.join("src");
    write_files(&src, &[("lib/extensions/hello", "hello from /var\n")]);
    let img = dir.join("var.img");
    let file = std::fs::File::create(&img).unwrap_or_else(|e| panic!("creating image: {e}"));
    file.set_len(size_mb << 20)
        .unwrap_or_else(|e| panic!("sizing image: {e}"));
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-L",
            label,
            "-U",
            uuid,
            "-E",
            "root_owner=0:0",
            "-d",
        ])
        .arg(&src)
        .arg(&img)
        .arg(format!("{size_mb}M")));
    img
}

/// A test root with an empty `var` directory.
fn make_root(dir: &Path) -> PathBuf {
    let root = dir.join("sysroot");
    std::fs::create_dir_all(root.join("var")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    root
}

fn spec_of(what: What) -> VarSpec {
    VarSpec {
        what,
        fstype: None,
        options: None,
        source_param: "test".into(),
    }
}

/// The mountinfo line of the mount at `target` (exactly one expected).
fn mount_line(target: &Path) -> String {
    let needle = format!(" {} ", target.display());
    let lines = mountinfo_lines_containing(&needle);
    assert_eq!(lines.len(), 1, "mounts at {}: {lines:#?}", target.display());
    lines[0].clone()
}

/// Mount via `spec`, check the result is a writable ext4 on `dev` with the image's file.
fn check_mounted(root: &Path, spec: &VarSpec, dev: &Path) {
    let outcome = ensure_var(root, Some(spec), WAIT).unwrap_or_else(|e| panic!("{e:#}"));
    let canonical = std::fs::canonicalize(dev).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        outcome,
        VarOutcome::Mounted {
            device: canonical.clone(),
            fstype: "ext4".into()
        }
    );
    let var = root.join("var");
    let line = mount_line(&var);
    let fields: Vec<&str> = line.split(' ').collect();
    assert!(fields[5].split(',').any(|o| o == "rw"), "not rw: {line}");
    assert!(
        line.contains(&format!(" - ext4 {} ", canonical.display())),
        "{line}"
    );
    let hello = std::fs::read_to_string(var.join("lib/extensions/hello"))
        .unwrap_or_else(|e| panic!("reading through the mount: {e}"));
    assert_eq!(hello, "hello from /var\n");
    std::fs::write(var.join("written"), "rw\n").unwrap_or_else(|e| panic!("writing: {e}"));
    unmount(&var, UnmountFlags::DETACH).unwrap_or_else(|e| panic!("unmounting: {e}"));
}

#[test]
fn mounts_by_path_label_and_uuid_read_write() {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaks = LeakCheck::new(tmp.path());
    let (label, uuid) = unique("a");
    let img = make_ext4(tmp.path(), &label, &uuid, 16);
    let root = make_root(tmp.path());
    {
        let lo = WritableLoop::attach(&img);
        // A zero timeout is exactly one look, which finds a device that is already there.
        let found = resolve_device(&What::Label(label.clone()), Duration::ZERO)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(Some(found), std::fs::canonicalize(&lo.dev).ok());
        check_mounted(&root, &spec_of(What::Path(lo.dev.clone())), &lo.dev);
        check_mounted(&root, &spec_of(What::Label(label.clone())), &lo.dev);
        // blkid prints lowercase; an uppercase spec still finds it.
        check_mounted(&root, &spec_of(What::Uuid(uuid.to_uppercase())), &lo.dev);
        // A by-label path works without udev too: it is looked up as the tag.
        let by_label = PathBuf::from(format!("/dev/disk/by-label/{label}"));
        check_mounted(&root, &spec_of(What::Path(by_label)), &lo.dev);
    }
    leaks.assert_clean();
}

#[test]
fn kernel_command_line_spec_with_options_and_missing_mount_point() {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaks = LeakCheck::new(tmp.path());
    let (label, uuid) = unique("b");
    let img = make_ext4(tmp.path(), &label, &uuid, 16);
    let root = tmp.path().join("sysroot");
    std::fs::create_dir(&root).unwrap_or_else(|e| panic!("mkdir: {e}"));
    {
        let lo = WritableLoop::attach(&img);
        let cmdline = format!(
            "quiet systemd.mount-extra=UUID={uuid}:/var:ext4:ro,noexec,nofail,x-initrd.mount,commit=7"
        );
        let spec = spec_from_cmdline(&parse(&cmdline), true)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no spec from {cmdline}"));
        let outcome = ensure_var(&root, Some(&spec), WAIT).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(matches!(outcome, VarOutcome::Mounted { .. }), "{outcome:?}");
        let var = root.join("var");
        let line = mount_line(&var);
        let opts: Vec<&str> = line.split(' ').nth(5).unwrap_or("").split(',').collect();
        assert!(opts.contains(&"ro") && opts.contains(&"noexec"), "{line}");
        assert!(line.contains("commit=7"), "fs option not applied: {line}");
        unmount(&var, UnmountFlags::DETACH).unwrap_or_else(|e| panic!("unmounting: {e}"));

        // A bad filesystem option fails with the kernel's words and leaves nothing mounted.
        let mut bad = spec_of(What::Path(lo.dev.clone()));
        bad.options = Some("no_such_option_xyz".into());
        let e = ensure_var(&root, Some(&bad), WAIT)
            .err()
            .map(|e| format!("{e:#}"));
        let e = e.unwrap_or_else(|| panic!("a bogus option mounted"));
        assert!(e.contains("no_such_option_xyz"), "{e}");
        assert!(mountinfo_lines_containing(&format!(" {} ", var.display())).is_empty());
    }
    leaks.assert_clean();
}

#[test]
fn already_mounted_var_is_used_as_is() {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaks = LeakCheck::new(tmp.path());
    let root = make_root(tmp.path());
    let var = root.join("var");
    extmerge::kernel::mounts::mount_tmpfs(&var, 0o755).unwrap_or_else(|e| panic!("{e:#}"));
    // The device does not exist: used as is means no wait and no lookup at all.
    let spec = spec_of(What::Label("never-there-xyz".into()));
    let start = Instant::now();
    let outcome = ensure_var(&root, Some(&spec), Duration::from_secs(30));
    assert_eq!(
        outcome.unwrap_or_else(|e| panic!("{e:#}")),
        VarOutcome::AlreadyMounted(PathBuf::from("tmpfs"))
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        mountinfo_lines_containing(&format!(" {} ", var.display())).len(),
        1
    );
    assert_eq!(
        ensure_var(&root, None, WAIT).unwrap_or_else(|e| panic!("{e:#}")),
        VarOutcome::NotRequested
    );
    unmount(&var, UnmountFlags::DETACH).unwrap_or_else(|e| panic!("unmounting: {e}"));
    leaks.assert_clean();
}

#[test]
fn a_device_that_never_appears_fails_after_the_timeout() {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaks = LeakCheck::new(tmp.path());
    let root = make_root(tmp.path());
    let timeout = Duration::from_millis(300);
    for what in [
        What::Label("never-there-xyz".into()),
        What::PartUuid("00000000-0000-4000-8000-00000000dead".into()),
        What::Path("/dev/never-there-xyz".into()),
    ] {
        let start = Instant::now();
        let err = ensure_var(&root, Some(&spec_of(what.clone())), timeout)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_else(|| panic!("{what} was found"));
        let elapsed = start.elapsed();
        assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
        assert!(
            elapsed < Duration::from_secs(5),
            "no bounded wait: {elapsed:?}"
        );
        assert!(err.contains(&what.to_string()), "{err}");
        assert!(
            err.contains("300") && err.contains("did not appear"),
            "{err}"
        );
        if !matches!(what, What::Path(_)) {
            assert!(err.contains("/sys/class/block"), "{err}");
        }
    }
    assert!(mountinfo_lines_containing(&format!(" {} ", root.display())).is_empty());
    leaks.assert_clean();
}

/// `<root>/var` as an absolute link to a directory outside the root: the mount lands on the
/// same path inside the root (created there), the directory outside is neither mounted on nor
/// changed.
#[test]
fn a_var_link_out_of_the_root_is_mounted_inside_it() {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaks = LeakCheck::new(tmp.path());
    let (label, uuid) = unique("l");
    let img = make_ext4(tmp.path(), &label, &uuid, 16);
    let sentinel = tmp.path().join("outside/var");
    write_files(&sentinel, &[("keep", "sentinel\n")]);
    let before = common::tree_snapshot(&tmp.path().join("outside"));
    let root = tmp.path().join("sysroot");
    std::fs::create_dir(&root).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::os::unix::fs::symlink(&sentinel, root.join("var")).unwrap_or_else(|e| panic!("{e}"));
    {
        let lo = WritableLoop::attach(&img);
        let outcome = ensure_var(&root, Some(&spec_of(What::Path(lo.dev.clone()))), WAIT)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(matches!(outcome, VarOutcome::Mounted { .. }), "{outcome:?}");
        let inside = root.join(sentinel.strip_prefix("/").unwrap_or(&sentinel));
        mount_line(&inside);
        assert!(
            mountinfo_lines_containing(&format!(" {} ", sentinel.display())).is_empty(),
            "mounted outside the root"
        );
        assert_eq!(
            std::fs::read_to_string(inside.join("lib/extensions/hello"))
                .unwrap_or_else(|e| panic!("{e}")),
            "hello from /var\n"
        );
        // Run again: the link leads to the same mount point, already mounted.
        let again = ensure_var(&root, Some(&spec_of(What::Path(lo.dev.clone()))), WAIT)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(matches!(again, VarOutcome::AlreadyMounted(_)), "{again:?}");
        unmount(&inside, UnmountFlags::DETACH).unwrap_or_else(|e| panic!("unmounting: {e}"));
    }
    assert_eq!(common::tree_snapshot(&tmp.path().join("outside")), before);
    leaks.assert_clean();
}

/// A `var` that resolves to the root itself, or is not a directory, is refused before any
/// device is looked for; nothing is mounted and the error names the path and the reason.
#[test]
fn a_var_that_is_the_root_or_a_file_is_refused() {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaks = LeakCheck::new(tmp.path());
    let root = tmp.path().join("sysroot");
    write_files(&root, &[("etc/file", "x")]);
    let var = root.join("var");
    let never = spec_of(What::Label("never-there-xyz".into()));
    let cases = [
        (
            "/",
            format!(
                "{} resolves to the root directory {} itself; refusing to mount /var over it",
                var.display(),
                root.display()
            ),
        ),
        (
            "../../../..",
            format!(
                "{} resolves to the root directory {} itself; refusing to mount /var over it",
                var.display(),
                root.display()
            ),
        ),
        (
            "/etc/file",
            format!(
                "preparing the mount point {}: {} exists and is not a directory",
                var.display(),
                root.join("etc/file").display()
            ),
        ),
    ];
    for (target, want) in cases {
        let _ = std::fs::remove_file(&var);
        std::os::unix::fs::symlink(target, &var).unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let err = ensure_var(&root, Some(&never), Duration::from_secs(30))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_else(|| panic!("var -> {target} was mounted"));
        assert_eq!(err, want, "var -> {target}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited for the device"
        );
    }
    assert!(mountinfo_lines_containing(&format!(" {}", root.display())).is_empty());
    leaks.assert_clean();
}
