//! `/var` from the root's own configuration: loop-backed ext4 and xfs filesystems named by the
//! root's `etc/fstab` and by `etc/systemd/system/var.mount`, mounted the way the command-line
//! case is (library and binary). Root; each test in its own mount namespace with a LeakCheck.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{make_ext4, make_root, mount_line, unique, WAIT};
use crate::common::{enter_private_mount_ns, mountinfo_lines_containing, run, write_files};
use crate::common::{LeakCheck, WritableLoop};
use extmerge::initrd::cmdline::parse;
use extmerge::initrd::var::{ensure_var, var_from_root, RootVar, VarOutcome, VarSpec, What};
use extmerge::kernel::root::Root;
use rustix::mount::{unmount, UnmountFlags};

/// The root's `/var` spec, which must be one to mount.
fn root_spec(root: &Path) -> VarSpec {
    let r = Root::open(root).unwrap_or_else(|e| panic!("{e:#}"));
    match var_from_root(&r, &parse("quiet")).unwrap_or_else(|e| panic!("{e:#}")) {
        RootVar::Mount(spec) => spec,
        other => panic!("expected a /var to mount, got {other:?}"),
    }
}

/// A sparse 300 MiB xfs image (the smallest mkfs.xfs makes) with a label.
fn make_xfs(dir: &Path, label: &str) -> PathBuf {
    let img = dir.join("var-xfs.img");
    let f = std::fs::File::create(&img).unwrap_or_else(|e| panic!("creating image: {e}"));
    f.set_len(300 << 20)
        .unwrap_or_else(|e| panic!("sizing image: {e}"));
    run(Command::new("mkfs.xfs")
        .args(["-q", "-f", "-L", label])
        .arg(&img));
    img
}

/// The per-mount options of the one mount at `target`.
fn mount_options(target: &Path) -> Vec<String> {
    let line = mount_line(target);
    let opts = line.split(' ').nth(5).unwrap_or("");
    opts.split(',').map(str::to_owned).collect()
}

#[test]
fn fstab_names_an_ext4_var_by_uuid() {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaks = LeakCheck::new(tmp.path());
    let (label, uuid) = unique("f");
    let img = make_ext4(tmp.path(), &label, &uuid, 16);
    let root = make_root(tmp.path());
    let fstab = format!(
        "# written by Ignition\nLABEL=ROOT / ext4 defaults 0 1\n\
         UUID={uuid} /var auto defaults,nofail,x-systemd.device-timeout=5 0 2\n"
    );
    write_files(&root, &[("etc/fstab", &fstab)]);
    {
        let lo = WritableLoop::attach(&img);
        let spec = root_spec(&root);
        assert_eq!(spec.what, What::Uuid(uuid.clone()));
        assert_eq!(spec.source_param, format!("{}/etc/fstab:3", root.display()));
        let outcome = ensure_var(&root, Some(&spec), WAIT).unwrap_or_else(|e| panic!("{e:#}"));
        let device = std::fs::canonicalize(&lo.dev).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            outcome,
            VarOutcome::Mounted {
                device: device.clone(),
                fstype: "ext4".into()
            }
        );
        let var = root.join("var");
        assert!(mount_options(&var).contains(&"rw".to_string()));
        assert!(mount_line(&var).contains(&format!(" - ext4 {} ", device.display())));
        assert_eq!(
            std::fs::read_to_string(var.join("lib/extensions/hello")).unwrap_or_default(),
            "hello from /var\n"
        );
        unmount(&var, UnmountFlags::DETACH).unwrap_or_else(|e| panic!("unmounting: {e}"));
    }
    leaks.assert_clean();
}

#[test]
fn var_mount_names_an_xfs_var_and_wins_over_fstab() {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaks = LeakCheck::new(tmp.path());
    let (label, _) = unique("x");
    let img = make_xfs(tmp.path(), &label);
    let root = make_root(tmp.path());
    let unit = format!(
        "[Unit]\nBefore=local-fs.target\n\n[Mount]\nWhat=/dev/disk/by-label/{label}\n\
         Where=/var\nType=xfs\nOptions=noatime,nodev\n\n[Install]\nWantedBy=local-fs.target\n"
    );
    write_files(
        &root,
        &[
            ("etc/fstab", "LABEL=never-there /var ext4 defaults\n"),
            ("etc/systemd/system/var.mount", &unit),
        ],
    );
    std::fs::create_dir_all(root.join("etc/systemd/system/local-fs.target.wants"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(
        "/etc/systemd/system/var.mount",
        root.join("etc/systemd/system/local-fs.target.wants/var.mount"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    {
        let lo = WritableLoop::attach(&img);
        let spec = root_spec(&root);
        assert_eq!(
            spec.source_param,
            format!("{}/etc/systemd/system/var.mount:5", root.display())
        );
        let outcome = ensure_var(&root, Some(&spec), WAIT).unwrap_or_else(|e| panic!("{e:#}"));
        let device = std::fs::canonicalize(&lo.dev).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            outcome,
            VarOutcome::Mounted {
                device: device.clone(),
                fstype: "xfs".into()
            }
        );
        let var = root.join("var");
        let opts = mount_options(&var);
        for want in ["rw", "noatime", "nodev"] {
            assert!(opts.contains(&want.to_string()), "{want} missing: {opts:?}");
        }
        std::fs::write(var.join("written"), "rw\n").unwrap_or_else(|e| panic!("writing: {e}"));
        unmount(&var, UnmountFlags::DETACH).unwrap_or_else(|e| panic!("unmounting: {e}"));
    }
    leaks.assert_clean();
}

const BIN: &str = env!("CARGO_BIN_EXE_extmerge");

fn mount_var(root: &Path, cmdline: &str) -> Output {
    Command::new(BIN)
        .args(["mount-var", &format!("--root={}", root.display())])
        .env("SYSTEMD_PROC_CMDLINE", cmdline)
        .env_remove("SYSTEMD_EXEC_PID")
        .output()
        .unwrap_or_else(|e| panic!("running {BIN}: {e}"))
}

/// (exit code, stderr) of a run.
fn outcome(o: &Output) -> (Option<i32>, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The command line wins over the root's fstab and says so; without it the fstab's `/var` is
/// mounted and the log names the file and line; a masked unit or a broken entry mounts nothing.
#[test]
fn mount_var_verb_chooses_and_logs_the_source() {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaks = LeakCheck::new(tmp.path());
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&dir_a, &dir_b] {
        std::fs::create_dir(d).unwrap_or_else(|e| panic!("{e}"));
    }
    let ((label_a, uuid_a), (label_b, uuid_b)) = (unique("va"), unique("vb"));
    let img_a = make_ext4(&dir_a, &label_a, &uuid_a, 16);
    let img_b = make_ext4(&dir_b, &label_b, &uuid_b, 16);
    let root = make_root(tmp.path());
    let var = root.join("var");
    write_files(
        &root,
        &[("etc/fstab", &format!("LABEL={label_a} /var ext4 rw\n"))],
    );
    let fstab_line = format!("{}/etc/fstab:1", root.display());
    {
        let (a, b) = (WritableLoop::attach(&img_a), WritableLoop::attach(&img_b));
        let dev = |l: &WritableLoop| std::fs::canonicalize(&l.dev).unwrap_or_default();
        let cmdline = format!("quiet systemd.mount-extra=LABEL={label_b}:/var:ext4");
        let (code, err) = outcome(&mount_var(&root, &cmdline));
        assert_eq!(code, Some(0), "{err}");
        assert!(
            err.contains("Using the /var named on the kernel command line"),
            "{err}"
        );
        assert!(
            err.contains(&format!("{fstab_line} also defines /var")),
            "{err}"
        );
        assert!(mount_line(&var).contains(&format!(" {} ", dev(&b).display())));
        unmount(&var, UnmountFlags::DETACH).unwrap_or_else(|e| panic!("{e}"));

        let (code, err) = outcome(&mount_var(&root, "quiet"));
        assert_eq!(code, Some(0), "{err}");
        let chosen = format!("Using the /var that {fstab_line} defines: LABEL={label_a}.");
        assert!(err.contains(&chosen), "{err}");
        assert!(mount_line(&var).contains(&format!(" {} ", dev(&a).display())));
        let (code, err) = outcome(&mount_var(&root, "quiet"));
        assert_eq!(code, Some(0), "{err}");
        assert!(err.contains("already a mount point"), "{err}");
        unmount(&var, UnmountFlags::DETACH).unwrap_or_else(|e| panic!("{e}"));
    }
    write_files(&root, &[("etc/fstab", "var-disk /var ext4 rw\n")]);
    let (code, err) = outcome(&mount_var(&root, "quiet"));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{fstab_line}: WHAT 'var-disk' is neither")),
        "{err}"
    );
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("/dev/null", root.join("etc/systemd/system/var.mount"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (code, err) = outcome(&mount_var(&root, "quiet"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("var.mount is masked: no separate /var to mount"),
        "{err}"
    );
    assert!(mountinfo_lines_containing(&format!(" {} ", var.display())).is_empty());
    leaks.assert_clean();
}
