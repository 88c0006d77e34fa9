//! Integration tests of `merge`, `unmerge` and `status` on temporary roots (root, host kernel).
//! Each test runs in its own private mount namespace and ends with a leak check.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

type Root = TestRoot;

/// A private mount namespace and a root tree with `os_release` and some host files.
fn new_root(os_release: &str) -> Root {
    TestRoot::new(&[
        ("usr/lib/os-release", os_release),
        ("usr/bin/host-tool", "host\n"),
        ("usr/share/shadowed", "host\n"),
        ("etc/hostname", "box\n"),
        ("etc/shadowed.conf", "host\n"),
    ])
}

/// `status --json=short` of the root.
fn status(r: &Root) -> Vec<Value> {
    json_rows(&r.run(&["status", "--json=short"]))
}

#[test]
fn merges_directory_squashfs_erofs_ext4_and_btrfs_sysexts() {
    let r = new_root(DEBIAN);
    let src = r.p("../src");
    for (name, mkfs) in [
        ("b-sq", "squashfs"),
        ("c-erofs", "erofs"),
        ("d-ext4", "ext4"),
        ("e-btrfs", "btrfs"),
    ] {
        let tree = src.join(name);
        sysext_dir(
            &tree,
            name,
            "ID=debian\nVERSION_ID=13\n",
            &[(&format!("usr/bin/{name}"), name)],
        );
        let out = r.p(&format!("var/lib/extensions/{name}.raw"));
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        match mkfs {
            "squashfs" => mkfs_squashfs(&tree, &out),
            "erofs" => mkfs_erofs(&tree, &out),
            "ext4" => mkfs_ext4(&tree, &out, 8),
            _ => mkfs_btrfs(&tree, &out),
        }
    }
    sysext_dir(
        &r.p("run/extensions/a-dir"),
        "a-dir",
        "ID=_any\n",
        &[("usr/bin/a-dir", "a-dir")],
    );

    let log = r.ok(&["merge", "--class=sysext"]);
    for name in ["a-dir", "b-sq", "c-erofs", "d-ext4", "e-btrfs"] {
        assert_eq!(
            r.read(&format!("usr/bin/{name}")).as_deref(),
            Some(name),
            "{log}"
        );
    }
    assert_eq!(r.read("usr/bin/host-tool").as_deref(), Some("host\n"));
    let line = r.mount_line("usr").expect("usr is a mount");
    assert!(line.contains(" - overlay sysext "), "{line}");
    let opts = line.split(' ').nth(5).unwrap();
    assert!(
        opts.split(',').any(|o| o == "ro") && opts.contains("nodev"),
        "{line}"
    );
    assert!(!opts.contains("noexec"), "sysext must stay exec: {line}");
    assert_eq!(
        r.read("usr/.systemd-sysext/extensions").as_deref(),
        Some("a-dir\nb-sq\nc-erofs\nd-ext4\ne-btrfs\n")
    );
    // The meta `dev` marks the mount as ours for systemd's is_our_mount_point.
    let dev = r.read("usr/.systemd-sysext/dev").unwrap();
    let st = rustix::fs::stat(r.p("usr")).unwrap();
    assert_eq!(
        dev,
        format!(
            "{}:{}\n",
            rustix::fs::major(st.st_dev),
            rustix::fs::minor(st.st_dev)
        )
    );
    // Images are never mounted on their own in the caller's namespace.
    let staged: Vec<String> = mountinfo()
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|mp| mp.starts_with("/run/extmerge/ws"))
        })
        .map(str::to_string)
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
    assert!(
        r.mount_line("opt").is_none(),
        "no extension populates /opt: it must not be touched"
    );

    let st = status(&r);
    let usr = st.iter().find(|s| s["hierarchy"] == "/usr").unwrap();
    assert_eq!(
        usr["extensions"],
        serde_json::json!(["a-dir", "b-sq", "c-erofs", "d-ext4", "e-btrfs"])
    );
    assert!(usr["since"].as_u64().unwrap() > 0);

    r.ok(&["unmerge", "--class=sysext"]);
    assert!(r.read("usr/bin/a-dir").is_none());
    assert!(r.mount_line("usr").is_none());
    assert_eq!(
        status(&r)
            .iter()
            .find(|s| s["hierarchy"] == "/usr")
            .unwrap()["extensions"],
        serde_json::json!([])
    );
    r.finish();
}

/// Deliberate difference (README, "`status` reports the merge in the root"): with `--root`,
/// systemd 262's `since` stats the hierarchy without the root prefix (the caller's own `/usr`);
/// extmerge reports when the hierarchy inside the root was merged.
#[test]
fn status_since_is_when_the_hierarchy_in_the_root_was_merged() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/a"),
        "a",
        "ID=_any\n",
        &[("usr/share/a", "a")],
    );
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    };
    // Whole seconds: the merged root's timestamps come from the kernel's coarse clock.
    let before = now_us() / 1_000_000 * 1_000_000;
    r.ok(&["merge", "--class=sysext"]);
    let after = now_us();
    let st = status(&r);
    let since = st.iter().find(|s| s["hierarchy"] == "/usr").unwrap()["since"]
        .as_u64()
        .unwrap();
    assert!(
        (before..=after).contains(&since),
        "since {since} is not the merge time ({before}..={after})"
    );
    let host_usr = std::fs::metadata("/usr").unwrap().modified().unwrap();
    let host_us = host_usr
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert_ne!(since, host_us, "not the caller's /usr");
    r.finish();
}

/// Inspecting an extension never changes it: no access time moves (an atime update dirties the
/// inode and, on btrfs, the subvolume's change time that systemd records for a subvolume).
#[test]
fn list_merge_refresh_and_unmerge_leave_access_times_alone() {
    let r = new_root(DEBIAN);
    let ext = r.p("var/lib/extensions/a");
    sysext_dir(&ext, "a", "ID=_any\n", &[("usr/share/a", "a")]);
    let release = ext.join("usr/lib/extension-release.d/extension-release.a");
    // An access time older than the modification time: relatime would update it on a read.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let atimes = || -> Vec<std::time::SystemTime> {
        [
            &release,
            &ext.join("usr/share/a"),
            &ext,
            &ext.join("usr/lib"),
        ]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().accessed().unwrap())
        .collect()
    };
    for p in [&release, &ext.join("usr/share/a")] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_accessed(old))
            .unwrap();
    }
    for d in [&ext, &ext.join("usr/lib")] {
        let f = std::fs::File::open(d).unwrap();
        f.set_times(std::fs::FileTimes::new().set_accessed(old))
            .unwrap();
    }
    let before = atimes();
    assert!(before.iter().all(|t| *t == old));
    r.ok(&["list", "--class=sysext"]);
    r.ok(&["merge", "--class=sysext"]);
    r.run(&["refresh", "--class=sysext"]);
    r.ok(&["refresh", "--class=sysext", "--always-refresh=yes"]);
    r.ok(&["unmerge", "--class=sysext"]);
    assert_eq!(atimes(), before, "an access time moved");
    r.finish();
}

/// `--mutable=yes` creates the mutable directories before anything is gathered, so the state it
/// records is the one the next run finds: the first refresh after the merge skips.
#[test]
fn the_first_refresh_after_a_mutable_yes_merge_skips() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/a"),
        "a",
        "ID=_any\n",
        &[("usr/share/a", "a"), ("opt/a", "a")],
    );
    assert!(!r.p("var/lib/extensions.mutable").exists());
    r.ok(&["merge", "--class=sysext", "--mutable=yes"]);
    assert!(r.p("var/lib/extensions.mutable/usr").is_dir());
    assert!(r.p("var/lib/extensions.mutable/opt").is_dir());
    let (code, log) = refresh(&r, &["--class=sysext", "--mutable=yes"]);
    assert_eq!(code, 77, "{log}");
    r.finish();
}

#[test]
fn highest_name_wins_and_lower_layers_shine_through() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/app_9"),
        "app_9",
        "ID=_any\n",
        &[("usr/share/shadowed", "nine\n"), ("usr/share/only9", "9")],
    );
    sysext_dir(
        &r.p("etc/extensions/app_10"),
        "app_10",
        "ID=_any\n",
        &[("usr/share/shadowed", "ten\n")],
    );
    r.ok(&["merge", "--class=sysext"]);
    assert_eq!(
        r.read("usr/share/shadowed").as_deref(),
        Some("ten\n"),
        "app_10 sorts above app_9"
    );
    assert_eq!(r.read("usr/share/only9").as_deref(), Some("9"));
    assert_eq!(
        r.read("usr/.systemd-sysext/extensions").as_deref(),
        Some("app_9\napp_10\n")
    );
    r.finish();
}

#[test]
fn confext_is_noexec_nosuid_and_noexec_flag_toggles_it() {
    let r = new_root(DEBIAN);
    confext_dir(
        &r.p("run/confexts/site"),
        "site",
        "ID=_any\n",
        &[("etc/site.conf", "x\n"), ("etc/shadowed.conf", "site\n")],
    );
    r.ok(&["merge", "--class=confext"]);
    assert_eq!(r.read("etc/site.conf").as_deref(), Some("x\n"));
    assert_eq!(r.read("etc/shadowed.conf").as_deref(), Some("site\n"));
    assert_eq!(r.read("etc/hostname").as_deref(), Some("box\n"));
    let line = r.mount_line("etc").unwrap();
    assert!(line.contains(" - overlay confext "), "{line}");
    let opts = line.split(' ').nth(5).unwrap();
    for o in ["ro", "nodev", "nosuid", "noexec"] {
        assert!(opts.split(',').any(|x| x == o), "{o} missing: {line}");
    }
    assert_eq!(
        r.read("etc/.systemd-confext/confexts").as_deref(),
        Some("site\n")
    );
    r.ok(&["unmerge", "--class=confext"]);
    r.ok(&["merge", "--class=confext", "--noexec=no"]);
    let line = r.mount_line("etc").unwrap();
    assert!(
        !line.split(' ').nth(5).unwrap().contains("noexec"),
        "{line}"
    );
    r.finish();
}

#[test]
fn flatcar_etc_is_its_own_upper_and_writes_land_in_the_real_etc() {
    let r = new_root("ID=flatcar\nVERSION_ID=4000.0.0\n");
    write_files(
        &r.path,
        &[("usr/lib/systemd/confext.conf", "[ConfExt]\nMutable=auto\n")],
    );
    std::fs::create_dir_all(r.p("var/lib/extensions.mutable")).unwrap();
    symlink("/etc", r.p("var/lib/extensions.mutable/etc")).unwrap();
    confext_dir(
        &r.p("usr/lib/confexts/00-flatcar-default"),
        "00-flatcar-default",
        "ID=_any\n",
        &[
            ("etc/default.conf", "default\n"),
            ("etc/shadowed.conf", "default\n"),
        ],
    );
    r.ok(&["merge", "--class=confext"]);
    let line = r.mount_line("etc").unwrap();
    let sup = line.split(" - ").nth(1).unwrap();
    assert!(
        sup.contains(&format!("upperdir={}", r.p("etc").display())),
        "{line}"
    );
    assert!(
        sup.contains(&format!(
            "workdir={}",
            r.p(".systemd-etc-workdir").display()
        )),
        "{line}"
    );
    assert!(
        !sup.contains(&format!("lowerdir+={},", r.p("etc").display())),
        "/etc must not be a lower: {line}"
    );
    let opts = line.split(' ').nth(5).unwrap();
    assert!(
        opts.split(',').any(|o| o == "rw") && opts.contains("noatime"),
        "{line}"
    );
    // mountinfo lists only options that differ from the kernel defaults (as upstream TEST-50 checks).
    assert!(
        sup.contains("redirect_dir=on")
            && !sup.contains("metacopy=on")
            && !sup.contains("index=on"),
        "{line}"
    );
    // The user's copy in the upper wins over the default confext.
    assert_eq!(r.read("etc/shadowed.conf").as_deref(), Some("host\n"));
    assert_eq!(r.read("etc/default.conf").as_deref(), Some("default\n"));
    std::fs::write(r.p("etc/written-after-merge"), "kept\n").unwrap();
    // The meta dir is bound read-only on a writable overlay.
    assert!(std::fs::write(r.p("etc/.systemd-confext/extra"), "x").is_err());
    assert!(r.p(".systemd-etc-workdir").is_dir());
    assert_eq!(
        r.read("etc/.systemd-confext/work_dir").as_deref(),
        Some(".systemd-etc-workdir\n")
    );

    r.ok(&["unmerge", "--class=confext"]);
    assert_eq!(
        r.read("etc/written-after-merge").as_deref(),
        Some("kept\n"),
        "write landed in the real /etc"
    );
    assert!(r.read("etc/default.conf").is_none());
    assert!(
        !r.p(".systemd-etc-workdir").exists(),
        "work dir removed on unmerge"
    );
    r.finish();
}

/// Expected visibility per mutable mode (upstream TEST-50 scenarios 6-28).
#[test]
fn every_mutable_mode_on_opt() {
    struct Case {
        mode: &'static str,
        writable: bool,
        sees_mutable_file: bool,
        write_persists_in_mutable_dir: bool,
    }
    let cases = [
        Case {
            mode: "no",
            writable: false,
            sees_mutable_file: false,
            write_persists_in_mutable_dir: false,
        },
        Case {
            mode: "auto",
            writable: true,
            sees_mutable_file: true,
            write_persists_in_mutable_dir: true,
        },
        Case {
            mode: "yes",
            writable: true,
            sees_mutable_file: true,
            write_persists_in_mutable_dir: true,
        },
        Case {
            mode: "import",
            writable: false,
            sees_mutable_file: true,
            write_persists_in_mutable_dir: false,
        },
        Case {
            mode: "ephemeral",
            writable: true,
            sees_mutable_file: false,
            write_persists_in_mutable_dir: false,
        },
        Case {
            mode: "ephemeral-import",
            writable: true,
            sees_mutable_file: true,
            write_persists_in_mutable_dir: false,
        },
    ];
    let r = new_root(DEBIAN);
    write_files(
        &r.path,
        &[
            ("opt/host-file", "h"),
            ("var/lib/extensions.mutable/opt/mutable-file", "u"),
        ],
    );
    std::fs::set_permissions(
        r.p("var/lib/extensions.mutable/opt"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(r.p("opt"), std::fs::Permissions::from_mode(0o755)).unwrap();
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("opt/ext-file", "e")],
    );
    for c in cases {
        let env_opts = format!("--mutable={}", c.mode);
        let log = r.ok(&["merge", "--class=sysext", &env_opts]);
        assert_eq!(
            r.read("opt/ext-file").as_deref(),
            Some("e"),
            "{}: {log}",
            c.mode
        );
        assert_eq!(r.read("opt/host-file").as_deref(), Some("h"), "{}", c.mode);
        assert_eq!(
            r.read("opt/mutable-file").is_some(),
            c.sees_mutable_file,
            "{}",
            c.mode
        );
        let wrote = std::fs::write(r.p("opt/new-file"), c.mode).is_ok();
        assert_eq!(wrote, c.writable, "{}: writable", c.mode);
        r.ok(&["unmerge", "--class=sysext"]);
        let persisted = r.p("var/lib/extensions.mutable/opt/new-file").exists();
        assert_eq!(
            persisted, c.write_persists_in_mutable_dir,
            "{}: persisted",
            c.mode
        );
        assert!(
            !r.p("opt/new-file").exists(),
            "{}: never in the host /opt",
            c.mode
        );
        let _ = std::fs::remove_file(r.p("var/lib/extensions.mutable/opt/new-file"));
        assert!(r.mount_line("opt").is_none(), "{}", c.mode);
    }
    r.finish();
}

#[test]
fn mutable_yes_creates_the_dir_with_the_hierarchy_mode_and_mode_is_preserved() {
    let r = new_root(DEBIAN);
    std::fs::create_dir_all(r.p("opt")).unwrap();
    std::fs::set_permissions(r.p("opt"), std::fs::Permissions::from_mode(0o750)).unwrap();
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("opt/ext-file", "e")],
    );
    for mode in ["no", "yes", "ephemeral"] {
        r.ok(&["merge", "--class=sysext", &format!("--mutable={mode}")]);
        let m = std::fs::metadata(r.p("opt")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            m, 0o750,
            "merged /opt keeps the host mode with --mutable={mode}"
        );
        r.ok(&["unmerge", "--class=sysext"]);
        let m = std::fs::metadata(r.p("opt")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, 0o750);
    }
    let m = std::fs::metadata(r.p("var/lib/extensions.mutable/opt"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(
        m, 0o750,
        "yes created the mutable dir with the hierarchy's mode"
    );
    r.finish();
}

#[test]
fn mutable_self_link_with_import_is_refused_and_nothing_is_attached() {
    let r = new_root(DEBIAN);
    std::fs::create_dir_all(r.p("var/lib/extensions.mutable")).unwrap();
    symlink("/etc", r.p("var/lib/extensions.mutable/etc")).unwrap();
    confext_dir(
        &r.p("run/confexts/c"),
        "c",
        "ID=_any\n",
        &[("etc/c.conf", "c")],
    );
    let out = r.run(&["merge", "--class=confext", "--mutable=import"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/etc"), "{err}");
    assert!(r.mount_line("etc").is_none(), "failure attaches nothing");
    r.finish();
}

#[test]
fn submounts_are_carried_into_the_overlay_and_restored() {
    let r = new_root(DEBIAN);
    std::fs::create_dir_all(r.p("usr/share/oem")).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "oemfs"])
        .arg(r.p("usr/share/oem")));
    std::fs::write(r.p("usr/share/oem/oem-release"), "ID=qemu\n").unwrap();
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("usr/share/ext", "e")],
    );
    r.ok(&["merge", "--class=sysext"]);
    assert_eq!(r.read("usr/share/ext").as_deref(), Some("e"));
    assert_eq!(
        r.read("usr/share/oem/oem-release").as_deref(),
        Some("ID=qemu\n"),
        "submount visible through the overlay"
    );
    assert!(r.mount_line("usr/share/oem").is_some());
    r.ok(&["unmerge", "--class=sysext"]);
    assert_eq!(
        r.read("usr/share/oem/oem-release").as_deref(),
        Some("ID=qemu\n")
    );
    assert!(r.mount_line("usr/share/oem").unwrap().contains("oemfs"));
    run(Command::new("umount").arg(r.p("usr/share/oem")));
    r.finish();
}

#[test]
fn broken_and_incompatible_images_are_skipped_and_the_rest_merged() {
    let r = new_root(DEBIAN);
    write_files(
        &r.path,
        &[
            ("var/lib/extensions/empty.raw", ""),
            ("var/lib/extensions/garbage.raw", "not an image at all"),
        ],
    );
    let trunc_src = r.p("../trunc");
    sysext_dir(&trunc_src, "trunc", "ID=_any\n", &[("usr/bin/trunc", "t")]);
    let sq = r.p("../trunc.raw");
    mkfs_squashfs(&trunc_src, &sq);
    let bytes = std::fs::read(&sq).unwrap();
    std::fs::write(r.p("var/lib/extensions/trunc.raw"), &bytes[..100]).unwrap();
    sysext_dir(
        &r.p("var/lib/extensions/old"),
        "old",
        "ID=debian\nVERSION_ID=12\n",
        &[("usr/bin/old", "o")],
    );
    sysext_dir(
        &r.p("var/lib/extensions/bad-os"),
        "bad-os",
        "ID=_any\n",
        &[("usr/lib/os-release", "ID=evil\n")],
    );
    sysext_dir(
        &r.p("var/lib/extensions/good"),
        "good",
        "ID=debian\nVERSION_ID=13\n",
        &[("usr/bin/good", "g")],
    );

    let log = r.ok(&["merge", "--class=sysext"]);
    assert_eq!(r.read("usr/bin/good").as_deref(), Some("g"), "{log}");
    assert!(r.read("usr/bin/old").is_none());
    assert_eq!(
        r.read("usr/lib/os-release").as_deref(),
        Some(DEBIAN),
        "forbidden os-release never merged"
    );
    for (name, why) in [
        ("empty", "empty.raw"),
        ("garbage", "garbage.raw"),
        ("trunc", "trunc.raw"),
        ("old", "VERSION_ID"),
        ("bad-os", "os-release"),
    ] {
        let line = log.lines().find(|l| {
            l.contains(&format!("'{name}'")) && (l.contains("Skipping") || l.contains("Ignoring"))
        });
        let line = line.unwrap_or_else(|| panic!("no log line for {name}: {log}"));
        assert!(line.contains(why), "{name}: {line}");
    }
    assert_eq!(
        r.read("usr/.systemd-sysext/extensions").as_deref(),
        Some("good\n")
    );
    r.finish();
}

#[test]
fn merge_twice_is_refused_and_nothing_changes() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("usr/bin/ext", "e")],
    );
    r.ok(&["merge", "--class=sysext"]);
    let before = r.mount_line("usr").unwrap();
    let out = r.run(&["merge", "--class=sysext"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already merged"));
    assert_eq!(
        r.mount_line("usr").unwrap(),
        before,
        "the existing merge is untouched"
    );
    assert_eq!(
        mountinfo_lines_containing(&r.p("usr").to_string_lossy()).len(),
        1,
        "exactly one overlay"
    );
    r.finish();
}

#[test]
fn unmerge_never_touches_a_foreign_mount() {
    let r = new_root(DEBIAN);
    run(Command::new("mount")
        .args(["-t", "tmpfs", "foreign"])
        .arg(r.p("usr")));
    // Even a forged meta dir does not make it ours: its dev does not match.
    write_files(
        &r.path,
        &[
            ("usr/.systemd-sysext/dev", "7:99\n"),
            ("usr/.systemd-sysext/extensions", "x\n"),
        ],
    );
    r.ok(&["unmerge", "--class=sysext"]);
    assert!(
        r.mount_line("usr").unwrap().contains("foreign"),
        "foreign mount kept"
    );
    run(Command::new("umount").arg(r.p("usr")));
    r.finish();
}

#[test]
fn missing_hierarchy_is_created_and_nothing_found_is_a_noop() {
    let r = new_root(DEBIAN);
    assert!(!r.p("opt").exists());
    let log = r.ok(&["merge", "--class=sysext"]);
    assert!(log.contains("No extensions found"), "{log}");
    assert!(r.mount_line("usr").is_none());
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("opt/tool/bin", "x")],
    );
    r.ok(&["merge", "--class=sysext"]);
    assert_eq!(r.read("opt/tool/bin").as_deref(), Some("x"));
    assert!(r.mount_line("opt").is_some());
    r.finish();
}

#[test]
fn initrd_scope_root_ignores_system_scoped_extensions() {
    let r = new_root(DEBIAN);
    write_files(&r.path, &[("etc/initrd-release", DEBIAN)]);
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("usr/bin/ext", "e")],
    );
    let log = r.ok(&["merge", "--class=sysext"]);
    assert!(
        log.contains("No suitable extensions found (1 ignored"),
        "{log}"
    );
    let st = status(&r);
    assert!(
        st.iter().all(|s| s["extensions"] == serde_json::json!([])),
        "{st:?}"
    );
    r.finish();
}

#[test]
fn all_classes_merge_confext_then_sysext_and_unprivileged_is_refused() {
    let r = new_root(DEBIAN);
    confext_dir(
        &r.p("run/confexts/c"),
        "c",
        "ID=_any\n",
        &[("etc/c.conf", "c")],
    );
    sysext_dir(
        &r.p("run/extensions/s"),
        "s",
        "ID=_any\n",
        &[("usr/bin/s", "s")],
    );
    let log = r.ok(&["merge"]);
    let (ci, si) = (
        log.find("Merged extensions into").unwrap(),
        log.rfind("Merged extensions into").unwrap(),
    );
    assert!(
        log[ci..].contains("/etc") && log[si..].contains("/usr") && ci < si,
        "{log}"
    );
    assert_eq!(r.read("etc/c.conf").as_deref(), Some("c"));
    assert_eq!(r.read("usr/bin/s").as_deref(), Some("s"));
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_extmerge"))
        .args(["unmerge", &format!("--root={}", r.path.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("privileged"));
    r.finish();
}

#[test]
fn unmerge_peels_stacked_merges() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("usr/bin/ext", "e")],
    );
    r.ok(&["merge", "--class=sysext"]);
    // A second mount of our overlay on top (what an interrupted non-atomic refresh leaves behind):
    // it carries the same meta dir and device, so it is ours too and must be peeled as well.
    run(Command::new("mount")
        .arg("--bind")
        .arg(r.p("usr"))
        .arg(r.p("usr")));
    assert_eq!(
        mountinfo_lines_containing(&format!("{} ", r.p("usr").display())).len(),
        2
    );
    let log = r.ok(&["unmerge", "--class=sysext"]);
    assert_eq!(log.matches("Unmerged").count(), 2, "{log}");
    assert!(r.mount_line("usr").is_none());
    assert!(r.read("usr/bin/ext").is_none());
    r.leak.assert_clean();
}

#[test]
fn concurrent_merges_on_one_root_are_serialised() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("usr/bin/ext", "e")],
    );
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_extmerge"))
            .args(["merge", "--class=sysext"])
            .arg(format!("--root={}", r.path.display()))
            .env_remove("JOURNAL_STREAM")
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ok = [a.status.success(), b.status.success()];
    assert_eq!(
        ok.iter().filter(|x| **x).count(),
        1,
        "exactly one merge wins: {ok:?}"
    );
    assert_eq!(
        mountinfo_lines_containing(&format!("{} ", r.p("usr").display())).len(),
        1,
        "exactly one overlay on /usr"
    );
    r.finish();
}

#[test]
fn confext_image_merges_into_a_nosuid_noexec_overlay() {
    let r = new_root(DEBIAN);
    let src = r.p("../csrc");
    write_files(
        &src,
        &[
            ("etc/extension-release.d/extension-release.img", "ID=_any\n"),
            ("etc/img.conf", "i"),
        ],
    );
    std::fs::create_dir_all(r.p("var/lib/confexts")).unwrap();
    mkfs_erofs(&src, &r.p("var/lib/confexts/img.raw"));
    let log = r.ok(&["merge", "--class=confext"]);
    assert_eq!(r.read("etc/img.conf").as_deref(), Some("i"), "{log}");
    let line = r.mount_line("etc").unwrap();
    assert!(line.contains("noexec") && line.contains("nosuid"), "{line}");
    r.finish();
}

/// Mount ID (first mountinfo field) of the top mount at `rel`.
fn mount_id(r: &Root, rel: &str) -> Option<String> {
    r.mount_line(rel)
        .map(|l| l.split(' ').next().unwrap().to_string())
}

fn refresh(r: &Root, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["refresh"];
    args.extend_from_slice(extra);
    let out = r.run(&args);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refresh_skips_when_nothing_changed_and_touches_nothing() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/d"),
        "d",
        "ID=_any\n",
        &[("usr/bin/d", "d")],
    );
    let src = r.p("../img");
    sysext_dir(&src, "img", "ID=_any\n", &[("usr/bin/img", "i")]);
    mkfs_squashfs(&src, &r.p("var/lib/extensions/img.raw"));
    r.ok(&["merge", "--class=sysext"]);
    let before = mount_id(&r, "usr").unwrap();
    let (code, log) = refresh(&r, &["--class=sysext"]);
    assert_eq!(code, 77, "skipped refresh has its own exit status: {log}");
    assert!(
        log.contains("Skipping extension refresh because no change was found"),
        "{log}"
    );
    assert_eq!(mount_id(&r, "usr").unwrap(), before, "nothing remounted");
    // --always-refresh=yes forces it.
    let (code, log) = refresh(&r, &["--class=sysext", "--always-refresh=yes"]);
    assert_eq!(code, 0, "{log}");
    assert_ne!(mount_id(&r, "usr").unwrap(), before);
    assert_eq!(
        mountinfo_lines_containing(&format!("{} ", r.p("usr").display())).len(),
        1,
        "one overlay"
    );
    r.finish();
}

#[test]
fn refresh_detects_every_kind_of_change_and_nothing_else() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/dir"),
        "dir",
        "ID=_any\n",
        &[("usr/share/dir-file", "v1")],
    );
    sysext_dir(
        &r.p("var/lib/extensions/keep"),
        "keep",
        "ID=_any\n",
        &[("usr/share/keep", "k")],
    );
    let mk = |name: &str, content: &str, out: &Path| {
        let src = r.p(&format!("../src-{name}-{content}"));
        sysext_dir(
            &src,
            name,
            "ID=debian\nVERSION_ID=13\n",
            &[(&format!("usr/share/{name}"), content)],
        );
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(out);
        mkfs_squashfs(&src, out);
    };
    mk("img", "one", &r.p("var/lib/extensions/img.raw"));
    mk("app", "1", &r.p("opt/store/app-1.raw"));
    mk("app", "2", &r.p("opt/store/app-2.raw"));
    std::fs::create_dir_all(r.p("etc/extensions")).unwrap();
    symlink("/opt/store/app-1.raw", r.p("etc/extensions/app.raw")).unwrap();
    r.ok(&["merge", "--class=sysext"]);
    assert_eq!(r.read("usr/share/app").as_deref(), Some("1"));

    let expect_refresh = |what: &str, extra: &[&str]| {
        let (code, log) = refresh(&r, &[&["--class=sysext"][..], extra].concat());
        assert_eq!(code, 0, "{what}: expected a re-merge: {log}");
        assert!(log.contains("Refreshing sysext"), "{what}: {log}");
        let (code, log) = refresh(&r, &[&["--class=sysext"][..], extra].concat());
        assert_eq!(code, 77, "{what}: a second refresh must skip: {log}");
    };
    std::fs::write(r.p("var/lib/extensions/dir/usr/share/dir-file"), "v2").unwrap();
    expect_refresh(
        "in-place edit in a directory extension (systemd issue 41523)",
        &[],
    );
    assert_eq!(r.read("usr/share/dir-file").as_deref(), Some("v2"));

    mk("img", "two", &r.p("var/lib/extensions/img.raw"));
    expect_refresh("image replaced under the same name", &[]);
    assert_eq!(r.read("usr/share/img").as_deref(), Some("two"));

    std::fs::remove_file(r.p("etc/extensions/app.raw")).unwrap();
    symlink("/opt/store/app-2.raw", r.p("etc/extensions/app.raw")).unwrap();
    expect_refresh("NAME.raw symlink flipped to a new version", &[]);
    assert_eq!(r.read("usr/share/app").as_deref(), Some("2"));

    sysext_dir(
        &r.p("run/extensions/new"),
        "new",
        "ID=_any\n",
        &[("usr/share/new", "n")],
    );
    expect_refresh("extension added", &[]);
    assert_eq!(r.read("usr/share/new").as_deref(), Some("n"));

    std::fs::remove_dir_all(r.p("run/extensions/new")).unwrap();
    expect_refresh("extension removed", &[]);
    assert!(r.read("usr/share/new").is_none());

    std::fs::create_dir_all(r.p("var/lib/extensions.mutable/usr")).unwrap();
    std::fs::set_permissions(
        r.p("var/lib/extensions.mutable/usr"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    expect_refresh("mutable mode changed", &["--mutable=auto"]);
    assert!(
        std::fs::write(r.p("usr/share/written"), "w").is_ok(),
        "now writable"
    );

    // The host os-release lives under /usr: change it in the real hierarchy, not the merged one.
    run(Command::new("sh").arg("-c").arg(format!(
        "unshare -m sh -c 'umount -l {0}/usr && printf \"ID=debian\\nVERSION_ID=14\\n\" > {0}/usr/lib/os-release'",
        r.path.display()
    )));
    let (code, log) = refresh(&r, &["--class=sysext", "--mutable=auto"]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("os-release changed"), "{log}");
    assert!(
        r.read("usr/share/img").is_none(),
        "images pinned to VERSION_ID=13 are gone: {log}"
    );
    assert_eq!(
        r.read("usr/share/keep").as_deref(),
        Some("k"),
        "_any extensions stay"
    );
    r.finish();
}

#[test]
fn refresh_is_atomic_for_a_reader_over_200_refreshes() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("usr/share/ext-file", "e")],
    );
    r.ok(&["merge", "--class=sysext"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let files = [r.p("usr/share/ext-file"), r.p("usr/bin/host-tool")];
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut reads, mut misses) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for f in &files {
                    reads += 1;
                    if std::fs::read(f).is_err() {
                        misses += 1;
                    }
                }
            }
            (reads, misses)
        })
    };
    for i in 0..200 {
        let (code, log) = refresh(&r, &["--class=sysext", "--always-refresh=yes"]);
        assert_eq!(code, 0, "refresh {i}: {log}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, misses) = reader.join().unwrap();
    println!("atomic refresh: {reads} reads, {misses} misses during 200 refreshes");
    assert!(reads > 200, "the reader must actually run ({reads} reads)");
    assert_eq!(
        misses, 0,
        "{misses} of {reads} reads failed during refreshes"
    );
    assert_eq!(
        mountinfo_lines_containing(&format!("{} ", r.p("usr").display())).len(),
        1
    );
    r.finish();
}

#[test]
fn refreshing_the_mutable_etc_keeps_every_user_file_and_concurrent_writes() {
    let r = new_root("ID=flatcar\nVERSION_ID=4000.0.0\n");
    write_files(
        &r.path,
        &[("usr/lib/systemd/confext.conf", "[ConfExt]\nMutable=auto\n")],
    );
    std::fs::create_dir_all(r.p("var/lib/extensions.mutable")).unwrap();
    symlink("/etc", r.p("var/lib/extensions.mutable/etc")).unwrap();
    confext_dir(
        &r.p("usr/lib/confexts/00-default"),
        "00-default",
        "ID=_any\n",
        &[("etc/default.conf", "d")],
    );
    r.ok(&["merge", "--class=confext"]);
    std::fs::write(r.p("etc/user.conf"), "mine").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, etc) = (stop.clone(), r.p("etc"));
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::write(etc.join(format!("during-{n}")), n.to_string()).unwrap();
                n += 1;
            }
            n
        })
    };
    for _ in 0..20 {
        let (code, log) = refresh(&r, &["--class=confext", "--always-refresh=yes"]);
        assert_eq!(code, 0, "{log}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0);
    r.ok(&["unmerge", "--class=confext"]);
    assert_eq!(r.read("etc/user.conf").as_deref(), Some("mine"));
    for n in 0..written {
        assert_eq!(
            r.read(&format!("etc/during-{n}")),
            Some(n.to_string()),
            "write {n} of {written} lost"
        );
    }
    let workdirs: Vec<_> = std::fs::read_dir(&r.path)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".systemd-etc-workdir")
        })
        .collect();
    assert!(workdirs.is_empty(), "work dirs left behind: {workdirs:?}");
    r.finish();
}

#[test]
fn failed_refresh_keeps_the_previous_merge_working() {
    let r = new_root("ID=flatcar\nVERSION_ID=4000.0.0\n");
    std::fs::create_dir_all(r.p("var/lib/extensions.mutable")).unwrap();
    symlink("/etc", r.p("var/lib/extensions.mutable/etc")).unwrap();
    confext_dir(
        &r.p("run/confexts/c"),
        "c",
        "ID=_any\n",
        &[("etc/c.conf", "c")],
    );
    r.ok(&["merge", "--class=confext", "--mutable=auto"]);
    let before = mount_id(&r, "etc").unwrap();
    // import with /etc as the mutable dir is ELOOP: assembly fails after images were opened.
    let (code, log) = refresh(&r, &["--class=confext", "--mutable=import"]);
    assert_eq!(code, 1, "{log}");
    assert_eq!(
        mount_id(&r, "etc").unwrap(),
        before,
        "old overlay untouched"
    );
    assert_eq!(r.read("etc/c.conf").as_deref(), Some("c"));
    std::fs::write(r.p("etc/still-writable"), "y").unwrap();
    r.finish();
}

/// Upstream's `simple-mutable-with-read-only-hierarchy-options` layout: the root shared and
/// `/opt` bind-mounted read-only onto itself, so every mount on `/opt` propagates a copy below
/// the read-only bind. A refresh must take its own propagated copy for what it is (not a
/// leftover to clean up) and keep `/opt` merged.
#[test]
fn refresh_over_a_shared_root_with_a_read_only_hierarchy_bind_keeps_it_merged() {
    let r = new_root(DEBIAN);
    write_files(&r.path, &[("opt/preexisting", "host\n")]);
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("opt/ext-file", "e1")],
    );
    std::fs::create_dir_all(r.p("var/lib/extensions.mutable/opt")).unwrap();
    let root = r.path.to_str().unwrap().to_string();
    let opt = r.p("opt").to_str().unwrap().to_string();
    run(Command::new("mount").args(["--bind", &root, &root]));
    run(Command::new("mount").args(["--make-rshared", &root]));
    run(Command::new("mount").args(["-o", "bind,ro", &opt, &opt]));
    assert!(
        std::fs::write(r.p("opt/before"), "x").is_err(),
        "/opt is read-only"
    );

    r.ok(&["merge", "--class=sysext", "--mutable=auto"]);
    assert_eq!(r.read("opt/ext-file").as_deref(), Some("e1"));
    std::fs::write(r.p("opt/now-is-mutable"), "m").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_extmerge"))
        .args(["refresh", "--class=sysext", "--mutable=auto"])
        .arg(format!("--root={root}"))
        .env(
            "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS",
            "relatime,metacopy=on",
        )
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "refresh: {log}");
    let line = r
        .mount_line("opt")
        .expect("/opt still merged after the refresh");
    assert!(
        line.contains(" overlay ") && line.contains("relatime"),
        "{line}"
    );
    assert_eq!(r.read("opt/ext-file").as_deref(), Some("e1"));
    assert_eq!(r.read("opt/now-is-mutable").as_deref(), Some("m"));
    assert_eq!(
        std::fs::read_to_string(r.p("var/lib/extensions.mutable/opt/now-is-mutable")).ok(),
        Some("m".to_string())
    );

    r.ok(&["unmerge", "--class=sysext"]);
    assert!(r.read("opt/ext-file").is_none(), "unmerged");
    assert_eq!(r.read("opt/preexisting").as_deref(), Some("host\n"));
    assert!(
        std::fs::write(r.p("opt/after"), "x").is_err(),
        "still read-only"
    );
    run(Command::new("umount").args([&opt]));
    run(Command::new("umount").args(["-l", &root]));
    r.leak.assert_clean();
}

#[test]
fn refresh_with_nothing_left_unmerges_and_merges_when_nothing_was_merged() {
    let r = new_root(DEBIAN);
    let (code, _) = refresh(&r, &["--class=sysext"]);
    assert_eq!(code, 0, "nothing merged, nothing to merge: no-op");
    sysext_dir(
        &r.p("var/lib/extensions/ext"),
        "ext",
        "ID=_any\n",
        &[("usr/share/ext", "e")],
    );
    let (code, log) = refresh(&r, &["--class=sysext"]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(r.read("usr/share/ext").as_deref(), Some("e"));
    std::fs::remove_dir_all(r.p("var/lib/extensions/ext")).unwrap();
    let (code, log) = refresh(&r, &["--class=sysext"]);
    assert_eq!(code, 0, "{log}");
    assert!(r.mount_line("usr").is_none(), "unmerged: {log}");
    r.finish();
}

#[test]
fn conflicts_are_warned_by_default_and_refused_on_request() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/a"),
        "a",
        "ID=_any\n",
        &[("usr/bin/tool", "a")],
    );
    sysext_dir(
        &r.p("var/lib/extensions/b"),
        "b",
        "ID=_any\n",
        &[("usr/bin/tool", "b"), ("usr/bin/b-only", "b")],
    );
    let log = r.ok(&["merge", "--class=sysext"]);
    assert!(
        log.contains("Conflict in sysext") && log.contains("/usr/bin/tool"),
        "{log}"
    );
    assert_eq!(
        r.read("usr/bin/tool").as_deref(),
        Some("b"),
        "warn merges anyway; the higher name wins"
    );
    r.ok(&["unmerge", "--class=sysext"]);

    let log = r.ok(&["merge", "--class=sysext", "--check-conflicts=refuse"]);
    assert!(log.contains("Refusing sysext 'b'"), "{log}");
    assert_eq!(
        r.read("usr/bin/tool").as_deref(),
        Some("a"),
        "the later extension was dropped"
    );
    assert!(r.read("usr/bin/b-only").is_none());
    assert_eq!(
        r.read("usr/.systemd-sysext/extensions").as_deref(),
        Some("a\n")
    );
    r.ok(&["unmerge", "--class=sysext"]);

    write_files(
        &r.path,
        &[("etc/systemd/sysext.conf", "[SysExt]\nCheckConflicts=off\n")],
    );
    let log = r.ok(&["merge", "--class=sysext"]);
    assert!(!log.contains("Conflict in"), "off is quiet: {log}");
    r.finish();
}

/// `veritysetup format` a squashfs image into NAME.raw + NAME.verity + NAME.roothash.
fn verity_image(r: &Root, name: &str) -> String {
    let src = r.p(&format!("../vsrc-{name}"));
    sysext_dir(
        &src,
        name,
        "ID=_any\n",
        &[(&format!("usr/share/{name}"), name)],
    );
    let img = r.p(&format!("var/lib/extensions/{name}.raw"));
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    mkfs_squashfs(&src, &img);
    let out = Command::new("veritysetup")
        .arg("format")
        .arg(&img)
        .arg(r.p(&format!("var/lib/extensions/{name}.verity")))
        .output()
        .expect("veritysetup (cryptsetup-bin) is installed by make test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let hash = text
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(
        r.p(&format!("var/lib/extensions/{name}.roothash")),
        format!("{hash}\n"),
    )
    .unwrap();
    hash
}

#[test]
fn image_policy_refuses_an_unsigned_image_and_keeps_the_rest() {
    let r = new_root(DEBIAN);
    let src = r.p("../plain");
    sysext_dir(&src, "plain", "ID=_any\n", &[("usr/share/plain", "p")]);
    std::fs::create_dir_all(r.p("var/lib/extensions")).unwrap();
    mkfs_squashfs(&src, &r.p("var/lib/extensions/plain.raw"));
    sysext_dir(
        &r.p("var/lib/extensions/dir"),
        "dir",
        "ID=_any\n",
        &[("usr/share/dir", "d")],
    );
    // Upstream TEST-50 scenario 38, via the config file.
    write_files(
        &r.path,
        &[(
            "etc/systemd/sysext.conf",
            "[SysExt]\nImagePolicy=root=signed+absent:usr=signed+absent\n",
        )],
    );
    let log = r.ok(&["merge", "--class=sysext"]);
    assert!(
        log.contains("'plain'") && log.contains("does not allow a unprotected root"),
        "{log}"
    );
    assert!(r.read("usr/share/plain").is_none());
    assert_eq!(
        r.read("usr/share/dir").as_deref(),
        Some("d"),
        "directories are not subject to the image policy"
    );
    r.ok(&["unmerge", "--class=sysext"]);
    // --image-policy=* on the command line overrides the config file.
    r.ok(&["merge", "--class=sysext", "--image-policy=*"]);
    assert_eq!(r.read("usr/share/plain").as_deref(), Some("p"));
    r.finish();
}

#[test]
fn a_wrong_roothash_is_refused_before_any_activation() {
    let r = new_root(DEBIAN);
    let hash = verity_image(&r, "ver");
    // Flip the first hex digit: activation would accept it, so the check must come first.
    let wrong = format!(
        "{}{}",
        if hash.starts_with('0') { '1' } else { '0' },
        &hash[1..]
    );
    std::fs::write(r.p("var/lib/extensions/ver.roothash"), &wrong).unwrap();
    sysext_dir(
        &r.p("var/lib/extensions/dir"),
        "dir",
        "ID=_any\n",
        &[("usr/share/dir", "d")],
    );
    let log = r.ok(&["merge", "--class=sysext"]);
    let line = log
        .lines()
        .find(|l| l.contains("'ver'"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("does not match the image's hash tree"),
        "{line}"
    );
    assert_eq!(
        r.read("usr/share/dir").as_deref(),
        Some("d"),
        "the other extension is merged"
    );
    assert!(r.read("usr/share/ver").is_none());
    r.finish();
}

#[test]
fn a_verity_image_reaches_activation_with_the_right_hash() {
    let r = new_root(DEBIAN);
    let hash = verity_image(&r, "ver");
    let log = r.ok(&["merge", "--class=sysext"]);
    let line = log
        .lines()
        .find(|l| l.contains("'ver'"))
        .unwrap_or_else(|| panic!("{log}"));
    // The root hash check passed; this host has no device-mapper, so activation is what fails,
    // with an error that says so (the QEMU tests cover the activation itself).
    assert!(!line.contains("does not match"), "{line}");
    assert!(
        line.contains("device-mapper") || line.contains("dm-verity"),
        "{line}"
    );
    assert!(!hash.is_empty());
    r.finish();
}

/// Run extmerge as if started by systemd (SYSTEMD_EXEC_PID is its own pid) with a given cmdline.
fn run_as_unit(r: &Root, cmdline: &str, args: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "SYSTEMD_EXEC_PID=$$ exec {} {args} --root={}",
            env!("CARGO_BIN_EXE_extmerge"),
            r.path.display()
        ))
        .env("SYSTEMD_PROC_CMDLINE", cmdline)
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap()
}

#[test]
fn kill_switches_and_masks_disable_a_class_when_started_by_systemd() {
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("run/extensions/s"),
        "s",
        "ID=_any\n",
        &[("usr/share/s", "s")],
    );
    confext_dir(
        &r.p("run/confexts/c"),
        "c",
        "ID=_any\n",
        &[("etc/c.conf", "c")],
    );
    let out = run_as_unit(&r, "quiet systemd.sysext=0", "merge");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("Disabled by the kernel command line option systemd.sysext=0"),
        "{log}"
    );
    assert!(r.read("usr/share/s").is_none());
    assert_eq!(
        r.read("etc/c.conf").as_deref(),
        Some("c"),
        "confext still merged"
    );
    r.ok(&["unmerge"]);

    // Outside systemd (an operator at a shell) the kill switch does not apply, as upstream.
    let out = Command::new(env!("CARGO_BIN_EXE_extmerge"))
        .args([
            "merge",
            "--class=sysext",
            &format!("--root={}", r.path.display()),
        ])
        .env("SYSTEMD_PROC_CMDLINE", "systemd.sysext=0")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(r.read("usr/share/s").as_deref(), Some("s"));
    r.ok(&["unmerge"]);

    // Flatcar: a masked systemd-sysext.service in the root disables the initrd sysext merge.
    std::fs::create_dir_all(r.p("etc/systemd/system")).unwrap();
    symlink(
        "/dev/null",
        r.p("etc/systemd/system/systemd-sysext.service"),
    )
    .unwrap();
    let out = run_as_unit(&r, "", "merge");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("systemd-sysext.service is masked"), "{log}");
    assert!(r.read("usr/share/s").is_none());
    assert_eq!(r.read("etc/c.conf").as_deref(), Some("c"));
    r.finish();
}

#[test]
fn a_required_extension_that_is_not_merged_fails_the_run() {
    let r = new_root(DEBIAN);
    confext_dir(
        &r.p("usr/lib/confexts/00-default"),
        "00-default",
        "ID=_any\n",
        &[("etc/d.conf", "d")],
    );
    let log = r.ok(&["merge", "--class=confext", "--require=00-default"]);
    assert!(!log.contains("Required"), "{log}");
    r.ok(&["unmerge"]);
    std::fs::write(
        r.p("usr/lib/confexts/00-default/etc/extension-release.d/extension-release.00-default"),
        "ID=otheros\nVERSION_ID=1\n",
    )
    .unwrap();
    let out = r.run(&["merge", "--class=confext", "--require=00-default"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("required confext cannot be used: '00-default' (ID=otheros matches neither"),
        "{log}"
    );
    // Checked before anything was attached: /etc was left as it was.
    assert!(r.mount_line("etc").is_none(), "{log}");
    // A --require name no selected class has fails before anything runs.
    let out = r.run(&["merge", "--require=nowhere"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("required extension(s) 'nowhere' (--require) not found in any confext or sysext directory; nothing was changed"),
        "{log}"
    );
    r.finish();
}

#[test]
fn images_are_identified_without_reading_them_and_every_edit_is_seen() {
    let r = new_root(DEBIAN);
    let src = r.p("../img");
    sysext_dir(&src, "img", "ID=_any\n", &[("usr/bin/img", "one")]);
    let img = r.p("var/lib/extensions/img.raw");
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    mkfs_squashfs(&src, &img);
    // Merged right after it was written: the identity waits for the file to settle, so the
    // refresh right after skips.
    r.ok(&["merge", "--class=sysext"]);
    let state: Value =
        serde_json::from_str(&r.read("usr/.systemd-sysext/extmerge-state.json").unwrap()).unwrap();
    let id = &state["state"]["images"][0]["identity"];
    assert_eq!(id["type"], "fileStat", "{state}");
    assert!(
        !r.p("var/cache/extmerge").exists(),
        "nothing is hashed, so nothing is cached"
    );
    let (code, log) = refresh(&r, &["--class=sysext"]);
    assert_eq!(code, 77, "{log}");

    // An edit in place that keeps the size and puts the old mtime back still changes the
    // ctime: the refresh re-merges.
    let meta = std::fs::metadata(&img).unwrap();
    let mtime = meta.modified().unwrap();
    let mut bytes = std::fs::read(&img).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&img, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&img)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&img).unwrap().len(), meta.len());
    let (code, log) = refresh(&r, &["--class=sysext"]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("extension 'img' content changed"), "{log}");
    r.finish();
}

/// Deliberate difference (tests/upstream/deliberate-differences.txt, config-file@root): an
/// image the image policy refuses is skipped with the policy's reason, and the rest merges;
/// systemd 262 fails the whole merge ("Image does not match image policy").
#[test]
fn image_policy_refusal_skips_that_image_and_merges_the_rest() {
    let r = new_root(DEBIAN);
    write_files(
        &r.path,
        &[(
            "usr/lib/systemd/sysext.conf",
            "[SysExt]\nImagePolicy=root=signed+absent:usr=signed+absent\n",
        )],
    );
    let src = r.p("../unsigned-src");
    sysext_dir(
        &src,
        "unsigned",
        "ID=_any\n",
        &[("usr/share/unsigned", "u")],
    );
    std::fs::create_dir_all(r.p("var/lib/extensions")).unwrap();
    mkfs_squashfs(&src, &r.p("var/lib/extensions/unsigned.raw"));
    sysext_dir(
        &r.p("var/lib/extensions/dir"),
        "dir",
        "ID=_any\n",
        &[("usr/share/dir", "d")],
    );
    let log = r.ok(&["merge", "--class=sysext"]);
    assert!(
        log.contains("Ignoring sysext 'unsigned' (/var/lib/extensions/unsigned.raw): image policy 'root=signed+absent:usr=signed+absent' does not allow a unprotected root partition"),
        "{log}"
    );
    assert_eq!(r.read("usr/share/dir").as_deref(), Some("d"));
    assert!(r.read("usr/share/unsigned").is_none(), "{log}");
    r.finish();
}

/// The copy of a class's state next to the run lock (host `/run/extmerge/`) lives as long as
/// that class is merged: `unmerge` removes it, so roots that come and go (every test, every
/// chroot) do not leave one file each behind in `/run`.
#[test]
fn unmerge_removes_the_state_copy_next_to_the_run_lock() {
    use sha2::{Digest, Sha256};
    use std::os::unix::ffi::OsStrExt;
    let r = new_root(DEBIAN);
    sysext_dir(
        &r.p("var/lib/extensions/a"),
        "a",
        "ID=_any\n",
        &[("usr/lib/a.txt", "a\n")],
    );
    let digest = Sha256::digest(r.path.as_os_str().as_bytes());
    let id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let copy = Path::new("/run/extmerge").join(format!("root.{id}.sysext.state.json"));
    r.ok(&["--class=sysext", "merge"]);
    let text = std::fs::read_to_string(&copy)
        .unwrap_or_else(|e| panic!("the state copy {} after merge: {e}", copy.display()));
    assert!(text.contains("\"merged\""), "{text}");
    r.ok(&["--class=sysext", "unmerge"]);
    assert!(
        !copy.exists(),
        "{} is still there after unmerge",
        copy.display()
    );
    r.finish();
}

/// One run of both classes reads the base OS once (below every merge of either class), and the
/// class that comes second is still judged by the base, not by what the first one merged: a
/// confext shipping `etc/os-release` with another ID changes nothing for the sysexts.
#[test]
fn both_classes_in_one_run_are_judged_by_one_read_of_the_base() {
    let r = new_root(DEBIAN);
    confext_dir(
        &r.p("run/confexts/osr"),
        "osr",
        "ID=_any\n",
        &[("etc/os-release", "ID=other\nVERSION_ID=1\n")],
    );
    sysext_dir(
        &r.p("var/lib/extensions/deb"),
        "deb",
        "ID=debian\nVERSION_ID=13\n",
        &[("usr/share/deb", "d\n")],
    );
    let run = |args: &[&str]| {
        let out = extmerge_command()
            .env("EXTMERGE_LOG", "debug")
            .args(args)
            .arg(format!("--root={}", r.path.display()))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), log)
    };
    let shared = "Using the base OS as read for the previous class.";
    let (code, log) = run(&["merge"]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(log.matches(shared).count(), 1, "{log}");
    assert_eq!(
        r.read("etc/os-release").as_deref(),
        Some("ID=other\nVERSION_ID=1\n")
    );
    assert_eq!(r.read("usr/share/deb").as_deref(), Some("d\n"), "{log}");
    // The refresh of both: still one read, and still the base's ID: nothing changed.
    let (code, log) = run(&["refresh"]);
    assert_eq!(code, Some(77), "{log}");
    assert_eq!(log.matches(shared).count(), 1, "{log}");
    // One class alone reads the base itself.
    let (code, log) = run(&["--class=sysext", "refresh"]);
    assert_eq!(code, Some(77), "{log}");
    assert_eq!(log.matches(shared).count(), 0, "{log}");
    assert!(log.contains("Phase base of sysext"), "{log}");
    r.ok(&["unmerge"]);
    r.finish();
}
