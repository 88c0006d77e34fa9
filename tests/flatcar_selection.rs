//! Flatcar extension selection on temporary root trees (no root privileges): gather → plan →
//! apply, checked through the resulting symlinks. Mirrors kola `cl.sysext.boot` cases a) and b),
//! `sysext.custom-oem` and `sysext.disable-docker` (flatcar/mantle `kola/tests/sysext`).

mod common;

use extmerge::initrd::flatcar::missing::{missing_images, missing_lines, resolve_policy};
use extmerge::initrd::flatcar::{apply, gather, plan, Action};
use extmerge::kernel::root::Root;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

const V: &str = "4081.2.0";

fn at(root: &Path, rel: &str) -> PathBuf {
    root.join(rel.trim_start_matches('/'))
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = at(root, rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = at(root, rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = fs::remove_file(&p);
    symlink(target, p).unwrap();
}

fn readlink(root: &Path, rel: &str) -> String {
    fs::read_link(at(root, rel)).unwrap().display().to_string()
}

/// A Flatcar-like root: os-release, `oem-release ID=test`, `active-oem-test`, `myext` enabled.
fn flatcar_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "/usr/lib/os-release",
        &format!("ID=flatcar\nID_LIKE=coreos\nVERSION={V}\nVERSION_ID={V}\nFLATCAR_BOARD=\"amd64-usr\"\n"),
    );
    write(r, "/oem/oem-release", "ID=test\n");
    write(r, "/oem/sysext/active-oem-test", "");
    write(r, "/etc/flatcar/enabled-sysext.conf", "myext\n");
    t
}

fn open(root: &Path) -> Root {
    Root::open(root).unwrap()
}

/// One initrd run: gather, plan, apply; fails the test on a missing image.
fn run(root: &Path) -> Vec<String> {
    let actions = plan(&gather(&open(root)).unwrap());
    assert_eq!(missing_images(&actions, V), vec![]);
    apply(&open(root), &actions).unwrap()
}

fn assert_settled(root: &Path) {
    assert_eq!(
        plan(&gather(&open(root)).unwrap()),
        vec![],
        "a second boot must change nothing"
    );
}

#[test]
fn kola_sysext_boot_case_a_previous_image_on_root_stays() {
    let t = flatcar_root();
    let r = t.path();
    for f in [
        format!("/etc/flatcar/oem-sysext/oem-test-{V}.raw"),
        "/etc/flatcar/oem-sysext/oem-test-1.2.3.raw".into(),
        format!("/etc/flatcar/sysext/flatcar-myext-{V}.raw"),
        "/etc/flatcar/sysext/flatcar-myext-1.2.3.raw".into(),
    ] {
        write(r, &f, &f);
    }
    link(
        r,
        "/etc/extensions/oem-test.raw",
        "/etc/flatcar/oem-sysext/oem-test-1.2.3.raw",
    );
    link(
        r,
        "/etc/extensions/flatcar-myext.raw",
        "/etc/flatcar/sysext/flatcar-myext-1.2.3.raw",
    );

    let log = run(r);
    assert_eq!(log.len(), 2, "{log:?}");

    assert_eq!(
        readlink(r, "/etc/extensions/oem-test.raw"),
        format!("/oem/sysext/oem-test-{V}.raw")
    );
    assert_eq!(
        readlink(r, "/etc/extensions/flatcar-myext.raw"),
        format!("/etc/flatcar/sysext/flatcar-myext-{V}.raw")
    );
    // The new OEM image moved onto the OEM partition; the old one stays on the root partition.
    assert!(at(r, &format!("/oem/sysext/oem-test-{V}.raw")).is_file());
    assert!(!at(r, &format!("/etc/flatcar/oem-sysext/oem-test-{V}.raw")).exists());
    assert!(at(r, "/etc/flatcar/oem-sysext/oem-test-1.2.3.raw").is_file());
    assert_settled(r);
}

#[test]
fn kola_sysext_boot_case_b_previous_image_leaves_the_oem_partition() {
    let t = flatcar_root();
    let r = t.path();
    write(
        r,
        &format!("/etc/flatcar/oem-sysext/oem-test-{V}.raw"),
        "new",
    );
    write(r, "/oem/sysext/oem-test-1.2.3.raw", "old");
    write(
        r,
        &format!("/etc/flatcar/sysext/flatcar-myext-{V}.raw"),
        "ext",
    );
    write(r, "/etc/flatcar/sysext/flatcar-myext-1.2.3.raw", "ext-old");
    link(
        r,
        "/etc/extensions/oem-test.raw",
        "/oem/sysext/oem-test-1.2.3.raw",
    );
    link(
        r,
        "/etc/extensions/flatcar-myext.raw",
        "/etc/flatcar/sysext/flatcar-myext-1.2.3.raw",
    );

    run(r);

    assert_eq!(
        readlink(r, "/etc/extensions/oem-test.raw"),
        format!("/oem/sysext/oem-test-{V}.raw")
    );
    assert_eq!(
        readlink(r, "/etc/extensions/flatcar-myext.raw"),
        format!("/etc/flatcar/sysext/flatcar-myext-{V}.raw")
    );
    assert_eq!(
        fs::read_to_string(at(r, "/etc/flatcar/oem-sysext/oem-test-1.2.3.raw")).unwrap(),
        "old"
    );
    assert!(!at(r, "/oem/sysext/oem-test-1.2.3.raw").exists());
    assert_eq!(
        fs::read_to_string(at(r, &format!("/oem/sysext/oem-test-{V}.raw"))).unwrap(),
        "new"
    );
    assert_settled(r);
}

#[test]
fn kola_sysext_boot_case_c_image_already_on_the_oem_partition() {
    let t = flatcar_root();
    let r = t.path();
    write(r, &format!("/oem/sysext/oem-test-{V}.raw"), "oem");
    write(
        r,
        &format!("/etc/flatcar/sysext/flatcar-myext-{V}.raw"),
        "ext",
    );

    run(r);

    assert_eq!(
        readlink(r, "/etc/extensions/oem-test.raw"),
        format!("/oem/sysext/oem-test-{V}.raw")
    );
    assert_eq!(
        readlink(r, "/etc/extensions/flatcar-myext.raw"),
        format!("/etc/flatcar/sysext/flatcar-myext-{V}.raw")
    );
    assert_settled(r);
}

#[test]
fn kola_sysext_custom_oem_link_resolves_inside_the_root() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "/usr/lib/os-release",
        &format!("ID=flatcar\nVERSION={V}\nVERSION_ID={V}\n"),
    );
    // The OEM partition reached through an absolute in-root symlink, as on older layouts
    // (/usr/share/oem -> /oem): it must resolve below the root, never on the host.
    write(r, "/oem-part/oem-release", "ID=test\n");
    write(r, "/oem-part/sysext/active-oem-test", "");
    write(r, &format!("/oem-part/sysext/oem-test-{V}.raw"), V);
    link(r, "/oem", "/oem-part");

    run(r);

    let target = readlink(r, "/etc/extensions/oem-test.raw");
    assert_eq!(target, format!("/oem/sysext/oem-test-{V}.raw"));
    let resolved = open(r)
        .resolve(Path::new("/etc/extensions/oem-test.raw"))
        .unwrap();
    assert_eq!(
        resolved.in_root,
        PathBuf::from(format!("/oem-part/sysext/oem-test-{V}.raw"))
    );
    assert_eq!(
        fs::read_to_string(at(r, &format!("/oem-part/sysext/oem-test-{V}.raw"))).unwrap(),
        V
    );
    assert_settled(r);
}

#[test]
fn kola_sysext_disable_docker_dev_null_links_are_never_touched() {
    let t = flatcar_root();
    let r = t.path();
    write(r, &format!("/oem/sysext/oem-test-{V}.raw"), "oem");
    write(r, "/etc/flatcar/enabled-sysext.conf", "myext\nzfs\n");
    write(
        r,
        &format!("/etc/flatcar/sysext/flatcar-myext-{V}.raw"),
        "ext",
    );
    link(r, "/etc/extensions/docker-flatcar.raw", "/dev/null");
    link(r, "/etc/extensions/containerd-flatcar.raw", "/dev/null");
    link(r, "/etc/extensions/flatcar-zfs.raw", "/dev/null");
    // A user image and a user symlink under other names are not ours either.
    write(r, "/etc/extensions/flatcar-own.raw", "user file");
    link(
        r,
        "/etc/extensions/kubernetes.raw",
        "/opt/extensions/kubernetes/kubernetes-v1.33.raw",
    );

    let log = run(r);
    assert!(
        log.iter().any(|l| l.contains("flatcar-zfs.raw is masked")),
        "{log:?}"
    );

    for name in ["docker-flatcar", "containerd-flatcar", "flatcar-zfs"] {
        assert_eq!(
            readlink(r, &format!("/etc/extensions/{name}.raw")),
            "/dev/null"
        );
    }
    assert_eq!(
        fs::read_to_string(at(r, "/etc/extensions/flatcar-own.raw")).unwrap(),
        "user file"
    );
    assert_eq!(
        readlink(r, "/etc/extensions/kubernetes.raw"),
        "/opt/extensions/kubernetes/kubernetes-v1.33.raw"
    );
}

#[test]
fn disabled_extension_link_is_removed_and_vendor_default_honoured() {
    let t = flatcar_root();
    let r = t.path();
    fs::remove_file(at(r, "/oem/sysext/active-oem-test")).unwrap();
    write(
        r,
        "/usr/share/flatcar/enabled-sysext.conf",
        "# vendor defaults\npython\nzfs\n",
    );
    write(r, "/etc/flatcar/enabled-sysext.conf", "-zfs # not here\n");
    write(
        r,
        &format!("/etc/flatcar/sysext/flatcar-python-{V}.raw"),
        "py",
    );
    write(
        r,
        &format!("/etc/flatcar/sysext/flatcar-zfs-{V}.raw"),
        "zfs",
    );
    link(
        r,
        "/etc/extensions/flatcar-zfs.raw",
        &format!("/etc/flatcar/sysext/flatcar-zfs-{V}.raw"),
    );
    write(r, &format!("/oem/sysext/oem-test-{V}.raw"), "oem");

    run(r);

    assert_eq!(
        readlink(r, "/etc/extensions/flatcar-python.raw"),
        format!("/etc/flatcar/sysext/flatcar-python-{V}.raw")
    );
    assert!(fs::symlink_metadata(at(r, "/etc/extensions/flatcar-zfs.raw")).is_err());
    // No active-oem flag: the OEM image is not linked.
    assert!(fs::symlink_metadata(at(r, "/etc/extensions/oem-test.raw")).is_err());
    assert_settled(r);
}

#[test]
fn missing_images_are_one_line_each_and_nothing_is_downloaded() {
    let t = flatcar_root();
    let r = t.path();
    let actions = plan(&gather(&open(r)).unwrap());
    let lines = missing_lines(&actions, V, &resolve_policy(None, &[], false));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!(
            "Missing OEM extension image oem-test for version {V}: place it at /oem/sysext/oem-test-{V}.raw (preferred) or /etc/flatcar/oem-sysext/oem-test-{V}.raw"
        )),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "Missing official extension image flatcar-myext for version {V}: place it at /etc/flatcar/sysext/flatcar-myext-{V}.raw (Flatcar downloads https://update.release.flatcar-linux.net/amd64-usr/{V}/flatcar-myext.gz"
        )),
        "{lines:?}"
    );
    let names: Vec<String> = missing_images(&actions, V)
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["oem-test", "flatcar-myext"]);
    // apply does what it can and reports no line for the missing images.
    let log = apply(&open(r), &actions).unwrap();
    assert!(log.is_empty(), "{log:?}");
    assert!(!at(r, "etc/extensions").exists());
    assert!(actions.iter().all(|a| matches!(a, Action::Missing { .. })));
}

#[test]
fn gather_fails_clearly_without_os_release() {
    let t = tempfile::tempdir().unwrap();
    let err = gather(&open(t.path())).unwrap_err();
    assert!(
        format!("{err:#}").contains("/usr/lib/os-release"),
        "{err:#}"
    );
}

/// `/etc/extensions`, `/etc/flatcar` and `/oem` as links out of the root (absolute and `..`):
/// the selection reads and writes the same paths inside the root, and the sentinel tree outside
/// with those names stays exactly as it was.
#[test]
fn links_out_of_the_root_are_resolved_inside_it() {
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path();
    write(o, "/flatcar/enabled-sysext.conf", "evil\n");
    write(o, &format!("/flatcar/sysext/flatcar-evil-{V}.raw"), "evil");
    write(o, "/extensions/flatcar-zfs.raw", "sentinel");
    write(o, "/oem/oem-release", "ID=evil\n");
    write(o, "/oem/sysext/active-oem-evil", "");
    write(o, &format!("/oem/sysext/oem-evil-{V}.raw"), "evil");
    let before = common::tree_snapshot(o);

    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "/usr/lib/os-release",
        &format!("ID=flatcar\nVERSION={V}\n"),
    );
    let inside = |rel: &str| format!("{}/{rel}", o.display());
    // The same outside paths, inside the root: what the links really name.
    write(r, &inside("flatcar/enabled-sysext.conf"), "zfs\n");
    write(
        r,
        &inside(&format!("flatcar/sysext/flatcar-zfs-{V}.raw")),
        "zfs",
    );
    link(r, "/etc/extensions", &inside("extensions"));
    let dotdot = format!("../../../../../../../..{}", inside("flatcar"));
    link(r, "/etc/flatcar", &dotdot);
    link(r, "/oem", &inside("oem"));

    let actions = plan(&gather(&open(r)).unwrap());
    assert_eq!(
        actions,
        vec![Action::Link {
            link: "/etc/extensions/flatcar-zfs.raw".into(),
            target: format!("/etc/flatcar/sysext/flatcar-zfs-{V}.raw").into(),
        }],
        "only the in-root enabled-sysext.conf counts, and there is no in-root OEM"
    );
    apply(&open(r), &actions).unwrap();
    assert_eq!(
        readlink(r, &inside("extensions/flatcar-zfs.raw")),
        format!("/etc/flatcar/sysext/flatcar-zfs-{V}.raw")
    );
    assert_eq!(
        common::tree_snapshot(o),
        before,
        "the tree outside the root changed"
    );
    assert_settled(r);
}

/// A bad line in enabled-sysext.conf is skipped with its file, line number and reason; every
/// other line is applied.
#[test]
fn one_bad_line_in_enabled_sysext_conf_is_skipped_and_the_rest_applied() {
    let t = flatcar_root();
    let r = t.path();
    fs::remove_file(at(r, "/oem/sysext/active-oem-test")).unwrap();
    let conf = at(r, "/etc/flatcar/enabled-sysext.conf");
    fs::write(&conf, b"myext\nbad\xffname\nsub/dir other\n").unwrap();
    for name in ["myext", "other"] {
        write(
            r,
            &format!("/etc/flatcar/sysext/flatcar-{name}-{V}.raw"),
            name,
        );
    }
    let actions = plan(&gather(&open(r)).unwrap());
    let bad: Vec<String> = actions
        .iter()
        .filter(|a| matches!(a, Action::BadLine { .. }))
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        bad,
        [
            "ignore /etc/flatcar/enabled-sysext.conf line 2: not valid UTF-8",
            "ignore /etc/flatcar/enabled-sysext.conf line 3: \"sub/dir\" contains '/'",
        ]
    );
    let log = apply(&open(r), &actions).unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    for name in ["myext", "other"] {
        assert_eq!(
            readlink(r, &format!("/etc/extensions/flatcar-{name}.raw")),
            format!("/etc/flatcar/sysext/flatcar-{name}-{V}.raw")
        );
    }
}

#[test]
fn an_oversized_enabled_sysext_conf_is_an_error_naming_it_and_the_cap() {
    let t = flatcar_root();
    let r = t.path();
    let conf = at(r, "/etc/flatcar/enabled-sysext.conf");
    fs::write(&conf, "myext\n".repeat(200_000)).unwrap();
    let err = gather(&open(r)).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "reading {}: larger than the 1048576 bytes allowed",
            conf.display()
        )
    );
}
