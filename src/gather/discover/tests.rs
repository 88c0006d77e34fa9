//! Unit tests of `discover`.

use super::*;
use rustix::fs::{makedev, mknodat, FileType as NodeType, Mode, CWD};
use std::os::unix::fs::symlink;

struct Tree {
    _t: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        Tree { _t: t, root }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }
    fn dir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.p(rel)).unwrap();
        self
    }
    fn file(&self, rel: &str) -> &Self {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
        self
    }
    fn link(&self, target: &str, rel: &str) -> &Self {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
        self
    }
    /// mknod; these tests need root (CI runs as root), so lacking it is a failure, not a skip.
    fn node(&self, rel: &str, kind: NodeType, major: u32, minor: u32) -> bool {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        match mknodat(
            CWD,
            &p,
            kind,
            Mode::from_raw_mode(0o600),
            makedev(major, minor),
        ) {
            Ok(()) => true,
            Err(e) if e == rustix::io::Errno::PERM => {
                panic!(
                    "mknod {} not permitted: this test must run as root",
                    p.display()
                )
            }
            Err(e) => panic!("mknod {}: {e}", p.display()),
        }
    }
    fn handle(&self) -> Root {
        Root::open(&self.root).unwrap()
    }
    fn sysext(&self) -> Discovery {
        discover(&self.handle(), ImageClass::Sysext, false).unwrap()
    }
    fn run(&self, class: ImageClass, initrd: bool) -> Discovery {
        discover(&self.handle(), class, initrd).unwrap()
    }
}

fn names(d: &Discovery) -> Vec<&str> {
    d.images.iter().map(|c| c.name.as_str()).collect()
}

fn image<'a>(d: &'a Discovery, name: &str) -> &'a Candidate {
    d.images
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no image {name:?} in {d:#?}"))
}

fn reason<'a>(d: &'a Discovery, entry: &str) -> &'a str {
    d.skipped
        .iter()
        .find(|s| s.entry == Path::new(entry))
        .map(|s| s.reason.as_str())
        .unwrap_or_else(|| panic!("{entry} not skipped in {d:#?}"))
}

fn pb(s: &str) -> PathBuf {
    PathBuf::from(s)
}

#[test]
fn nothing_to_discover() {
    let t = Tree::new();
    assert_eq!(t.sysext(), Discovery::default());
    assert!(Root::open(&t.root.join("missing")).is_err());
}

#[test]
fn sysext_precedence_etc_run_var() {
    let t = Tree::new();
    t.dir("/etc/extensions/a")
        .file("/run/extensions/a.raw")
        .file("/var/lib/extensions/a.raw")
        .file("/run/extensions/b.raw")
        .file("/var/lib/extensions/b.raw")
        .file("/var/lib/extensions/c.raw");
    let d = t.sysext();
    assert_eq!(names(&d), ["a", "b", "c"]);
    let a = image(&d, "a");
    assert_eq!(a.entry, pb("/etc/extensions/a"));
    assert_eq!(a.kind, ImageKind::Directory);
    assert_eq!(a.search_dir, pb("/etc/extensions"));
    assert_eq!(image(&d, "b").entry, pb("/run/extensions/b.raw"));
    assert_eq!(image(&d, "c").search_dir, pb("/var/lib/extensions"));
    assert_eq!(
        reason(&d, "/run/extensions/a.raw"),
        "shadowed by /etc/extensions/a"
    );
    assert_eq!(
        reason(&d, "/var/lib/extensions/a.raw"),
        "shadowed by /etc/extensions/a"
    );
    assert_eq!(
        reason(&d, "/var/lib/extensions/b.raw"),
        "shadowed by /run/extensions/b.raw"
    );
    assert_eq!(d.skipped.len(), 3);
    // not searched by sysext
    t.file("/usr/lib/extensions/z.raw")
        .file("/.extra/sysext/z.raw");
    assert_eq!(names(&t.sysext()), ["a", "b", "c"]);
}

#[test]
fn confext_precedence_run_var_usrlocal_usr() {
    let t = Tree::new();
    t.file("/var/lib/confexts/c.raw")
        .file("/usr/local/lib/confexts/c.raw")
        .file("/usr/lib/confexts/c.raw")
        .file("/run/confexts/r.raw")
        .file("/var/lib/confexts/r.raw")
        .file("/usr/local/lib/confexts/l.raw")
        .file("/usr/lib/confexts/l.raw")
        .file("/usr/lib/confexts/u.raw")
        .file("/etc/extensions/sys.raw");
    let d = t.run(ImageClass::Confext, false);
    assert_eq!(names(&d), ["c", "l", "r", "u"]);
    assert_eq!(image(&d, "c").entry, pb("/var/lib/confexts/c.raw"));
    assert_eq!(image(&d, "r").entry, pb("/run/confexts/r.raw"));
    assert_eq!(image(&d, "l").entry, pb("/usr/local/lib/confexts/l.raw"));
    assert_eq!(image(&d, "u").entry, pb("/usr/lib/confexts/u.raw"));
    assert_eq!(
        reason(&d, "/usr/lib/confexts/c.raw"),
        "shadowed by /var/lib/confexts/c.raw"
    );
}

#[test]
fn initrd_search_lists() {
    let t = Tree::new();
    t.file("/var/lib/extensions/v.raw")
        .file("/.extra/sysext/v.raw")
        .file("/.extra/sysext/uki.raw")
        .file("/.extra/global_sysext/uki.raw")
        .file("/.extra/global_sysext/global.raw")
        .file("/usr/lib/confexts/usr.raw")
        .file("/.extra/confext/c.raw")
        .file("/.extra/global_confext/c.raw")
        .file("/usr/local/lib/confexts/local.raw");

    let d = t.run(ImageClass::Sysext, true);
    assert_eq!(names(&d), ["global", "uki", "v"]);
    assert_eq!(image(&d, "v").entry, pb("/var/lib/extensions/v.raw"));
    assert_eq!(image(&d, "uki").entry, pb("/.extra/sysext/uki.raw"));
    assert_eq!(image(&d, "global").search_dir, pb("/.extra/global_sysext"));
    assert_eq!(names(&t.run(ImageClass::Sysext, false)), ["v"]);

    let d = t.run(ImageClass::Confext, true);
    assert_eq!(names(&d), ["c", "local"]);
    assert_eq!(image(&d, "c").entry, pb("/.extra/confext/c.raw"));
    assert_eq!(
        reason(&d, "/.extra/global_confext/c.raw"),
        "shadowed by /.extra/confext/c.raw"
    );
    // /usr/lib/confexts is not searched in the initrd, /.extra is not searched on the host
    assert_eq!(names(&t.run(ImageClass::Confext, false)), ["local", "usr"]);
}

#[test]
fn naming_in_sysext() {
    let t = Tree::new();
    t.file("/etc/extensions/foo.raw")
        .file("/etc/extensions/bar.sysext.raw")
        .file("/etc/extensions/baz.confext.raw")
        .file("/etc/extensions/foo_1.2.raw")
        .dir("/etc/extensions/qux")
        .dir("/etc/extensions/quux.sysext")
        .dir("/etc/extensions/dirconf.confext")
        .dir("/etc/extensions/stack.mstack")
        .dir("/etc/extensions/zz.sysext.mstack")
        .dir("/etc/extensions/looks.raw")
        .dir("/etc/extensions/.hidden")
        .file("/etc/extensions/notes.txt")
        .file("/etc/extensions/noext")
        .file("/etc/extensions/.raw")
        .file("/etc/extensions/.sysext.raw")
        .dir("/etc/extensions/.#lockdir")
        .file("/etc/extensions/.#foo.raw")
        .file("/etc/extensions/.sysupdate.tmp.raw")
        .dir("/etc/extensions/.sysupdate.dir");
    let d = t.sysext();
    let by = |n: &str| image(&d, n);
    assert_eq!(by("foo").kind, ImageKind::Raw);
    assert_eq!(by("foo").path, pb("/etc/extensions/foo.raw"));
    assert_eq!(by("bar").entry, pb("/etc/extensions/bar.sysext.raw"));
    assert_eq!(by("baz.confext").kind, ImageKind::Raw);
    assert_eq!(by("foo_1.2").entry, pb("/etc/extensions/foo_1.2.raw"));
    assert_eq!(by("qux").kind, ImageKind::Directory);
    assert_eq!(by("quux").entry, pb("/etc/extensions/quux.sysext"));
    assert_eq!(by("dirconf.confext").kind, ImageKind::Directory);
    assert_eq!(by("stack").kind, ImageKind::Directory);
    assert_eq!(by("zz").entry, pb("/etc/extensions/zz.sysext.mstack"));
    assert_eq!(by("looks.raw").kind, ImageKind::Directory);
    assert_eq!(by(".hidden").entry, pb("/etc/extensions/.hidden"));
    assert_eq!(d.images.len(), 11, "{d:#?}");

    assert_eq!(reason(&d, "/etc/extensions/notes.txt"), "not a .raw file");
    assert_eq!(reason(&d, "/etc/extensions/noext"), "not a .raw file");
    assert!(reason(&d, "/etc/extensions/.raw").starts_with("invalid image name"));
    assert!(reason(&d, "/etc/extensions/.sysext.raw").starts_with("invalid image name"));
    assert!(reason(&d, "/etc/extensions/.#lockdir").starts_with("invalid image name"));
    assert!(reason(&d, "/etc/extensions/.#foo.raw").starts_with("invalid image name"));
    assert!(reason(&d, "/etc/extensions/.sysupdate.tmp.raw").contains("sysupdate"));
    assert!(reason(&d, "/etc/extensions/.sysupdate.dir").contains("sysupdate"));
    assert_eq!(d.skipped.len(), 8, "{d:#?}");
}

#[test]
fn naming_in_confext_strips_only_its_own_suffix() {
    let t = Tree::new();
    t.file("/run/confexts/foo.confext.raw")
        .file("/run/confexts/bar.sysext.raw")
        .dir("/run/confexts/etcfiles.confext");
    let d = t.run(ImageClass::Confext, false);
    assert_eq!(names(&d), ["bar.sysext", "etcfiles", "foo"]);
}

/// T50d:936-947: an empty directory of the same name in a higher directory masks an image.
#[test]
fn upstream_t50d_mask_with_empty_directory() {
    let t = Tree::new();
    t.file("/opt/app-nodistro.raw").link(
        "/opt/app-nodistro.raw",
        "/var/lib/extensions/app-nodistro.raw",
    );
    assert_eq!(
        image(&t.sysext(), "app-nodistro").path,
        pb("/opt/app-nodistro.raw")
    );

    t.dir("/etc/extensions/app-nodistro");
    let d = t.sysext();
    let c = image(&d, "app-nodistro");
    assert_eq!(c.kind, ImageKind::Directory);
    assert_eq!(c.entry, pb("/etc/extensions/app-nodistro"));
    assert_eq!(c.path, pb("/etc/extensions/app-nodistro"));
    assert_eq!(
        reason(&d, "/var/lib/extensions/app-nodistro.raw"),
        "shadowed by /etc/extensions/app-nodistro"
    );
}

#[test]
fn dev_null_symlink_masks_nothing_as_root() {
    let t = Tree::new();
    t.file("/var/lib/extensions/foo.raw")
        .file("/var/lib/extensions/bar.raw");
    assert!(t.node("/dev/null", NodeType::CharacterDevice, 1, 3));
    // "/dev/null" resolves inside the root, to the node just made
    t.link("/dev/null", "/etc/extensions/foo.raw")
        .link("/dev/null", "/etc/extensions/bar");
    let d = t.sysext();
    assert_eq!(names(&d), ["bar", "foo"]);
    assert_eq!(image(&d, "foo").entry, pb("/var/lib/extensions/foo.raw"));
    assert_eq!(image(&d, "bar").entry, pb("/var/lib/extensions/bar.raw"));
    for e in ["/etc/extensions/foo.raw", "/etc/extensions/bar"] {
        let r = reason(&d, e);
        assert!(
            r.starts_with("character device (e.g. a link to /dev/null)"),
            "{r}"
        );
        assert!(r.contains("does not mask anything"), "{r}");
    }
}

#[test]
fn fifo_and_socket_are_not_images() {
    let t = Tree::new();
    t.dir("/run/extensions");
    assert!(t.node("/run/extensions/pipe.raw", NodeType::Fifo, 0, 0));
    let _sock = std::os::unix::net::UnixListener::bind(t.p("/run/extensions/sock")).unwrap();
    let d = t.sysext();
    assert!(d.images.is_empty());
    assert!(reason(&d, "/run/extensions/pipe.raw").starts_with("fifo"));
    assert!(reason(&d, "/run/extensions/sock").starts_with("socket"));
}

#[test]
fn block_device_is_an_image_named_as_is_as_root() {
    let t = Tree::new();
    assert!(t.node("/dev/blk0", NodeType::BlockDevice, 7, 0));
    t.node("/run/extensions/disk.raw", NodeType::BlockDevice, 7, 1);
    t.link("/dev/blk0", "/etc/extensions/blk");
    let d = t.sysext();
    let b = image(&d, "blk");
    assert_eq!(b.kind, ImageKind::Block);
    assert_eq!(b.path, pb("/dev/blk0"));
    assert_eq!(b.path, pb("/dev/blk0"));
    // no suffix stripping for block devices
    assert_eq!(image(&d, "disk.raw").kind, ImageKind::Block);
}

/// T50:1313: the extension directory lives elsewhere; a relative symlink points to it.
#[test]
fn upstream_t50_40_relative_symlink_to_dir() {
    let t = Tree::new();
    t.dir("/var/othername-extension/usr/lib/extension-release.d")
        .link(
            "../../othername-extension",
            "/var/lib/extensions/test-extension",
        );
    let d = t.sysext();
    let c = image(&d, "test-extension");
    assert_eq!(c.kind, ImageKind::Directory);
    assert_eq!(c.entry, pb("/var/lib/extensions/test-extension"));
    assert_eq!(c.path, pb("/var/othername-extension"));
    assert_eq!(c.path, pb("/var/othername-extension"));
}

#[test]
fn upstream_t50_41_absolute_symlink_to_dir() {
    let t = Tree::new();
    t.dir("/var/othername-extension").link(
        "/var/othername-extension",
        "/var/lib/extensions/test-extension",
    );
    let c = t.sysext().images.remove(0);
    assert_eq!(
        (c.name.as_str(), c.kind),
        ("test-extension", ImageKind::Directory)
    );
    assert_eq!(c.path, pb("/var/othername-extension"));
    assert_eq!(c.path, pb("/var/othername-extension"));
}

#[test]
fn upstream_t50_42_relative_symlink_to_raw() {
    let t = Tree::new();
    t.file("/var/othername-extension.raw").link(
        "../../othername-extension.raw",
        "/var/lib/extensions/test-extension.raw",
    );
    let c = t.sysext().images.remove(0);
    assert_eq!(
        (c.name.as_str(), c.kind),
        ("test-extension", ImageKind::Raw)
    );
    assert_eq!(c.entry, pb("/var/lib/extensions/test-extension.raw"));
    assert_eq!(c.path, pb("/var/othername-extension.raw"));
}

#[test]
fn upstream_t50_43_absolute_symlink_to_raw() {
    let t = Tree::new();
    t.file("/var/othername-extension.raw").link(
        "/var/othername-extension.raw",
        "/var/lib/extensions/test-extension.raw",
    );
    let c = t.sysext().images.remove(0);
    assert_eq!(
        (c.name.as_str(), c.kind),
        ("test-extension", ImageKind::Raw)
    );
    assert_eq!(c.path, pb("/var/othername-extension.raw"));
    assert_eq!(c.path, pb("/var/othername-extension.raw"));
}

#[test]
fn absolute_symlink_cannot_escape_root() {
    let t = Tree::new();
    t.file("/store/x.raw")
        .link("/../../../../store/x.raw", "/etc/extensions/x.raw")
        .link("../../../../../../../../store", "/etc/extensions/s");
    let d = t.sysext();
    assert_eq!(image(&d, "x").path, pb("/store/x.raw"));
    assert_eq!(image(&d, "x").path, pb("/store/x.raw"));
    assert_eq!(image(&d, "s").path, pb("/store"));
    for c in &d.images {
        assert!(c.path.is_absolute() && !c.path.starts_with(&t.root));
    }
}

#[test]
fn raw_symlink_target_must_end_in_raw() {
    let t = Tree::new();
    t.file("/store/foo-1.2.img")
        .file("/store/bar.raw")
        .link("/store/foo-1.2.img", "/etc/extensions/foo.raw")
        .link("/store/bar.raw", "/etc/extensions/bar");
    let d = t.sysext();
    assert!(d.images.is_empty(), "{d:#?}");
    assert!(reason(&d, "/etc/extensions/foo.raw").contains("does not end in .raw"));
    assert_eq!(reason(&d, "/etc/extensions/bar"), "not a .raw file");
}

#[test]
fn dangling_and_looping_symlinks_are_skipped_with_reasons() {
    let t = Tree::new();
    t.link("/opt/store/missing.raw", "/etc/extensions/gone.raw")
        .link("loop2", "/etc/extensions/loop1")
        .link("loop1", "/etc/extensions/loop2")
        .file("/etc/extensions/ok.raw")
        .file("/store/file")
        .link("/store/file/x", "/etc/extensions/notdir");
    let d = t.sysext();
    assert_eq!(names(&d), ["ok"]);
    assert!(reason(&d, "/etc/extensions/gone.raw")
        .starts_with("dangling symlink to /opt/store/missing.raw"));
    assert!(reason(&d, "/etc/extensions/loop1").contains("too many levels of symbolic links"));
    assert!(reason(&d, "/etc/extensions/loop2").contains("too many levels of symbolic links"));
    assert!(reason(&d, "/etc/extensions/notdir").contains("not a directory"));
}

#[test]
fn broken_search_directory_does_not_block_the_others() {
    let t = Tree::new();
    t.file("/etc/extensions") // a file where a directory is expected
        .link("/run/extensions", "/run/extensions") // a symlink loop
        .file("/var/lib/extensions/ok.raw");
    let d = t.sysext();
    assert_eq!(names(&d), ["ok"]);
    assert!(reason(&d, "/etc/extensions").starts_with("cannot read search directory"));
    assert!(reason(&d, "/run/extensions").starts_with("cannot open search directory"));
}

#[test]
fn search_directory_may_be_a_symlink() {
    let t = Tree::new();
    t.file("/data/ext/a.raw")
        .link("/data/ext", "/etc/extensions");
    let c = t.sysext().images.remove(0);
    assert_eq!(c.entry, pb("/etc/extensions/a.raw"));
    assert_eq!(c.search_dir, pb("/etc/extensions"));
    assert_eq!(c.path, pb("/data/ext/a.raw"));
}

#[test]
fn empty_directory_is_still_a_candidate() {
    let t = Tree::new();
    t.dir("/run/extensions/empty");
    let c = t.sysext().images.remove(0);
    assert_eq!((c.name.as_str(), c.kind), ("empty", ImageKind::Directory));
}

#[test]
fn layer_order_is_strverscmp_highest_last() {
    let t = Tree::new();
    t.file("/etc/extensions/a_10.raw")
        .file("/run/extensions/a_9.raw")
        .dir("/var/lib/extensions/a_9.1")
        .file("/var/lib/extensions/b.raw")
        .file("/etc/extensions/a_1.0~rc1.raw")
        .file("/etc/extensions/a_1.0.raw");
    let d = t.sysext();
    assert_eq!(
        names(&d),
        ["a_1.0~rc1", "a_1.0", "a_9", "a_9.1", "a_10", "b"]
    );
}

#[test]
fn sort_layers_breaks_strverscmp_ties_by_bytes() {
    let c = |n: &str| Candidate {
        name: n.into(),
        kind: ImageKind::Raw,
        entry: pb("/e"),
        path: pb("/e"),
        search_dir: pb("/"),
    };
    // "foo_1" and "foo1" compare equal under strverscmp_improved
    let mut v = vec![c("foo_1"), c("foo1"), c("a"), c("foo_01")];
    sort_layers(&mut v);
    let got: Vec<_> = v.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(got, ["a", "foo1", "foo_01", "foo_1"]);
}

#[test]
fn same_name_in_one_directory_first_by_file_name_wins() {
    let t = Tree::new();
    t.file("/etc/extensions/foo.raw")
        .file("/etc/extensions/foo.sysext.raw")
        .dir("/etc/extensions/foo")
        .file("/run/extensions/bar.sysext.raw")
        .file("/run/extensions/bar.raw");
    let d = t.sysext();
    assert_eq!(image(&d, "foo").entry, pb("/etc/extensions/foo"));
    assert_eq!(image(&d, "bar").entry, pb("/run/extensions/bar.raw"));
    for e in ["/etc/extensions/foo.raw", "/etc/extensions/foo.sysext.raw"] {
        let r = reason(&d, e);
        assert!(
            r.contains("/etc/extensions/foo,") && r.contains("sorts first"),
            "{r}"
        );
    }
    assert!(reason(&d, "/run/extensions/bar.sysext.raw").contains("/run/extensions/bar.raw"));
}

#[test]
fn image_names() {
    for ok in [
        "foo",
        ".foo",
        "foo_1.2",
        "a b",
        "ü",
        "x".repeat(255).as_str(),
        "\u{80}",
    ] {
        assert!(image_name_is_valid(ok), "{ok:?}");
    }
    for bad in [
        "",
        ".",
        "..",
        ".#foo",
        "a/b",
        "a\nb",
        "a\tb",
        "a\u{7f}",
        "\u{fdd0}",
        "\u{fffe}",
        "a\u{1ffff}",
        "x".repeat(256).as_str(),
    ] {
        assert!(!image_name_is_valid(bad), "{bad:?}");
    }
}

// T50:1391-1588, vpick: all are expected to merge as "test-extension".

fn vpick_one(t: &Tree) -> Candidate {
    let d = t.sysext();
    assert_eq!(names(&d), ["test-extension"], "{d:#?}");
    d.images.into_iter().next().unwrap()
}

#[test]
fn upstream_t50_44_vpick_dir() {
    let t = Tree::new();
    t.dir("/var/lib/extensions/test-extension.v/test-extension_1.0");
    let c = vpick_one(&t);
    assert_eq!(c.kind, ImageKind::Directory);
    assert_eq!(c.entry, pb("/var/lib/extensions/test-extension.v"));
    assert_eq!(
        c.path,
        pb("/var/lib/extensions/test-extension.v/test-extension_1.0")
    );
}

#[test]
fn upstream_t50_45_vpick_image() {
    let t = Tree::new();
    t.file("/var/lib/extensions/test-extension.raw.v/test-extension_1.0.raw");
    let c = vpick_one(&t);
    assert_eq!(c.kind, ImageKind::Raw);
    assert_eq!(c.entry, pb("/var/lib/extensions/test-extension.raw.v"));
    assert_eq!(
        c.path,
        pb("/var/lib/extensions/test-extension.raw.v/test-extension_1.0.raw")
    );
}

#[test]
fn upstream_t50_46_vpick_dir_v_relative_symlink() {
    let t = Tree::new();
    t.dir("/var/test-extension-vpick/test-extension_1.0").link(
        "../../test-extension-vpick",
        "/var/lib/extensions/test-extension.v",
    );
    let c = vpick_one(&t);
    assert_eq!(c.kind, ImageKind::Directory);
    assert_eq!(c.path, pb("/var/test-extension-vpick/test-extension_1.0"));
}

#[test]
fn upstream_t50_47_vpick_dir_v_absolute_symlink() {
    let t = Tree::new();
    t.dir("/var/test-extension-vpick/test-extension_1.0").link(
        "/var/test-extension-vpick",
        "/var/lib/extensions/test-extension.v",
    );
    let c = vpick_one(&t);
    assert_eq!(c.path, pb("/var/test-extension-vpick/test-extension_1.0"));
}

#[test]
fn upstream_t50_48_vpick_image_v_relative_symlink() {
    let t = Tree::new();
    t.file("/var/test-extension-vpick/test-extension_1.0.raw")
        .link(
            "../../test-extension-vpick",
            "/var/lib/extensions/test-extension.raw.v",
        );
    let c = vpick_one(&t);
    assert_eq!(c.kind, ImageKind::Raw);
    assert_eq!(
        c.path,
        pb("/var/test-extension-vpick/test-extension_1.0.raw")
    );
}

#[test]
fn upstream_t50_49_vpick_image_v_absolute_symlink() {
    let t = Tree::new();
    t.file("/var/test-extension-vpick/test-extension_1.0.raw")
        .link(
            "/var/test-extension-vpick",
            "/var/lib/extensions/test-extension.raw.v",
        );
    let c = vpick_one(&t);
    assert_eq!(c.kind, ImageKind::Raw);
    assert_eq!(
        c.path,
        pb("/var/test-extension-vpick/test-extension_1.0.raw")
    );
}

#[test]
fn upstream_t50_50_vpick_dir_relative_symlink_inside() {
    let t = Tree::new();
    t.dir("/var/othername-extension").link(
        "../../../othername-extension",
        "/var/lib/extensions/test-extension.v/test-extension_1.0",
    );
    let c = vpick_one(&t);
    assert_eq!(c.kind, ImageKind::Directory);
    assert_eq!(c.path, pb("/var/othername-extension"));
}

#[test]
fn upstream_t50_51_vpick_dir_absolute_symlink_inside() {
    let t = Tree::new();
    t.dir("/var/othername-extension").link(
        "/var/othername-extension",
        "/var/lib/extensions/test-extension.v/test-extension_1.0",
    );
    let c = vpick_one(&t);
    assert_eq!(c.path, pb("/var/othername-extension"));
    assert_eq!(c.path, pb("/var/othername-extension"));
}

#[test]
fn upstream_t50_52_vpick_image_relative_symlink_inside() {
    let t = Tree::new();
    t.file("/var/othername-extension.raw").link(
        "../../../othername-extension.raw",
        "/var/lib/extensions/test-extension.raw.v/test-extension_1.0.raw",
    );
    let c = vpick_one(&t);
    assert_eq!(c.kind, ImageKind::Raw);
    assert_eq!(c.path, pb("/var/othername-extension.raw"));
}

#[test]
fn upstream_t50_53_vpick_image_absolute_symlink_inside() {
    let t = Tree::new();
    t.file("/var/othername-extension.raw").link(
        "/var/othername-extension.raw",
        "/var/lib/extensions/test-extension.raw.v/test-extension_1.0.raw",
    );
    let c = vpick_one(&t);
    assert_eq!(c.kind, ImageKind::Raw);
    assert_eq!(c.path, pb("/var/othername-extension.raw"));
    assert_eq!(c.path, pb("/var/othername-extension.raw"));
}

#[test]
fn vpick_highest_version_wins_and_name_has_no_version() {
    let t = Tree::new();
    for v in ["1.9", "1.10", "1.2", "2.0~rc1"] {
        t.dir(&format!("/etc/extensions/foo.v/foo_{v}"));
    }
    t.file("/etc/extensions/foo.v/foo_3.0"); // wrong type: passed over
    t.file("/etc/extensions/img.sysext.raw.v/img_1.sysext.raw")
        .file("/etc/extensions/img.sysext.raw.v/img_2.sysext.raw")
        .file("/etc/extensions/img.sysext.raw.v/img_3.raw"); // lacks the class suffix
    let d = t.sysext();
    assert_eq!(names(&d), ["foo", "img"]);
    // '~' is not a valid vpick version character, so 2.0~rc1 is ignored
    assert_eq!(image(&d, "foo").path, pb("/etc/extensions/foo.v/foo_1.10"));
    assert_eq!(
        image(&d, "img").path,
        pb("/etc/extensions/img.sysext.raw.v/img_2.sysext.raw")
    );
}

#[test]
fn vpick_shadows_and_is_shadowed_by_name() {
    let t = Tree::new();
    t.dir("/etc/extensions/foo.v/foo_1")
        .file("/run/extensions/foo.raw")
        .file("/etc/extensions/bar.raw")
        .file("/run/extensions/bar.raw.v/bar_5.raw");
    let d = t.sysext();
    assert_eq!(image(&d, "foo").entry, pb("/etc/extensions/foo.v"));
    assert_eq!(
        reason(&d, "/run/extensions/foo.raw"),
        "shadowed by /etc/extensions/foo.v"
    );
    assert_eq!(
        reason(&d, "/run/extensions/bar.raw.v"),
        "shadowed by /etc/extensions/bar.raw"
    );
}

#[test]
fn vpick_without_usable_entry_is_skipped_and_does_not_claim_the_name() {
    let t = Tree::new();
    t.dir("/etc/extensions/foo.v")
        .file("/etc/extensions/foo.v/foo_1.raw") // a file, but a directory is wanted
        .dir("/etc/extensions/bar.raw.v/bar_1.raw") // a directory, but a file is wanted
        .dir("/etc/extensions/.sysext.v/_1")
        .link("/nowhere", "/etc/extensions/baz.v/baz_2")
        .dir("/etc/extensions/baz.v/baz_1")
        .file("/run/extensions/foo.raw");
    let d = t.sysext();
    assert_eq!(names(&d), ["foo"]);
    assert_eq!(image(&d, "foo").entry, pb("/run/extensions/foo.raw"));
    assert!(reason(&d, "/etc/extensions/foo.v").contains("no directory named foo_<version>"));
    assert!(reason(&d, "/etc/extensions/bar.raw.v")
        .contains("no regular file or block device named bar_<version>.raw"));
    assert!(reason(&d, "/etc/extensions/.sysext.v").starts_with("invalid versioned image name"));
    // like systemd, a dangling entry matching the pattern fails the whole .v
    let r = reason(&d, "/etc/extensions/baz.v");
    assert!(
        r.starts_with("cannot pick a version") && r.contains("baz_2"),
        "{r}"
    );
}

#[test]
fn vpick_foreign_architecture_is_ignored() {
    let t = Tree::new();
    let foreign = if vpick::native_architecture() == "sparc" {
        "ia64"
    } else {
        "sparc"
    };
    let native = vpick::native_architecture();
    t.dir(&format!("/etc/extensions/foo.v/foo_9_{foreign}"))
        .dir(&format!("/etc/extensions/foo.v/foo_2_{native}"))
        .dir("/etc/extensions/foo.v/foo_2");
    let c = t.sysext().images.remove(0);
    assert_eq!(
        c.path,
        PathBuf::from(format!("/etc/extensions/foo.v/foo_2_{native}"))
    );
}

#[test]
fn serializes_for_json_output() {
    let t = Tree::new();
    t.file("/etc/extensions/a.raw")
        .file("/etc/extensions/b.txt");
    let json = serde_json::to_value(t.sysext()).unwrap();
    assert_eq!(json["images"][0]["kind"], "raw");
    assert_eq!(json["images"][0]["name"], "a");
    assert_eq!(json["skipped"][0]["entry"], "/etc/extensions/b.txt");
}
