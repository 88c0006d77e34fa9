//! Flatcar extension selection on temporary root trees (no root privileges): gather → plan →
//! apply, checked through the resulting symlinks. Mirrors kola `cl.sysext.boot` cases a) and b),
//! `sysext.custom-oem` and `sysext.disable-docker` (flatcar/mantle `kola/tests/sysext`).

use extmerge::chase::chase;
use extmerge::initrd::flatcar::{apply, gather, missing_error, plan, Action};
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

/// One initrd run: gather, plan, apply; fails the test on a missing image.
fn run(root: &Path) -> Vec<String> {
    let actions = plan(&gather(root).unwrap());
    assert_eq!(missing_error(&actions), None);
    apply(root, &actions).unwrap()
}

fn assert_settled(root: &Path) {
    assert_eq!(
        plan(&gather(root).unwrap()),
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
    let resolved = chase(
        &r.canonicalize().unwrap(),
        Path::new("/etc/extensions/oem-test.raw"),
    )
    .unwrap();
    assert_eq!(
        resolved.in_root,
        PathBuf::from(format!("/oem-part/sysext/oem-test-{V}.raw"))
    );
    assert_eq!(fs::read_to_string(resolved.host).unwrap(), V);
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
fn missing_images_are_one_clear_error_and_nothing_is_downloaded() {
    let t = flatcar_root();
    let r = t.path();
    let actions = plan(&gather(r).unwrap());
    let msg = missing_error(&actions).expect("both images are missing");
    assert!(
        msg.contains(&format!(
            "oem-test: place it at /oem/sysext/oem-test-{V}.raw (preferred) or /etc/flatcar/oem-sysext/oem-test-{V}.raw"
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "flatcar-myext: place it at /etc/flatcar/sysext/flatcar-myext-{V}.raw"
        )),
        "{msg}"
    );
    assert!(msg.contains(&format!(
        "https://update.release.flatcar-linux.net/amd64-usr/{V}/flatcar-myext.gz"
    )));
    // apply does what it can and reports no line for the missing images.
    let log = apply(r, &actions).unwrap();
    assert!(log.is_empty(), "{log:?}");
    assert!(!at(r, "etc/extensions").exists());
    assert!(actions.iter().all(|a| matches!(a, Action::Missing { .. })));
}

#[test]
fn gather_fails_clearly_without_os_release() {
    let t = tempfile::tempdir().unwrap();
    let err = gather(t.path()).unwrap_err();
    assert!(
        format!("{err:#}").contains("/usr/lib/os-release"),
        "{err:#}"
    );
}
