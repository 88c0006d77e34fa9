use super::shell::{copy_across, move_file, Slot};
use super::*;
use std::fs;
use std::os::unix::fs::symlink;

const V: &str = "4000.0.0";

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A Flatcar root with nothing selected: only the version is known.
fn base() -> Inputs {
    Inputs {
        version: V.into(),
        ..Inputs::default()
    }
}

fn with_conf(user: &str, present: &[&str]) -> Inputs {
    let mut i = base();
    i.user_conf = user.into();
    i.present = present.iter().map(|s| p(s)).collect();
    i
}

fn oem(present: &[&str]) -> Inputs {
    let mut i = with_conf("", present);
    i.oem_id = Some("test".into());
    i.oem_active = true;
    i
}

fn symlink_entry(target: &str, resolved_file: Option<&str>) -> Entry {
    Entry::Symlink {
        target: p(target),
        resolved_file: resolved_file.map(p),
    }
}

fn link(l: &str, t: &str) -> Action {
    Action::Link {
        link: p(l),
        target: p(t),
    }
}

#[test]
fn parse_enabled_rules() {
    // (file text, enabled names, removals)
    let rows: &[(&str, &[&str], &[&str])] = &[
        ("", &[], &[]),
        ("zfs\n", &["zfs"], &[]),
        ("zfs\npodman\n", &["zfs", "podman"], &[]),
        ("# comment\n\n   \nzfs\n", &["zfs"], &[]),
        ("zfs # trailing comment\n", &["zfs"], &[]),
        ("  zfs\t\n", &["zfs"], &[]),
        ("zfs\r\npython\r\n", &["zfs", "python"], &[]),
        ("zfs podman\n", &["zfs", "podman"], &[]), // the script's word splitting
        ("-zfs\n", &[], &["zfs"]),
        ("-zfs # no zfs please\n", &[], &["zfs"]),
        ("#-zfs\n", &[], &[]),
        ("zfs\n-podman\npython", &["zfs", "python"], &["podman"]),
    ];
    for (text, en, rm) in rows {
        assert_eq!(parse_enabled(text), (names(en), names(rm)), "{text:?}");
    }
}

#[test]
fn enabled_set_rules() {
    // (vendor /usr file, user /etc file, result)
    let rows: &[(&str, &str, &[&str])] = &[
        ("", "", &[]),
        ("zfs\n", "", &["zfs"]),
        ("", "podman\n", &["podman"]),
        ("zfs\n", "podman\n", &["podman", "zfs"]), // /etc first, as `grep -h /etc/… /usr/…`
        ("zfs\n", "-zfs\n", &[]),                  // -NAME removes a vendor default
        ("zfs\npython\n", "-zfs\n", &["python"]),
        ("", "zfs\n-zfs\n", &[]),           // … and an /etc entry too
        ("zfs # default\n", "-zfs\n", &[]), // comments do not defeat removal
        ("-zfs\n", "zfs\n", &["zfs"]),      // vendor `-` lines remove nothing
        ("zfs\nzfs\n", "zfs\n", &["zfs"]),  // duplicates collapse
        (
            "python\nzfs\n",
            "zfs\npodman\n",
            &["zfs", "podman", "python"],
        ),
        ("# only comments\n\n", "# nothing\n", &[]),
        ("zfs\n", "-podman\n", &["zfs"]), // removing something not listed is harmless
    ];
    for (vendor, user, want) in rows {
        assert_eq!(
            enabled_set(vendor, user),
            names(want),
            "vendor {vendor:?} user {user:?}"
        );
    }
}

#[test]
fn oem_id_like_grep_cut() {
    let rows: &[(&str, Option<&str>)] = &[
        ("ID=azure\nVERSION_ID=1\n", Some("azure")),
        ("NAME=\"x\"\nID=test\n", Some("test")),
        ("ID=a\nID=b\n", Some("a")), // grep -m 1
        ("ID=a=b\n", Some("a")),     // cut -f 2
        ("ID=\n", None),
        ("OEM_ID=x\n", None),
        (" ID=x\n", None),
        ("ID=\"q\"\n", Some("\"q\"")), // no unquoting, as the script
        ("", None),
    ];
    for (text, want) in rows {
        assert_eq!(oem_id(text).as_deref(), *want, "{text:?}");
    }
}

#[test]
fn plan_rules() {
    let img = |n: &str| format!("/etc/flatcar/sysext/flatcar-{n}-{V}.raw");
    let oem_img = format!("/oem/sysext/oem-test-{V}.raw");
    let root_img = format!("/etc/flatcar/oem-sysext/oem-test-{V}.raw");
    let url = |n: &str| {
        Some(format!(
            "https://update.release.flatcar-linux.net/amd64-usr/{V}/{n}.gz"
        ))
    };

    let mut rows: Vec<(&str, Inputs, Vec<Action>)> = Vec::new();

    rows.push(("nothing enabled, no OEM", base(), vec![]));

    rows.push((
        "enabled with image -> link",
        with_conf("zfs\n", &[&img("zfs")]),
        vec![link("/etc/extensions/flatcar-zfs.raw", &img("zfs"))],
    ));

    let mut i = with_conf("zfs\n", &[&img("zfs")]);
    i.links.insert(
        "flatcar-zfs.raw".into(),
        symlink_entry(&img("zfs"), Some(&img("zfs"))),
    );
    rows.push(("link already right -> nothing", i, vec![]));

    let mut i = with_conf("zfs\n", &[&img("zfs")]);
    let old = "/etc/flatcar/sysext/flatcar-zfs-1.2.3.raw";
    i.links
        .insert("flatcar-zfs.raw".into(), symlink_entry(old, Some(old)));
    rows.push((
        "link to the old version -> re-pointed",
        i,
        vec![link("/etc/extensions/flatcar-zfs.raw", &img("zfs"))],
    ));

    let mut i = with_conf("zfs\n-zfs\n", &[]);
    i.vendor_conf = "zfs\n".into();
    rows.push(("-NAME removes the vendor default", i, vec![]));

    let mut i = with_conf("zfs\n", &[&img("zfs")]);
    i.vendor_conf = "zfs\n".into();
    rows.push((
        "duplicates give one link",
        i,
        vec![link("/etc/extensions/flatcar-zfs.raw", &img("zfs"))],
    ));

    let mut i = with_conf("# comment\n\nzfs # ours\n", &[&img("zfs")]);
    i.vendor_conf = "# vendor\n".into();
    rows.push((
        "comments and blanks ignored",
        i,
        vec![link("/etc/extensions/flatcar-zfs.raw", &img("zfs"))],
    ));

    let mut i = with_conf("zfs\n", &[]);
    i.board = Some("amd64-usr".into());
    rows.push((
        "missing image -> Missing with the expected path",
        i,
        vec![Action::Missing {
            name: "flatcar-zfs".into(),
            kind: ImageKind::Official,
            expected: vec![p(&img("zfs"))],
            url: url("flatcar-zfs"),
        }],
    ));

    let mut i = with_conf("zfs\n", &[]);
    let old = "/etc/flatcar/sysext/flatcar-zfs-1.2.3.raw";
    i.links
        .insert("flatcar-zfs.raw".into(), symlink_entry(old, Some(old)));
    rows.push((
        "missing image with an old link -> Missing and the link removed",
        i,
        vec![
            Action::Missing {
                name: "flatcar-zfs".into(),
                kind: ImageKind::Official,
                expected: vec![p(&img("zfs"))],
                url: None,
            },
            Action::RemoveLink {
                link: p("/etc/extensions/flatcar-zfs.raw"),
                reason: format!("no flatcar-zfs image for version {V}"),
            },
        ],
    ));

    let mut i = with_conf("podman\n", &[&img("podman")]);
    i.links.insert(
        "flatcar-zfs.raw".into(),
        symlink_entry(&img("zfs"), Some(&img("zfs"))),
    );
    i.links.insert(
        "flatcar-mine.raw".into(),
        symlink_entry("/opt/extensions/mine.raw", None),
    );
    i.links.insert(
        "flatcar-rel.raw".into(),
        symlink_entry("../flatcar/sysext/flatcar-rel-1.raw", None),
    );
    i.links.insert("flatcar-file.raw".into(), Entry::Other);
    rows.push((
        "stale links into /etc/flatcar/sysext removed, user links and files kept",
        i,
        vec![
            link("/etc/extensions/flatcar-podman.raw", &img("podman")),
            Action::RemoveLink {
                link: p("/etc/extensions/flatcar-rel.raw"),
                reason: "flatcar-rel is not enabled in enabled-sysext.conf".into(),
            },
            Action::RemoveLink {
                link: p("/etc/extensions/flatcar-zfs.raw"),
                reason: "flatcar-zfs is not enabled in enabled-sysext.conf".into(),
            },
        ],
    ));

    let mut i = with_conf("zfs\n", &[&img("zfs")]);
    i.links
        .insert("flatcar-zfs.raw".into(), symlink_entry("/dev/null", None));
    i.links.insert(
        "docker-flatcar.raw".into(),
        symlink_entry("/dev/null", None),
    );
    rows.push((
        "/dev/null mask is never touched",
        i,
        vec![Action::Skip {
            name: "flatcar-zfs".into(),
            reason: "/etc/extensions/flatcar-zfs.raw is masked by a link to /dev/null; left alone"
                .into(),
        }],
    ));

    let mut i = with_conf("zfs\n", &[]);
    i.links.insert("flatcar-zfs.raw".into(), Entry::Other);
    rows.push((
        "a regular file at the link name is never replaced (and needs no image)",
        i,
        vec![Action::Skip {
            name: "flatcar-zfs".into(),
            reason: "/etc/extensions/flatcar-zfs.raw is not a symlink; it is left alone (extmerge never replaces a file)"
                .into(),
        }],
    ));

    rows.push((
        "names that are not file names are skipped, naming file and line",
        with_conf("../x\n", &[]),
        vec![Action::BadLine {
            file: p(USER_CONF),
            line: 1,
            reason: "\"../x\" contains '/'".into(),
        }],
    ));

    let mut i = with_conf("", &[&img("zfs"), &img("podman")]);
    i.user_conf = b"zfs\n\xff\xfe\n.. podman\n-\n".to_vec();
    i.vendor_conf = "python\n-zfs\n".into();
    rows.push((
        "one bad line is one bad line: the others still apply",
        i,
        vec![
            Action::BadLine {
                file: p(USER_CONF),
                line: 2,
                reason: "not valid UTF-8".into(),
            },
            Action::BadLine {
                file: p(USER_CONF),
                line: 3,
                reason: "\"..\" is not a usable name".into(),
            },
            Action::BadLine {
                file: p(USER_CONF),
                line: 4,
                reason: "'-' without a name removes nothing".into(),
            },
            Action::BadLine {
                file: p(VENDOR_CONF),
                line: 2,
                reason: "-zfs: removals only count in /etc/flatcar/enabled-sysext.conf".into(),
            },
            link("/etc/extensions/flatcar-zfs.raw", &img("zfs")),
            link("/etc/extensions/flatcar-podman.raw", &img("podman")),
            Action::Missing {
                name: "flatcar-python".into(),
                kind: ImageKind::Official,
                expected: vec![p(&img("python"))],
                url: None,
            },
        ],
    ));

    rows.push((
        "OEM image on the OEM partition -> link",
        oem(&[&oem_img, &root_img]),
        vec![link("/etc/extensions/oem-test.raw", &oem_img)],
    ));

    let mut i = oem(&[&root_img]);
    let prev = "/etc/flatcar/oem-sysext/oem-test-1.2.3.raw";
    i.links
        .insert("oem-test.raw".into(), symlink_entry(prev, Some(prev)));
    rows.push((
        "OEM fallback on root (kola case a): moved to the OEM partition, old one stays",
        i,
        vec![Action::MoveOem {
            from: p(&root_img),
            to: p(&oem_img),
            link: Some(p("/etc/extensions/oem-test.raw")),
        }],
    ));

    let mut i = oem(&[&root_img]);
    let prev = "/oem/sysext/oem-test-1.2.3.raw";
    i.links
        .insert("oem-test.raw".into(), symlink_entry(prev, Some(prev)));
    rows.push((
        "OEM fallback on root (kola case b): the old image leaves the OEM partition first",
        i,
        vec![
            Action::MoveOem {
                from: p(prev),
                to: p("/etc/flatcar/oem-sysext/oem-test-1.2.3.raw"),
                link: None,
            },
            Action::MoveOem {
                from: p(&root_img),
                to: p(&oem_img),
                link: Some(p("/etc/extensions/oem-test.raw")),
            },
        ],
    ));

    let mut i = oem(&[]);
    i.board = Some("amd64-usr".into());
    rows.push((
        "OEM image missing -> Missing, OEM partition preferred",
        i,
        vec![Action::Missing {
            name: "oem-test".into(),
            kind: ImageKind::Oem,
            expected: vec![p(&oem_img), p(&root_img)],
            url: url("oem-test"),
        }],
    ));

    let mut i = oem(&[&oem_img]);
    i.oem_active = false;
    rows.push(("no active-oem flag -> no OEM link", i, vec![]));

    let mut i = oem(&[&oem_img]);
    i.oem_id = None;
    rows.push(("no oem-release ID -> no OEM link", i, vec![]));

    let mut i = oem(&[&oem_img]);
    i.links
        .insert("oem-test.raw".into(), symlink_entry("/dev/null", None));
    rows.push((
        "masked OEM link is left alone",
        i,
        vec![Action::Skip {
            name: "oem-test".into(),
            reason: "/etc/extensions/oem-test.raw is masked by a link to /dev/null; left alone"
                .into(),
        }],
    ));

    let mut i = oem(&[&oem_img]);
    i.oem_migrate = true;
    i.oem_migrate_list = Some(format!(
        "{CLOUDINIT_WANTS}\n/oem/bin/\n\n/etc/x/../../y\n/oem\n"
    ));
    i.cloudinit_wants = Some(p("/oem/units/oem-cloudinit.service"));
    let list = "OEM migration list /usr/share/flatcar/oems/test";
    rows.push((
        "OEM migration: deletions, cloudinit wants re-pointed, unsafe entries skipped, flag removed",
        i,
        vec![
            link("/etc/extensions/oem-test.raw", &oem_img),
            link(CLOUDINIT_WANTS, CLOUDINIT_UNIT),
            Action::Delete {
                path: p("/oem/bin"),
                reason: list.into(),
            },
            Action::Skip {
                name: "oem-test".into(),
                reason: "not deleting \"/etc/x/../../y\" from /usr/share/flatcar/oems/test: contains '..'".into(),
            },
            Action::Skip {
                name: "oem-test".into(),
                reason: "not deleting \"/oem\" from /usr/share/flatcar/oems/test: names a top-level directory"
                    .into(),
            },
            Action::Delete {
                path: p("/oem/sysext/migrate-oem-test"),
                reason: "OEM migration done".into(),
            },
        ],
    ));

    let mut i = oem(&[&oem_img]);
    i.oem_migrate = true;
    rows.push((
        "OEM migration without its list keeps the flag",
        i,
        vec![
            link("/etc/extensions/oem-test.raw", &oem_img),
            Action::Skip {
                name: "oem-test".into(),
                reason: "/oem/sysext/migrate-oem-test exists but /usr/share/flatcar/oems/test does not; keeping the flag, no migration".into(),
            },
        ],
    ));

    for (what, inputs, want) in rows {
        assert_eq!(plan(&inputs), want, "{what}");
    }
}

#[test]
fn actions_print_as_a_plan() {
    let a = Action::MoveOem {
        from: p("/etc/flatcar/oem-sysext/oem-x-1.raw"),
        to: p("/oem/sysext/oem-x-1.raw"),
        link: Some(p("/etc/extensions/oem-x.raw")),
    };
    assert_eq!(
        a.to_string(),
        "move /etc/flatcar/oem-sysext/oem-x-1.raw to /oem/sysext/oem-x-1.raw, then link \
         /etc/extensions/oem-x.raw to it (or to the source if the move fails)"
    );
    assert_eq!(link("/a", "/b").to_string(), "link /a -> /b");
}

fn touch(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel.trim_start_matches('/'));
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

#[test]
fn gather_plan_apply_is_idempotent() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    touch(
        r,
        OS_RELEASE,
        &format!("ID=flatcar\nVERSION={V}\nVERSION_ID={V}\n"),
    );
    touch(r, USER_CONF, "zfs\n");
    touch(r, OEM_RELEASE, "ID=test\n");
    touch(r, "/oem/sysext/active-oem-test", "");
    touch(
        r,
        &format!("/etc/flatcar/oem-sysext/oem-test-{V}.raw"),
        "oem",
    );
    touch(
        r,
        &format!("/etc/flatcar/sysext/flatcar-zfs-{V}.raw"),
        "zfs",
    );
    touch(r, "/oem/sysext/migrate-oem-test", "");
    touch(
        r,
        "/usr/share/flatcar/oems/test",
        "/oem/bin/\n/etc/oem-thing\n",
    );
    touch(r, "/oem/bin/tool", "x");
    touch(r, "/etc/oem-thing", "x");

    let root = Root::open(r).expect("root");
    let first = plan(&gather(&root).expect("gather"));
    assert!(!first.is_empty());
    let log = apply(&root, &first).expect("apply");
    assert_eq!(log.len(), first.len(), "{log:?}");
    let again = plan(&gather(&root).expect("gather"));
    assert_eq!(again, vec![], "second run must want nothing");
    // Applying the same actions twice is harmless too.
    apply(&root, &first).expect("apply again");
    assert_eq!(plan(&gather(&root).expect("gather")), vec![]);
    assert!(!r.join("oem/bin").exists() && !r.join("etc/oem-thing").exists());
    assert!(!r.join("oem/sysext/migrate-oem-test").exists());
}

fn mtime_of(path: &Path) -> std::time::SystemTime {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

fn slot(root: &Root, path: &str, create: bool) -> Slot {
    Slot::at(root, Path::new(path), create)
        .expect("slot")
        .expect("parent exists")
}

/// An image with a fixed mtime in `dir`.
fn old_image(dir: &Path) -> (PathBuf, std::time::SystemTime) {
    let src = dir.join("oem-x-1.raw");
    fs::write(&src, b"image").expect("write");
    let mtime = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(&src)
        .and_then(|f| f.set_modified(mtime))
        .expect("set mtime");
    (src, mtime)
}

#[test]
fn move_file_across_filesystems_copies_and_keeps_mtime() {
    // /dev/shm is a tmpfs on Linux; when it is the same filesystem as the temp dir this
    // still checks the rename path (copy_across is tested on its own below).
    let shm = Path::new("/dev/shm");
    let a = if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tempdir")
    } else {
        tempfile::tempdir().expect("tempdir")
    };
    let b = tempfile::tempdir().expect("tempdir");
    let (src, mtime) = old_image(a.path());
    let (ra, rb) = (Root::open(a.path()).unwrap(), Root::open(b.path()).unwrap());
    move_file(
        &slot(&ra, "/oem-x-1.raw", false),
        &slot(&rb, "/oem/oem-x-1.raw", true),
    )
    .expect("move");
    let dst = b.path().join("oem/oem-x-1.raw");
    assert!(!src.exists());
    assert_eq!(fs::read(&dst).expect("read"), b"image");
    assert_eq!(mtime_of(&dst), mtime);
    let names: Vec<_> = fs::read_dir(b.path().join("oem"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["oem-x-1.raw"], "no temporary file left");
}

#[test]
fn copy_across_copies_regular_files_only_and_never_follows() {
    let t = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let (src, mtime) = old_image(t.path());
    let root = Root::open(t.path()).unwrap();
    copy_across(
        &slot(&root, "/oem-x-1.raw", false),
        &slot(&root, "/to/oem-x-1.raw", true),
    )
    .expect("copy");
    assert!(!src.exists());
    let dst = t.path().join("to/oem-x-1.raw");
    assert_eq!(
        (fs::read(&dst).unwrap(), mtime_of(&dst)),
        (b"image".to_vec(), mtime)
    );
    // A link is not copied (its target would be), even one to a regular file.
    fs::write(outside.path().join("secret"), "outside").unwrap();
    symlink(outside.path().join("secret"), t.path().join("link.raw")).unwrap();
    let e = copy_across(
        &slot(&root, "/link.raw", false),
        &slot(&root, "/to/link.raw", true),
    )
    .unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "/link.raw is not a regular file (symbolic link); not copying it across filesystems"
    );
    assert!(fs::symlink_metadata(t.path().join("to/link.raw")).is_err());
    assert_eq!(
        fs::read_to_string(outside.path().join("secret")).unwrap(),
        "outside"
    );
}

/// `/etc/extensions` and the images behind links out of the root: every change lands inside
/// the root, the same paths outside stay as they were.
#[test]
fn apply_never_writes_through_links_out_of_the_root() {
    let t = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    let o = outside.path();
    touch(o, "/extensions/flatcar-zfs.raw", "sentinel");
    touch(o, "/oem/bin/tool", "sentinel");
    touch(r, OS_RELEASE, &format!("VERSION={V}\n"));
    touch(r, USER_CONF, "zfs\n");
    touch(
        r,
        &format!("/etc/flatcar/sysext/flatcar-zfs-{V}.raw"),
        "zfs",
    );
    touch(
        r,
        "/usr/share/flatcar/oems/test",
        &format!("{}/bin\n", o.join("oem").display()),
    );
    touch(r, OEM_RELEASE, "ID=test\n");
    touch(r, "/oem/sysext/migrate-oem-test", "");
    // /etc/extensions is an absolute link to the outside directory of the same name.
    symlink(o.join("extensions"), r.join("etc/extensions")).unwrap();
    let root = Root::open(r).unwrap();
    let actions = plan(&gather(&root).unwrap());
    apply(&root, &actions).unwrap();
    let inside = r.join(o.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read_link(inside.join("extensions/flatcar-zfs.raw")).unwrap(),
        Path::new(&format!("/etc/flatcar/sysext/flatcar-zfs-{V}.raw"))
    );
    assert_eq!(
        fs::read_to_string(o.join("extensions/flatcar-zfs.raw")).unwrap(),
        "sentinel"
    );
    assert_eq!(
        fs::read_to_string(o.join("oem/bin/tool")).unwrap(),
        "sentinel"
    );
}

#[test]
fn oversized_inputs_are_errors_naming_file_and_cap() {
    for (file, cap) in [
        (USER_CONF, crate::limits::FLATCAR_FILE),
        (VENDOR_CONF, crate::limits::FLATCAR_FILE),
        (OEM_RELEASE, crate::limits::FLATCAR_FILE),
        (OS_RELEASE, crate::limits::RELEASE_FILE),
    ] {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        touch(r, OS_RELEASE, &format!("VERSION={V}\n"));
        let mut text = String::from(if file == OS_RELEASE {
            "VERSION=1\n"
        } else {
            "zfs\n"
        });
        text.push_str(&"#".repeat(cap as usize + 1 - text.len()));
        touch(r, file, &text);
        let e = gather(&Root::open(r).unwrap()).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!(
                "reading {}: larger than the {cap} bytes allowed",
                r.join(file.trim_start_matches('/')).display()
            )
        );
        // At the cap exactly, it is read.
        text.pop();
        touch(r, file, &text);
        gather(&Root::open(r).unwrap()).expect("at the cap");
    }
}

#[test]
fn deletable_rules() {
    let rows: &[(&str, Result<&str, &str>)] = &[
        ("/oem/bin/", Ok("/oem/bin")),
        (
            "/etc/systemd/system/oem-gce.service",
            Ok("/etc/systemd/system/oem-gce.service"),
        ),
        ("/oem/./units", Ok("/oem/units")),
        ("oem/bin", Err("not an absolute path")),
        ("/", Err("names a top-level directory")),
        ("/etc", Err("names a top-level directory")),
        ("/oem/../etc/x", Err("contains '..'")),
    ];
    for (entry, want) in rows {
        assert_eq!(deletable(entry), want.map(p), "{entry:?}");
    }
}
