//! Integration tests of `check` (conflict detection) on temporary roots with directory and
//! squashfs extensions (root, host kernel). Each test runs in its own private mount namespace
//! and ends with a leak check.

mod common;

use common::*;
use extmerge::class::ImageClass;
use extmerge::decide::conflicts::{ConflictKind, ConflictPolicy};
use extmerge::merge::check::{check_class, ClassReport};
use extmerge::settings::{resolve, ClassSettings, CliOptions};
use extmerge::verbs::check;
use extmerge::verbs::JsonMode;
use serde_json::Value;
use std::os::unix::fs::symlink;
use std::path::Path;

type Root = TestRoot;

/// A private mount namespace and a root whose base OS has a `usr/sbin -> bin` link.
fn new_root() -> Root {
    let r = TestRoot::new(&[
        ("usr/lib/os-release", DEBIAN),
        ("usr/bin/host-tool", "host\n"),
        ("usr/lib/old-lib", "old\n"),
        ("usr/share/data/base.txt", "base\n"),
        ("etc/hostname", "box\n"),
        ("etc/site.conf", "host\n"),
    ]);
    symlink("bin", r.p("usr/sbin")).unwrap();
    r
}

fn settings(r: &Root, class: ImageClass) -> ClassSettings {
    let cli = CliOptions {
        root: Some(r.path.clone()),
        ..Default::default()
    };
    resolve(&cli, class, &|_| None).unwrap()
}

fn report(r: &Root, class: ImageClass, policy: ConflictPolicy) -> ClassReport {
    check_class(&settings(r, class), policy, None).unwrap()
}

fn mknod_whiteout(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(0, 0),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

/// a-dir (directory), b-sq (squashfs image), c-dir (directory with a whiteout),
/// d-fedora (directory, incompatible) and a confext that shadows a base file.
fn populate(r: &Root) {
    sysext_dir(
        &r.p("var/lib/extensions/a-dir"),
        "a-dir",
        "ID=_any\n",
        &[("usr/bin/tool", "a\n"), ("usr/bin/dup", "same\n")],
    );
    let src = r.p("../src/b-sq");
    sysext_dir(
        &src,
        "b-sq",
        DEBIAN,
        &[
            ("usr/bin/tool", "b\n"),
            ("usr/bin/dup", "same\n"),
            ("usr/bin/host-tool", "b\n"),
            ("usr/sbin/b-tool", "b\n"),
            ("usr/share/data/b.txt", "b\n"),
        ],
    );
    rustix::fs::lsetxattr(
        src.join("usr/share/data"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    mkfs_squashfs(&src, &r.p("var/lib/extensions/b-sq.raw"));
    sysext_dir(
        &r.p("var/lib/extensions/c-dir"),
        "c-dir",
        "ID=_any\n",
        &[("usr/bin/c-only", "c\n")],
    );
    mknod_whiteout(&r.p("var/lib/extensions/c-dir/usr/lib/old-lib"));
    sysext_dir(
        &r.p("var/lib/extensions/d-fedora"),
        "d-fedora",
        "ID=fedora\n",
        &[("usr/bin/tool", "d\n")],
    );
    write_files(
        &r.p("run/confexts/site"),
        &[
            (
                "etc/extension-release.d/extension-release.site",
                "ID=_any\n",
            ),
            ("etc/site.conf", "ext\n"),
        ],
    );
}

fn summary(r: &ClassReport) -> Vec<(ConflictKind, String, Vec<String>, String)> {
    r.conflicts
        .iter()
        .map(|c| {
            (
                c.kind,
                c.path.clone(),
                c.providers.clone(),
                c.winner.clone(),
            )
        })
        .collect()
}

fn v(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn check_reports_every_kind_across_directories_and_a_squashfs_image() {
    let r = new_root();
    populate(&r);

    let rep = report(&r, ImageClass::Sysext, ConflictPolicy::Warn);
    use ConflictKind::*;
    assert_eq!(
        summary(&rep),
        [
            (
                SameFile,
                "/usr/bin/dup".into(),
                v(&["a-dir", "b-sq"]),
                "b-sq".into()
            ),
            (
                ShadowsBase,
                "/usr/bin/host-tool".into(),
                v(&["base", "b-sq"]),
                "b-sq".into()
            ),
            (
                SameFile,
                "/usr/bin/tool".into(),
                v(&["a-dir", "b-sq"]),
                "b-sq".into()
            ),
            (
                Whiteout,
                "/usr/lib/old-lib".into(),
                v(&["base", "c-dir"]),
                "c-dir".into()
            ),
            (
                TypeChange,
                "/usr/sbin".into(),
                v(&["base", "b-sq"]),
                "b-sq".into()
            ),
            (
                OpaqueDir,
                "/usr/share/data".into(),
                v(&["base", "b-sq"]),
                "b-sq".into()
            ),
        ],
        "{:#?}",
        rep.conflicts
    );
    assert!(rep.conflicts[0].detail.contains("identical content"));
    assert!(rep.conflicts[2].detail.contains("different content"));
    assert_eq!(rep.ignored.len(), 1, "{:?}", rep.ignored);
    assert_eq!(rep.ignored[0].name, "d-fedora");
    assert!(
        rep.ignored[0].reason.contains("fedora"),
        "{:?}",
        rep.ignored
    );

    let conf = report(&r, ImageClass::Confext, ConflictPolicy::Warn);
    assert_eq!(
        summary(&conf),
        [(
            ShadowsBase,
            "/etc/site.conf".into(),
            v(&["base", "site"]),
            "site".into()
        )]
    );

    // warn reports but succeeds; refuse fails. Each class is checked under its own policy.
    let both = |confext: ConflictPolicy, sysext: ConflictPolicy| {
        [
            with_policy(settings(&r, ImageClass::Confext), confext),
            with_policy(settings(&r, ImageClass::Sysext), sysext),
        ]
    };
    use ConflictPolicy::{Off, Refuse, Warn};
    assert_eq!(check::run(&both(Warn, Warn), JsonMode::Short).unwrap(), 0);
    assert_eq!(check::run(&both(Off, Off), JsonMode::Off).unwrap(), 0);
    assert_eq!(
        check::run(&both(Refuse, Refuse), JsonMode::Short).unwrap(),
        1
    );
    assert_eq!(check::run(&both(Warn, Refuse), JsonMode::Off).unwrap(), 1);
    assert_eq!(check::run(&both(Refuse, Off), JsonMode::Off).unwrap(), 1);
    assert_eq!(check::run(&both(Off, Warn), JsonMode::Off).unwrap(), 0);
    r.leak.assert_clean();
}

/// `s` with the conflict policy `policy`, as the command line or configuration would set it.
fn with_policy(s: ClassSettings, policy: ConflictPolicy) -> ClassSettings {
    ClassSettings {
        check_conflicts: policy,
        ..s
    }
}

#[test]
fn refuse_drops_the_later_extension_and_says_so() {
    let r = new_root();
    populate(&r);
    let rep = report(&r, ImageClass::Sysext, ConflictPolicy::Refuse);
    // All conflicts of the full set are still listed.
    assert_eq!(rep.conflicts.len(), 6, "{:#?}", rep.conflicts);
    let names: Vec<&str> = rep.ignored.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["d-fedora", "b-sq", "c-dir"], "{:#?}", rep.ignored);
    let b = &rep.ignored[1].reason;
    assert!(b.contains("refuse") && b.contains("with 'a-dir'"), "{b}");
    let c = &rep.ignored[2].reason;
    assert!(
        c.contains("whiteout") && c.contains("/usr/lib/old-lib"),
        "{c}"
    );

    // The base shadowing of a confext alone never drops it.
    assert!(report(&r, ImageClass::Confext, ConflictPolicy::Refuse)
        .ignored
        .is_empty());
    r.leak.assert_clean();
}

#[test]
fn no_conflicts_succeeds_even_under_refuse() {
    let r = new_root();
    sysext_dir(
        &r.p("var/lib/extensions/a"),
        "a",
        "ID=_any\n",
        &[("usr/bin/a", "a\n"), ("usr/share/common/a", "a\n")],
    );
    let src = r.p("../src/b");
    sysext_dir(
        &src,
        "b",
        DEBIAN,
        &[("usr/bin/b", "b\n"), ("usr/share/common/b", "b\n")],
    );
    mkfs_squashfs(&src, &r.p("var/lib/extensions/b.raw"));
    let rep = report(&r, ImageClass::Sysext, ConflictPolicy::Refuse);
    assert!(
        rep.conflicts.is_empty() && rep.ignored.is_empty(),
        "{rep:#?}"
    );
    let s = [with_policy(
        settings(&r, ImageClass::Sysext),
        ConflictPolicy::Refuse,
    )];
    assert_eq!(check::run(&s, JsonMode::Off).unwrap(), 0);
    assert_eq!(check::render(&[rep]), "No conflicts found.\n");
    r.leak.assert_clean();
}

#[test]
fn merged_hierarchy_is_compared_with_the_base_below_it() {
    let r = new_root();
    sysext_dir(
        &r.p("var/lib/extensions/a"),
        "a",
        "ID=_any\n",
        &[("usr/bin/a", "a\n"), ("usr/bin/host-tool", "a\n")],
    );
    let out = r.run(&["merge", "--class=sysext"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(r.p("usr/bin/a")).unwrap(), "a\n");
    // Without looking below the merge, every file of 'a' would shadow itself.
    let rep = report(&r, ImageClass::Sysext, ConflictPolicy::Warn);
    assert_eq!(
        summary(&rep),
        [(
            ConflictKind::ShadowsBase,
            "/usr/bin/host-tool".into(),
            v(&["base", "a"]),
            "a".into()
        )]
    );
    // Checking changed nothing in our namespace: still merged.
    assert_eq!(std::fs::read_to_string(r.p("usr/bin/a")).unwrap(), "a\n");
    let out = r.run(&["unmerge"]);
    assert!(out.status.success());
    r.leak.assert_clean();
}

#[test]
fn table_lists_kind_path_winner_providers() {
    let r = new_root();
    populate(&r);
    let rep = report(&r, ImageClass::Sysext, ConflictPolicy::Warn);
    let table = check::render(&[rep]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["KIND", "PATH", "WINNER", "PROVIDERS", "DETAIL"]);
    let sbin = table.lines().find(|l| l.contains("/usr/sbin")).unwrap();
    let cols: Vec<&str> = sbin.split_whitespace().take(4).collect();
    assert_eq!(cols, ["type-change", "/usr/sbin", "b-sq", "base,b-sq"]);
    assert!(table.contains("Ignored sysext 'd-fedora': "), "{table}");
    r.leak.assert_clean();
}

/// Through the binary, once `main.rs` routes `check` (and `--check-conflicts=`) here.
#[test]
fn binary_check_json() {
    let r = new_root();
    populate(&r);
    let out = r.run(&["check", "--class=sysext", "--json=short"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rep = &v.as_array().unwrap()[0];
    assert_eq!(rep["class"], "sysext");
    let kinds: Vec<&str> = rep["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "same-file",
            "shadows-base",
            "same-file",
            "whiteout",
            "type-change",
            "opaque-dir"
        ]
    );
    assert_eq!(rep["ignored"][0]["name"], "d-fedora");
    let out = r.run(&["check", "--class=sysext", "--check-conflicts=refuse"]);
    assert_eq!(out.status.code(), Some(1));
    r.leak.assert_clean();
}

/// `levels` nested directories `d` below `dir`, created fd-relative, with a file at the bottom.
fn deep_dirs(dir: &Path, levels: usize) {
    use rustix::fs::{mkdirat, openat, Mode, OFlags, CWD};
    std::fs::create_dir_all(dir).unwrap();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut fd = openat(CWD, dir, flags, Mode::empty()).unwrap();
    for _ in 0..levels {
        mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
        fd = openat(&fd, "d", flags, Mode::empty()).unwrap();
    }
    let f = openat(
        &fd,
        "leaf",
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&f, b"leaf\n").unwrap();
}

/// a and b ship the same file; `deep` ships a tree 300 directories deep (the walk stops at
/// 256 levels) next to a file of its own.
fn populate_deep(r: &Root) {
    sysext_dir(
        &r.p("var/lib/extensions/a"),
        "a",
        "ID=_any\n",
        &[("usr/bin/tool", "a\n")],
    );
    sysext_dir(
        &r.p("var/lib/extensions/b"),
        "b",
        "ID=_any\n",
        &[("usr/bin/tool", "b\n")],
    );
    sysext_dir(
        &r.p("var/lib/extensions/deep"),
        "deep",
        "ID=_any\n",
        &[("usr/bin/deep-tool", "deep\n")],
    );
    deep_dirs(&r.p("var/lib/extensions/deep/usr/share/deep"), 300);
}

#[test]
fn check_warn_judges_the_others_when_one_extension_is_too_deep() {
    let r = new_root();
    populate_deep(&r);
    let rep = report(&r, ImageClass::Sysext, ConflictPolicy::Warn);
    assert_eq!(
        summary(&rep),
        [(
            ConflictKind::SameFile,
            "/usr/bin/tool".into(),
            v(&["a", "b"]),
            "b".into()
        )]
    );
    assert!(rep.ignored.is_empty(), "{:?}", rep.ignored);
    r.leak.assert_clean();
}

/// The tree digest stops at the same depth as the conflict walk (one level earlier, as it
/// starts above `/usr`): the snapshot refuses the extension before conflicts are looked at,
/// whatever the policy, and the others are still merged and judged.
#[test]
fn merge_skips_an_extension_too_deep_to_identify_under_any_policy() {
    let r = new_root();
    populate_deep(&r);
    let stop = format!(
        "/usr/share/deep{}: more than 256 directory levels deep",
        "/d".repeat(253)
    );
    for (policy, winner) in [("refuse", "a\n"), ("warn", "b\n")] {
        let out = r.run(&[
            "merge",
            "--class=sysext",
            &format!("--check-conflicts={policy}"),
        ]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        let skipped = log
            .lines()
            .find(|l| l.contains("Skipping sysext 'deep'"))
            .unwrap_or_else(|| panic!("deep not skipped: {log}"));
        assert!(
            skipped.contains("cannot inspect it to identify it: "),
            "{skipped}"
        );
        assert!(skipped.ends_with(&stop), "{skipped}");
        assert!(log.contains("same-file /usr/bin/tool"), "{log}");
        assert_eq!(
            log.contains("Refusing sysext 'b': same-file conflict with 'a' on /usr/bin/tool"),
            policy == "refuse",
            "{log}"
        );
        assert_eq!(
            std::fs::read_to_string(r.p("usr/bin/tool")).unwrap(),
            winner
        );
        assert!(!r.p("usr/bin/deep-tool").exists());
        assert!(r.p("usr/bin/host-tool").exists());
        let out = r.run(&["unmerge"]);
        assert!(out.status.success());
        assert!(!r.p("usr/bin/tool").exists());
    }
    r.leak.assert_clean();
}

/// Conflicts deeper than PATH_MAX (100 levels of 50-byte names) are found like any other.
#[test]
fn check_finds_conflicts_deeper_than_path_max() {
    use rustix::fs::{mkdirat, openat, Mode, OFlags, CWD};
    let r = new_root();
    let name = "n".repeat(50);
    for e in ["a", "b"] {
        sysext_dir(
            &r.p(&format!("var/lib/extensions/{e}")),
            e,
            "ID=_any\n",
            &[(&format!("usr/share/{e}-only"), e)],
        );
        std::fs::create_dir_all(r.p(&format!("var/lib/extensions/{e}/usr/share/long"))).unwrap();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = r.p(&format!("var/lib/extensions/{e}/usr/share/long"));
        let mut fd = openat(CWD, &dir, flags, Mode::empty()).unwrap();
        for _ in 0..100 {
            mkdirat(&fd, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            fd = openat(&fd, name.as_str(), flags, Mode::empty()).unwrap();
        }
        let f = openat(
            &fd,
            "file",
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&f, e.as_bytes()).unwrap();
    }
    let rep = report(&r, ImageClass::Sysext, ConflictPolicy::Warn);
    let path = format!(
        "/usr/share/long/{}/file",
        vec![name.as_str(); 100].join("/")
    );
    assert!(path.len() > 4096);
    assert_eq!(
        summary(&rep),
        [(ConflictKind::SameFile, path, v(&["a", "b"]), "b".into())]
    );
    assert!(rep.conflicts[0].detail.contains("different content"));
    r.leak.assert_clean();
}

/// Flatcar's `/etc` is its own upper directory (`extensions.mutable/etc -> /etc`, `Mutable=auto`):
/// the user's files there win over every confext, so neither `check` nor a refusing `merge`
/// counts them as base files a confext shadows; both judge the same way.
#[test]
fn a_self_upper_etc_is_judged_alike_by_check_and_merge() {
    let r = new_root();
    write_files(
        &r.path,
        &[("usr/lib/systemd/confext.conf", "[ConfExt]\nMutable=auto\n")],
    );
    std::fs::create_dir_all(r.p("var/lib/extensions.mutable")).unwrap();
    symlink("/etc", r.p("var/lib/extensions.mutable/etc")).unwrap();
    let rel = "etc/extension-release.d/extension-release.site";
    write_files(
        &r.p("var/lib/confexts/site"),
        &[
            (rel, "ID=_any\n"),
            ("etc/site.conf", "from the confext\n"),
            ("etc/new.conf", "new\n"),
        ],
    );
    let out = r.run(&["check", "--class=confext", "--json=short"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["conflicts"], serde_json::json!([]), "{v}");
    let out = r.run(&["check", "--class=confext", "--check-conflicts=refuse"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = r.run(&["merge", "--class=confext", "--check-conflicts=refuse"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("Refusing"), "{log}");
    assert_eq!(
        std::fs::read_to_string(r.p("etc/site.conf")).unwrap(),
        "host\n",
        "the user's file wins"
    );
    assert_eq!(
        std::fs::read_to_string(r.p("etc/new.conf")).unwrap(),
        "new\n"
    );
    // A base the merge does not write to is judged as usual: the same confext with /etc only a
    // lower layer shadows site.conf.
    let out = r.run(&["unmerge"]);
    assert!(out.status.success());
    let out = r.run(&["check", "--class=confext", "--json=short", "--mutable=no"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["conflicts"][0]["kind"], "shadows-base", "{v}");
    assert_eq!(v[0]["conflicts"][0]["path"], "/etc/site.conf", "{v}");
    r.leak.assert_clean();
}

/// Set the xattr `name` on `p` (no link followed); `trusted.*` needs root.
fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
}

/// Merge the sysexts of `r` with the binary, so the kernel shows what it makes of them.
fn merge_sysexts(r: &Root) {
    let out = r.run(&["merge", "--class=sysext"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An empty file with an overlay whiteout xattr deletes the path below it (kernel 6.7+): a
/// lookup finds nothing there whether or not its directory is marked `overlay.opaque=x` (the
/// mark only makes readdir leave the name out). `check` reports both as whiteouts; the merge
/// the kernel makes of them agrees.
#[test]
fn xattr_whiteouts_are_judged_as_the_kernel_merges_them() {
    let r = new_root();
    write_files(
        &r.path,
        &[
            ("usr/lib/plain/old", "host\n"),
            ("usr/lib/marked/old", "host\n"),
        ],
    );
    let ext = r.p("var/lib/extensions/a");
    sysext_dir(
        &ext,
        "a",
        "ID=_any\n",
        &[("usr/lib/plain/old", ""), ("usr/lib/marked/old", "")],
    );
    set_xattr(
        &ext.join("usr/lib/plain/old"),
        "trusted.overlay.whiteout",
        b"",
    );
    set_xattr(
        &ext.join("usr/lib/marked/old"),
        "trusted.overlay.whiteout",
        b"",
    );
    set_xattr(&ext.join("usr/lib/marked"), "trusted.overlay.opaque", b"x");

    let rep = report(&r, ImageClass::Sysext, ConflictPolicy::Warn);
    let whiteout = |p: &str| {
        (
            ConflictKind::Whiteout,
            p.into(),
            v(&["base", "a"]),
            "a".into(),
        )
    };
    assert_eq!(
        summary(&rep),
        [
            whiteout("/usr/lib/marked/old"),
            whiteout("/usr/lib/plain/old")
        ]
    );

    merge_sysexts(&r);
    for p in ["usr/lib/marked/old", "usr/lib/plain/old"] {
        let err = std::fs::symlink_metadata(r.p(p)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{p}");
    }
    assert!(r.run(&["unmerge"]).status.success());
    r.leak.assert_clean();
}

/// The merges extmerge (and systemd) make are privileged overlays without `userxattr`: the
/// kernel honours only the `trusted.overlay.*` markers there. A directory marked
/// `user.overlay.opaque=y` merges with the one below, and an empty file marked
/// `user.overlay.whiteout` is an empty file: `check` must report what the merge shows.
#[test]
fn user_overlay_markers_are_plain_files_and_directories_as_the_kernel_merges_them() {
    let r = new_root();
    write_files(
        &r.path,
        &[
            ("usr/lib/kept/base.txt", "host\n"),
            ("usr/lib/gone", "host\n"),
        ],
    );
    let a = r.p("var/lib/extensions/a");
    sysext_dir(&a, "a", "ID=_any\n", &[("usr/lib/kept/shared", "a\n")]);
    let b = r.p("var/lib/extensions/b");
    sysext_dir(
        &b,
        "b",
        "ID=_any\n",
        &[("usr/lib/kept/shared", "b\n"), ("usr/lib/gone", "")],
    );
    set_xattr(&b.join("usr/lib/kept"), "user.overlay.opaque", b"y");
    set_xattr(&b.join("usr/lib/gone"), "user.overlay.whiteout", b"");

    let rep = report(&r, ImageClass::Sysext, ConflictPolicy::Warn);
    assert_eq!(
        summary(&rep),
        [
            (
                ConflictKind::ShadowsBase,
                "/usr/lib/gone".into(),
                v(&["base", "b"]),
                "b".into()
            ),
            (
                ConflictKind::SameFile,
                "/usr/lib/kept/shared".into(),
                v(&["a", "b"]),
                "b".into()
            ),
        ]
    );

    merge_sysexts(&r);
    // Not opaque: the base's file below b's directory is still there; not a whiteout: b's
    // empty file is.
    assert_eq!(
        std::fs::read_to_string(r.p("usr/lib/kept/base.txt")).unwrap(),
        "host\n"
    );
    assert_eq!(std::fs::read_to_string(r.p("usr/lib/gone")).unwrap(), "");
    assert!(r.run(&["unmerge"]).status.success());
    r.leak.assert_clean();
}

/// The number of entries the last debug line "Conflict check of sysext: N entries looked up."
/// of `stderr` gives.
fn looked_up(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .rfind(|l| l.contains("Conflict check of sysext: "))
        .unwrap_or_else(|| panic!("no conflict-check line in: {stderr}"));
    let n = line
        .split("Conflict check of sysext: ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(" entries looked up."))
        .unwrap_or_else(|| panic!("unexpected line: {line}"));
    n.parse().unwrap()
}

/// A merge of squashfs images without xattrs looks up none of the files only one extension
/// has; the same trees as directories (which may hold xattrs) have each looked up. The debug
/// line README "Conflicts" documents says how many.
#[test]
fn a_merge_of_squashfs_images_without_xattrs_looks_up_fewer_entries() {
    let count = |as_images: bool| {
        let r = new_root();
        for n in ["a", "b"] {
            let mut files: Vec<(String, String)> = (0..5)
                .map(|i| (format!("usr/share/{n}/f{i}"), format!("{n}\n")))
                .collect();
            files.push(("usr/bin/same".into(), format!("{n}\n")));
            let files: Vec<(&str, &str)> = files
                .iter()
                .map(|(p, c)| (p.as_str(), c.as_str()))
                .collect();
            if as_images {
                let src = r.p(&format!("../src/{n}"));
                sysext_dir(&src, n, "ID=_any\n", &files);
                std::fs::create_dir_all(r.p("var/lib/extensions")).unwrap();
                mkfs_squashfs(&src, &r.p(&format!("var/lib/extensions/{n}.raw")));
            } else {
                sysext_dir(
                    &r.p(&format!("var/lib/extensions/{n}")),
                    n,
                    "ID=_any\n",
                    &files,
                );
            }
        }
        // extmerge_command logs at debug.
        let out = extmerge_command()
            .args(["--class=sysext", "merge"])
            .arg(format!("--root={}", r.path.display()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("same-file /usr/bin/same"), "{stderr}");
        assert!(r.run(&["unmerge"]).status.success());
        r.leak.assert_clean();
        looked_up(&stderr)
    };
    let (images, dirs) = (count(true), count(false));
    // f0-f4 of each extension: looked up in the directories only.
    assert_eq!(dirs - images, 10, "directories {dirs}, images {images}");
}
