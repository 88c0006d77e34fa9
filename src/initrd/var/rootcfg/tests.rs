//! Which `/var` the root's configuration defines (no root needed: files in a temporary root).

use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;
use crate::initrd::cmdline::parse;
use crate::initrd::var::What;

fn write(root: &Path, rel: &str, text: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn run(root: &Path, cmdline: &str) -> Result<RootVar> {
    var_from_root(&Root::open(root).unwrap(), &parse(cmdline))
}

fn spec(root: &Path) -> VarSpec {
    match run(root, "").unwrap_or_else(|e| panic!("{e:#}")) {
        RootVar::Mount(spec) => spec,
        other => panic!("no spec: {other:?}"),
    }
}

fn err(root: &Path) -> String {
    format!("{:#}", run(root, "").expect_err("expected an error"))
}

/// (what, fstype, options, source with the root's path replaced by ROOT).
fn summary(root: &Path, s: &VarSpec) -> (What, Option<String>, Option<String>, String) {
    let source = s.source_param.replace(&root.display().to_string(), "ROOT");
    (s.what.clone(), s.fstype.clone(), s.options.clone(), source)
}

fn label(v: &str) -> What {
    What::Label(v.into())
}

#[test]
fn fstab_entry_for_var_with_comments_and_other_mount_points() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "etc/fstab",
        b"# static\nLABEL=root / ext4 defaults 0 1\nLABEL=lib /var/lib ext4 defaults\n\
          LABEL=sw /var swap defaults\nUUID=0a1b /var ext4 nofail,x-systemd.device-timeout=5 0 2\n",
    );
    assert_eq!(
        summary(r, &spec(r)),
        (
            What::Uuid("0a1b".into()),
            Some("ext4".into()),
            Some("nofail,x-systemd.device-timeout=5".into()),
            "ROOT/etc/fstab:5".into()
        )
    );
}

#[test]
fn first_fstab_entry_wins_and_decides_even_when_noauto() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "etc/fstab",
        b"LABEL=a /var auto defaults\nLABEL=b /var ext4 rw\n",
    );
    let s = spec(r);
    assert_eq!(
        summary(r, &s),
        (
            label("a"),
            None,
            Some("defaults".into()),
            "ROOT/etc/fstab:1".into()
        )
    );
    write(
        r,
        "etc/fstab",
        b"LABEL=a //var/ xfs auto,noauto\nLABEL=b /var ext4 rw\n",
    );
    let got = run(r, "").unwrap();
    assert_eq!(
        got,
        RootVar::LeftToSystem {
            source: format!("{}/etc/fstab:1", r.display()),
            why: "noauto: systemd does not mount it at boot by itself".into()
        }
    );
    write(r, "etc/fstab", b"LABEL=a /var xfs noauto,auto\n");
    assert_eq!(spec(r).what, label("a"));
    write(r, "etc/fstab", b"LABEL=a /var xfs x-systemd.automount\n");
    assert!(
        matches!(run(r, "").unwrap(), RootVar::LeftToSystem { why, .. } if why.contains("automount"))
    );
}

#[test]
fn mount_point_through_a_link_and_escapes_count_as_var() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::create_dir_all(r.join("var")).unwrap();
    std::fs::create_dir_all(r.join("srv")).unwrap();
    symlink("/var", r.join("srv/state")).unwrap();
    write(
        r,
        "etc/fstab",
        b"LABEL=x /srv/other ext4\nLABEL=my\\040var /srv/state ext4\n",
    );
    assert_eq!(spec(r).what, label("my var"));
    assert_eq!(spec(r).source_param, format!("{}/etc/fstab:2", r.display()));
}

#[test]
fn etc_unit_overrides_fstab_and_drop_ins_apply() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(r, "etc/fstab", b"LABEL=fstab /var ext4 defaults\n");
    write(
        r,
        "etc/systemd/system/var.mount",
        b"[Unit]\nBefore=local-fs.target\n[Mount]\nWhat=/dev/disk/by-label/VAR\nWhere=/var\n\
          Type=xfs\nOptions=noatime\n[Install]\nWantedBy=local-fs.target\n",
    );
    assert_eq!(
        summary(r, &spec(r)),
        (
            What::Path("/dev/disk/by-label/VAR".into()),
            Some("xfs".into()),
            Some("noatime".into()),
            "ROOT/etc/systemd/system/var.mount:4".into()
        )
    );
    write(
        r,
        "usr/lib/systemd/system/var.mount.d/10-opts.conf",
        b"[Mount]\nOptions=ro\n",
    );
    write(
        r,
        "etc/systemd/system/mount.d/20-type.conf",
        b"[Mount]\nType=ext4\n",
    );
    // Same name in /etc shadows the /usr/lib drop-in.
    write(
        r,
        "etc/systemd/system/var.mount.d/10-opts.conf",
        b"[Mount]\nOptions=nodev\n",
    );
    let s = spec(r);
    assert_eq!(
        (s.fstype.as_deref(), s.options.as_deref()),
        (Some("ext4"), Some("nodev"))
    );
    // Drop-ins apply to the unit generated from fstab too.
    std::fs::remove_file(r.join("etc/systemd/system/var.mount")).unwrap();
    write(
        r,
        "etc/systemd/system/var.mount.d/30-what.conf",
        b"[Mount]\nWhat=UUID=d1\n",
    );
    assert_eq!(
        summary(r, &spec(r)),
        (
            What::Uuid("d1".into()),
            Some("ext4".into()),
            Some("nodev".into()),
            "ROOT/etc/systemd/system/var.mount.d/30-what.conf:2".into()
        )
    );
}

#[test]
fn masks_fstab_switch_and_usr_lib_units() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(r, "etc/fstab", b"LABEL=fstab /var ext4\n");
    write(
        r,
        "usr/lib/systemd/system/var.mount",
        b"[Mount]\nWhat=LABEL=vendor\n",
    );
    assert_eq!(
        spec(r).what,
        label("fstab"),
        "the generator's unit beats /usr/lib"
    );
    assert_eq!(
        summary(
            r,
            &match run(r, "quiet fstab=no").unwrap() {
                RootVar::Mount(s) => s,
                other => panic!("{other:?}"),
            }
        ),
        (
            label("vendor"),
            None,
            None,
            "ROOT/usr/lib/systemd/system/var.mount:2".into()
        )
    );
    let vendor_or_fstab = |cmdline: &str| match run(r, cmdline).unwrap() {
        RootVar::Mount(s) => s.what,
        other => panic!("{other:?}"),
    };
    // A bad value is ignored: the last valid one (or the default, yes) stands.
    assert_eq!(vendor_or_fstab("fstab=bogus"), label("fstab"));
    assert_eq!(vendor_or_fstab("fstab=no fstab=bogus"), label("vendor"));
    assert_eq!(vendor_or_fstab("fstab=0 fstab"), label("fstab"));
    assert_eq!(
        vendor_or_fstab("rd.fstab=no"),
        label("fstab"),
        "rd.fstab= is the initrd's"
    );
    std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
    symlink("/dev/null", r.join("etc/systemd/system/var.mount")).unwrap();
    let masked = RootVar::Masked(format!("{}/etc/systemd/system/var.mount", r.display()));
    assert_eq!(run(r, "").unwrap(), masked);
    std::fs::remove_file(r.join("etc/systemd/system/var.mount")).unwrap();
    write(r, "etc/systemd/system/var.mount", b"");
    assert_eq!(run(r, "").unwrap(), masked, "an empty unit file masks too");
    std::fs::remove_file(r.join("etc/systemd/system/var.mount")).unwrap();
    std::fs::create_dir(r.join("etc/systemd/system/var.mount")).unwrap();
    assert_eq!(spec(r).what, label("fstab"), "a directory is no unit file");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(run(empty.path(), "").unwrap(), RootVar::Undefined);
}

#[test]
fn not_block_device_var_is_left_to_the_booted_system() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    for fstab in [
        &b"tmpfs /var tmpfs mode=0755\n"[..],
        b"srv:/export /var nfs4 defaults\n",
        b"LABEL=v /var ext4 _netdev\n",
        b"/data/var /var none bind\n",
    ] {
        write(r, "etc/fstab", fstab);
        let got = run(r, "").unwrap();
        assert!(
            matches!(&got, RootVar::LeftToSystem { why, .. } if why.contains("not a filesystem on a block device")),
            "{}: {got:?}",
            String::from_utf8_lossy(fstab)
        );
    }
}

#[test]
fn errors_name_the_file_the_line_and_the_reason() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let root = r.display().to_string();
    write(r, "etc/fstab", b"# x\nvar-disk /var ext4\n");
    assert_eq!(
        err(r),
        format!(
            "{root}/etc/fstab:2: WHAT 'var-disk' is neither an absolute device path nor \
             LABEL=, UUID=, PARTUUID=, PARTLABEL="
        )
    );
    write(r, "etc/fstab", b"LABEL=v /var ext4 bind,ro\n");
    assert!(matches!(run(r, "").unwrap(), RootVar::LeftToSystem { .. }));
    let unit = "etc/systemd/system/var.mount";
    write(
        r,
        unit,
        b"[Mount]\nWhat=/dev/vdb\nOptions=rw,\n  remount\n[Mount\n",
    );
    assert_eq!(
        err(r),
        format!(
            "{root}/{unit}:5: invalid section header '[Mount'; systemd refuses to load the unit"
        )
    );
    write(r, unit, b"[Mount]\nWhat=/dev/vdb\nOptions=rw,move\n");
    assert_eq!(
        err(r),
        format!("{root}/{unit}:3: option 'move' is not supported for /var (a plain device mount is needed)")
    );
    write(r, unit, b"[Mount]\nWhere=/var/lib\nWhat=/dev/vdb\n");
    assert!(err(r).starts_with(&format!("{root}/{unit}:2: Where=/var/lib does not match")));
    write(r, unit, b"[Unit]\nWhat=/dev/vdb\n");
    assert_eq!(
        err(r),
        format!("{root}/{unit}: What= is missing; systemd refuses to load the unit")
    );
    let mut big = b"[Mount]\nWhat=/dev/vdb\n".to_vec();
    big.resize(limits::UNIT_FILE as usize + 1, b'#');
    write(r, unit, &big);
    assert!(
        err(r).contains(&format!(
            "larger than the {} bytes allowed",
            limits::UNIT_FILE
        )),
        "{}",
        err(r)
    );
    std::fs::remove_file(r.join(unit)).unwrap();
    let mut big = b"LABEL=v /var ext4\n".to_vec();
    big.resize(limits::FSTAB as usize + 1, b'\n');
    write(r, "etc/fstab", &big);
    let e = err(r);
    assert!(
        e.contains(&format!("{root}/etc/fstab")) && e.contains("larger than"),
        "{e}"
    );
}

#[test]
fn hostile_fstab_bytes() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    // The NUL makes glibc skip the /var line that follows (see ondisk::fstab).
    write(r, "etc/fstab", b"LABEL=a /srv\0 ext4\nLABEL=v /var ext4\n");
    assert_eq!(run(r, "").unwrap(), RootVar::Undefined);
    write(
        r,
        "etc/fstab",
        b"LABEL=a /srv\0 ext4\nLABEL=b /y\nLABEL=v /var ext4\n",
    );
    assert_eq!(spec(r).source_param, format!("{}/etc/fstab:3", r.display()));
    let mut many = Vec::new();
    for i in 0..20_000 {
        many.extend_from_slice(format!("LABEL=x{i} /mnt/{i} ext4\n").as_bytes());
    }
    many.extend_from_slice(b"LABEL=last /var btrfs subvol=@var\n");
    write(r, "etc/fstab", &many);
    let s = spec(r);
    assert_eq!(
        summary(r, &s),
        (
            label("last"),
            Some("btrfs".into()),
            Some("subvol=@var".into()),
            "ROOT/etc/fstab:20001".into()
        )
    );
}
