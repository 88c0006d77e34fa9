//! Conflict walks over real trees: every kind of conflict, links never followed, extensions
//! the walk cannot judge left out, trees deeper than PATH_MAX.

use super::*;
use crate::decide::conflicts::{Conflict, ConflictKind, Refusal, BASE};
use rustix::fs::{makedev, mknodat, FileType, Mode, XattrFlags, CWD};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// Trees opened from host paths.
struct Opened {
    layers: Vec<(String, Root)>,
    /// Per layer: no entry of its host tree has an extended attribute.
    xattr_free: Vec<bool>,
    base: Option<Root>,
    /// The layers that could not be opened, and why.
    unopened: Vec<(String, String)>,
}

impl Opened {
    /// The layers as the walk takes them; `trust` marks those whose tree holds no xattrs as
    /// such (as the opening of a squashfs without an xattr table does).
    fn trees(&self, trust: bool) -> Vec<(String, LayerTree<'_>)> {
        self.layers
            .iter()
            .zip(&self.xattr_free)
            .map(|((n, r), free)| {
                let tree = LayerTree {
                    root: r,
                    no_xattrs: trust && *free,
                };
                (n.clone(), tree)
            })
            .collect()
    }
}

/// Whether no entry below the host path `p` (itself included, links not followed) has an
/// extended attribute; `false` when that cannot be told.
fn holds_no_xattrs(p: &Path) -> bool {
    let mut buf = [0u8; 1024];
    if !matches!(rustix::fs::llistxattr(p, &mut buf), Ok(0)) {
        return false;
    }
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
            Ok(entries) => entries
                .into_iter()
                .all(|e| e.is_ok_and(|e| holds_no_xattrs(&e.path()))),
            Err(_) => false,
        },
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Open the trees at host paths: the layers that cannot be opened are unjudged.
fn open_paths(layers: &[(String, PathBuf)], base: Option<&Path>) -> Opened {
    let mut roots = Vec::new();
    let mut xattr_free = Vec::new();
    let mut unjudged = Vec::new();
    for (name, path) in layers {
        match Root::open(path) {
            Ok(r) => {
                roots.push((name.clone(), r));
                xattr_free.push(holds_no_xattrs(path));
            }
            Err(e) => unjudged.push((name.clone(), format!("{e:#}"))),
        }
    }
    let base = base.and_then(|b| match Root::open(b) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("Not comparing with the base OS: {e:#}");
            None
        }
    });
    Opened {
        layers: roots,
        xattr_free,
        base,
        unopened: unjudged,
    }
}

/// [`scan`] of trees given as host paths, within the default limits. Every scan runs twice:
/// with each layer whose tree holds no xattrs marked so, and with none marked; both must find
/// the same, the first with no more lookups. The first is returned.
fn scan_paths(
    layers: &[(String, PathBuf)],
    base: Option<&Path>,
    hierarchies: &[PathBuf],
) -> Scanned {
    let o = open_paths(layers, base);
    let limits = Limits::default();
    let mut found = scan(&o.trees(true), o.base.as_ref(), hierarchies, &limits);
    let full = scan(&o.trees(false), o.base.as_ref(), hierarchies, &limits);
    assert_eq!(found.conflicts, full.conflicts);
    assert_eq!(found.unjudged, full.unjudged);
    assert!(found.looked_up <= full.looked_up);
    found.unjudged.splice(0..0, o.unopened);
    found
}

/// [`refuse`] of trees given as host paths, within the default limits; run twice as
/// [`scan_paths`] does, with the same outcome.
fn refuse_paths(
    layers: &[(String, PathBuf)],
    base: Option<&Path>,
    hierarchies: &[PathBuf],
) -> Refusal {
    let o = open_paths(layers, base);
    let limits = Limits::default();
    let mut r = refuse(&o.trees(true), o.base.as_ref(), hierarchies, &limits);
    let full = refuse(&o.trees(false), o.base.as_ref(), hierarchies, &limits);
    assert_eq!(r, full);
    let unopened = o
        .unopened
        .into_iter()
        .map(|(n, e)| (n, format!("cannot be checked for conflicts: {e}")));
    r.dropped.splice(0..0, unopened);
    r
}

/// A temp dir with one subtree per layer (`base`, `a`, `b`, …).
struct Trees {
    t: tempfile::TempDir,
}

impl Trees {
    fn new() -> Trees {
        Trees {
            t: tempfile::tempdir().unwrap(),
        }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.t.path().join(rel)
    }
    fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        self
    }
    fn dir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.p(rel)).unwrap();
        self
    }
    fn link(&self, rel: &str, target: &str) -> &Self {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, &p).unwrap();
        self
    }
    /// Needs root (CI is root): character devices, also the 0:0 whiteout.
    fn chardev(&self, rel: &str, major: u32, minor: u32) -> &Self {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        mknodat(
            CWD,
            &p,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            makedev(major, minor),
        )
        .unwrap_or_else(|e| panic!("mknod {} (needs root): {e}", p.display()));
        self
    }
    /// `trusted.*` needs root.
    fn xattr(&self, rel: &str, name: &str, value: &[u8]) -> &Self {
        rustix::fs::lsetxattr(self.p(rel), name, value, XattrFlags::empty())
            .unwrap_or_else(|e| panic!("setxattr {name} on {rel}: {e}"));
        self
    }
    fn layers(&self, names: &[&str]) -> Vec<(String, PathBuf)> {
        names.iter().map(|n| (n.to_string(), self.p(n))).collect()
    }
    fn scan(&self, names: &[&str], hierarchies: &[&str]) -> Vec<Conflict> {
        let base = self.p("base");
        let base = base.exists().then_some(base);
        let hs: Vec<PathBuf> = hierarchies.iter().map(PathBuf::from).collect();
        scan_paths(&self.layers(names), base.as_deref(), &hs).conflicts
    }
    fn usr(&self, names: &[&str]) -> Vec<Conflict> {
        self.scan(names, &["/usr"])
    }
}

fn kinds(cs: &[Conflict]) -> Vec<(ConflictKind, &str)> {
    cs.iter().map(|c| (c.kind, c.path.as_str())).collect()
}

fn one(cs: &[Conflict]) -> &Conflict {
    assert_eq!(cs.len(), 1, "{cs:#?}");
    &cs[0]
}

#[test]
fn same_regular_file_in_three_extensions_top_wins() {
    let t = Trees::new();
    t.file("a/usr/bin/foo", "a").file("b/usr/bin/foo", "b");
    t.file("c/usr/bin/foo", "c").file("c/usr/bin/only-c", "c");
    let cs = t.usr(&["a", "b", "c"]);
    let c = one(&cs);
    assert_eq!(c.kind, ConflictKind::SameFile);
    assert_eq!(c.path, "/usr/bin/foo");
    assert_eq!(c.providers, ["a", "b", "c"]);
    assert_eq!(c.winner, "c");
    assert!(c.detail.contains("different content"), "{}", c.detail);
}

#[test]
fn identical_duplicates_are_reported_as_identical() {
    let t = Trees::new();
    t.file("a/usr/bin/foo", "same")
        .file("b/usr/bin/foo", "same");
    let c = one(&t.usr(&["a", "b"])).clone();
    assert_eq!(c.kind, ConflictKind::SameFile);
    assert!(c.detail.contains("identical content"), "{}", c.detail);

    // Same bytes, different mode: not identical.
    std::fs::set_permissions(t.p("b/usr/bin/foo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = one(&t.usr(&["a", "b"])).clone();
    assert!(c.detail.contains("different content"), "{}", c.detail);
}

#[test]
fn large_files_differing_after_the_first_chunk_are_different() {
    let t = Trees::new();
    let mut big = "x".repeat(200_000);
    t.file("a/usr/lib/big", &big);
    big.push('y');
    big.remove(0);
    t.file("b/usr/lib/big", &big);
    assert!(one(&t.usr(&["a", "b"]))
        .detail
        .contains("different content"));
}

#[test]
fn same_symlink_in_two_extensions() {
    let t = Trees::new();
    t.link("a/usr/bin/x", "foo").link("b/usr/bin/x", "bar");
    let c = one(&t.usr(&["a", "b"])).clone();
    assert_eq!((c.kind, c.winner.as_str()), (ConflictKind::SameFile, "b"));
    assert!(c.detail.contains("symbolic link to bar"), "{}", c.detail);
    assert!(c.detail.contains("different content"));

    let t = Trees::new();
    t.link("a/usr/bin/x", "foo").link("b/usr/bin/x", "foo");
    assert!(one(&t.usr(&["a", "b"]))
        .detail
        .contains("identical content"));
}

#[test]
fn same_device_in_two_extensions_as_root() {
    let t = Trees::new();
    t.chardev("a/usr/share/dev/null", 1, 3);
    t.chardev("b/usr/share/dev/null", 1, 3);
    let c = one(&t.usr(&["a", "b"])).clone();
    assert_eq!(c.kind, ConflictKind::SameFile);
    assert!(c.detail.contains("character device 1:3"), "{}", c.detail);
    assert!(c.detail.contains("identical content"));

    let t = Trees::new();
    t.chardev("a/usr/share/dev/null", 1, 3);
    t.chardev("b/usr/share/dev/null", 1, 5);
    assert!(one(&t.usr(&["a", "b"]))
        .detail
        .contains("different content"));
}

#[test]
fn extension_file_over_base_file_shadows_base() {
    let t = Trees::new();
    t.file("base/usr/bin/tool", "host")
        .file("base/usr/bin/other", "host");
    t.file("a/usr/bin/tool", "ext");
    let c = one(&t.usr(&["a"])).clone();
    assert_eq!(c.kind, ConflictKind::ShadowsBase);
    assert_eq!(c.providers, [BASE, "a"]);
    assert_eq!(c.winner, "a");
    assert!(c.detail.contains("different content"));

    // Two extensions and the base: one same-file conflict that names the base too.
    t.file("b/usr/bin/tool", "ext");
    let c = one(&t.usr(&["a", "b"])).clone();
    assert_eq!(c.kind, ConflictKind::SameFile);
    assert_eq!(c.providers, [BASE, "a", "b"]);
    assert_eq!(c.winner, "b");
    assert!(c.detail.contains("identical content") && c.detail.contains("base OS"));
}

#[test]
fn without_base_nothing_shadows() {
    let t = Trees::new();
    t.file("a/usr/bin/tool", "ext");
    let hs = [PathBuf::from("/usr")];
    assert!(scan_paths(&t.layers(&["a"]), None, &hs)
        .conflicts
        .is_empty());
}

#[test]
fn usr_sbin_symlink_replaced_by_directory() {
    // Flatcar's /usr/sbin -> bin, hidden by an extension's real usr/sbin (sysext-bakery#131).
    let t = Trees::new();
    t.link("base/usr/sbin", "bin").file("base/usr/bin/ls", "ls");
    t.file("a/usr/sbin/tool", "tool").file("a/usr/bin/ls", "ls");
    let cs = t.usr(&["a"]);
    assert_eq!(
        kinds(&cs),
        [
            (ConflictKind::ShadowsBase, "/usr/bin/ls"),
            (ConflictKind::TypeChange, "/usr/sbin")
        ]
    );
    let c = &cs[1];
    assert_eq!(c.providers, [BASE, "a"]);
    assert_eq!(c.winner, "a");
    assert!(c.detail.contains("symbolic link to bin"), "{}", c.detail);
    assert!(
        c.detail.contains("base OS's entry disappears"),
        "{}",
        c.detail
    );
}

#[test]
fn directory_replaced_by_symlink_is_not_descended() {
    let t = Trees::new();
    t.file("base/usr/lib64/libc.so", "c");
    t.file("a/usr/lib64/libc.so", "a")
        .file("b/usr/lib64/libc.so", "b");
    t.link("c/usr/lib64", "lib");
    let cs = t.usr(&["a", "b", "c"]);
    let c = one(&cs);
    assert_eq!(
        (c.kind, c.path.as_str()),
        (ConflictKind::TypeChange, "/usr/lib64")
    );
    assert_eq!(c.providers, [BASE, "a", "b", "c"]);
    assert_eq!(c.winner, "c");
}

#[test]
fn directory_above_a_non_directory_hides_the_lower_directory() {
    let t = Trees::new();
    t.file("a/usr/share/x/f", "a");
    t.file("b/usr/share/x", "b");
    t.file("c/usr/share/x/f", "c");
    let cs = t.usr(&["a", "b", "c"]);
    // a's x/f is hidden by b's file, so it does not collide with c's.
    let c = one(&cs);
    assert_eq!((c.kind, c.winner.as_str()), (ConflictKind::TypeChange, "c"));
    assert_eq!(c.providers, ["a", "b", "c"]);
}

#[test]
fn symlinks_are_never_followed() {
    let t = Trees::new();
    // A link to a directory outside the layer, and a loop: neither is walked.
    t.file("outside/secret", "s");
    t.link("a/usr/share/out", t.p("outside").to_str().unwrap());
    t.link("a/usr/share/loop", ".");
    t.file("b/usr/share/out/secret", "b");
    let cs = t.usr(&["a", "b"]);
    let c = one(&cs);
    assert_eq!(
        (c.kind, c.path.as_str()),
        (ConflictKind::TypeChange, "/usr/share/out")
    );
}

#[test]
fn trusted_opaque_directory_hides_lower_content_as_root() {
    let t = Trees::new();
    t.file("base/usr/share/doc/readme", "host");
    t.file("a/usr/share/doc/a.txt", "a");
    t.file("b/usr/share/doc/readme", "b");
    t.xattr("b/usr/share/doc", "trusted.overlay.opaque", b"y");
    let cs = t.usr(&["a", "b"]);
    // readme below the opaque dir does not shadow the (hidden) base file.
    let c = one(&cs);
    assert_eq!(
        (c.kind, c.path.as_str()),
        (ConflictKind::OpaqueDir, "/usr/share/doc")
    );
    assert_eq!(c.providers, [BASE, "a", "b"]);
    assert_eq!(c.winner, "b");
    assert!(
        c.detail.contains("trusted.overlay.opaque=y"),
        "{}",
        c.detail
    );
}

#[test]
fn opaque_hierarchy_root_and_user_markers_as_root() {
    let t = Trees::new();
    t.file("base/usr/bin/sh", "sh");
    t.file("a/usr/lib/x", "a");
    t.xattr("a/usr", "trusted.overlay.opaque", b"y");
    let c = one(&t.usr(&["a"])).clone();
    assert_eq!((c.kind, c.path.as_str()), (ConflictKind::OpaqueDir, "/usr"));
    assert!(c.detail.contains("trusted.overlay.opaque"));

    // user.overlay.* markers mean nothing to a privileged overlay without `userxattr`: a
    // plain directory, and a plain empty file over the base's.
    let t = Trees::new();
    t.file("base/usr/bin/sh", "sh");
    t.file("a/usr/lib/x", "a").file("a/usr/bin/sh", "");
    t.xattr("a/usr", "user.overlay.opaque", b"y");
    t.xattr("a/usr/bin/sh", "user.overlay.whiteout", b"");
    assert_eq!(
        kinds(&t.usr(&["a"])),
        [(ConflictKind::ShadowsBase, "/usr/bin/sh")]
    );

    // "x" means "has xattr whiteouts", not opaque.
    let t = Trees::new();
    t.file("a/usr/lib/x", "a");
    t.xattr("a/usr/lib", "trusted.overlay.opaque", b"x");
    assert!(t.usr(&["a"]).is_empty());
}

#[test]
fn opaque_directory_hiding_nothing_is_still_reported_as_root() {
    let t = Trees::new();
    t.file("a/usr/share/new/f", "a");
    t.xattr("a/usr/share/new", "trusted.overlay.opaque", b"y");
    let c = one(&t.usr(&["a"])).clone();
    assert_eq!(c.providers, ["a"]);
    assert!(c.detail.contains("hides nothing today"));
}

#[test]
fn whiteout_char_device_deletes_lower_file() {
    let t = Trees::new();
    t.file("base/usr/bin/old", "host");
    t.file("a/usr/bin/old", "a");
    t.chardev("b/usr/bin/old", 0, 0);
    let cs = t.usr(&["a", "b"]);
    assert_eq!(
        kinds(&cs),
        [
            (ConflictKind::ShadowsBase, "/usr/bin/old"),
            (ConflictKind::Whiteout, "/usr/bin/old")
        ]
    );
    let w = &cs[1];
    assert_eq!(w.providers, [BASE, "a", "b"]);
    assert_eq!(w.winner, "b");
    assert!(w.detail.contains("0:0 character device"), "{}", w.detail);
}

#[test]
fn xattr_whiteout_and_whiteout_of_nothing_as_root() {
    let t = Trees::new();
    t.file("base/usr/lib/gone", "host");
    t.file("a/usr/lib/gone", "");
    t.xattr("a/usr/lib/gone", "trusted.overlay.whiteout", b"");
    t.chardev("a/usr/lib/never-was", 0, 0);
    let cs = t.usr(&["a"]);
    assert_eq!(
        kinds(&cs),
        [
            (ConflictKind::Whiteout, "/usr/lib/gone"),
            (ConflictKind::Whiteout, "/usr/lib/never-was")
        ]
    );
    assert_eq!(cs[0].providers, [BASE, "a"]);
    assert!(cs[0].detail.contains("trusted.overlay.whiteout"));
    assert_eq!(cs[1].providers, ["a"]);
    assert!(cs[1].detail.contains("hides nothing today"));
}

#[test]
fn extension_release_files_and_shared_directories_are_not_conflicts() {
    let t = Trees::new();
    for n in ["a", "b"] {
        t.file(
            &format!("{n}/usr/lib/extension-release.d/extension-release.{n}"),
            "ID=_any\n",
        );
        t.file(
            &format!("{n}/usr/lib/extension-release.d/extension-release.shared"),
            "ID=_any\n",
        );
        t.file(
            &format!("{n}/etc/extension-release.d/extension-release.{n}"),
            "ID=_any\n",
        );
        t.file(&format!("{n}/usr/share/{n}/file"), n);
        t.dir(&format!("{n}/opt/common/empty"));
    }
    t.dir("base/usr/share").dir("base/etc");
    assert!(t.scan(&["a", "b"], &["/usr", "/opt", "/etc"]).is_empty());
}

#[test]
fn every_hierarchy_is_scanned_and_output_is_sorted() {
    let t = Trees::new();
    for n in ["a", "b"] {
        t.file(&format!("{n}/opt/z"), n)
            .file(&format!("{n}/opt/b"), n);
        t.file(&format!("{n}/usr/a"), n);
    }
    t.file("a/etc/not-scanned", "a")
        .file("b/etc/not-scanned", "b");
    let cs = t.scan(&["a", "b"], &["/usr", "/opt"]);
    let paths: Vec<&str> = cs.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["/opt/b", "/opt/z", "/usr/a"]);
}

#[test]
fn refuse_rescans_what_a_dropped_layer_hid_as_root() {
    let t = Trees::new();
    t.file("a/usr/share/x/f", "a").file("b/usr/share/x/f", "b");
    t.file("c/usr/share/x/g", "c");
    t.xattr("c/usr/share/x", "trusted.overlay.opaque", b"y");
    let hs = [PathBuf::from("/usr")];
    let Refusal {
        conflicts: found,
        dropped: drops,
    } = refuse_paths(&t.layers(&["a", "b", "c"]), None, &hs);
    // Only the opaque dir is visible at first; a/b's same file shows once c is gone.
    assert_eq!(kinds(&found), [(ConflictKind::OpaqueDir, "/usr/share/x")]);
    let names: Vec<&str> = drops.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["c", "b"]);
}

fn roots(t: &Trees, names: &[&str]) -> Vec<(String, Root)> {
    names
        .iter()
        .map(|n| (n.to_string(), Root::open(&t.p(n)).unwrap()))
        .collect()
}

fn refs(r: &[(String, Root)]) -> Vec<(String, LayerTree<'_>)> {
    r.iter()
        .map(|(n, r)| (n.clone(), LayerTree::new(r)))
        .collect()
}

fn usr() -> Vec<PathBuf> {
    vec![PathBuf::from("/usr")]
}

#[test]
fn a_layer_too_deep_to_judge_is_left_out_and_the_others_are_judged() {
    let t = Trees::new();
    t.file("base/usr/bin/host", "h");
    t.file("a/usr/bin/x", "a").dir("a/usr/share");
    crate::gather::walk::tests::deep_tree(&t.p("a/usr/share"), "d", 10);
    t.file("b/usr/bin/x", "b").file("c/usr/bin/x", "c");
    let base = Root::open(&t.p("base")).unwrap();
    let layers = roots(&t, &["a", "b", "c"]);
    let limits = Limits {
        max_depth: 5,
        ..Limits::default()
    };
    let s = scan(&refs(&layers), Some(&base), &usr(), &limits);
    let deep = t.p("a/usr/share/d/d/d/d");
    assert_eq!(
        s.unjudged,
        [(
            "a".to_string(),
            format!("{}: more than 5 directory levels deep", deep.display())
        )]
    );
    let c = &s.conflicts;
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!(
        (c[0].kind, c[0].path.as_str()),
        (ConflictKind::SameFile, "/usr/bin/x")
    );
    assert_eq!(c[0].providers, ["b", "c"], "a is not judged");

    let r = refuse(&refs(&layers), Some(&base), &usr(), &limits);
    let dropped: Vec<(&str, &str)> = r
        .dropped
        .iter()
        .map(|(n, w)| (n.as_str(), w.as_str()))
        .collect();
    let why_a = format!(
        "cannot be checked for conflicts: {}: more than 5 directory levels deep",
        deep.display()
    );
    assert_eq!(dropped[0], ("a", why_a.as_str()));
    assert_eq!(dropped[1].0, "c");
    assert_eq!(dropped.len(), 2);
    assert_eq!(r.conflicts, s.conflicts);

    // Within the default limits the same tree is judged, a included.
    let s = scan(&refs(&layers), Some(&base), &usr(), &Limits::default());
    assert!(s.unjudged.is_empty());
    assert_eq!(s.conflicts[0].providers, ["a", "b", "c"]);
}

#[test]
fn an_unreadable_layer_is_left_out_with_the_reason() {
    use std::os::unix::fs::PermissionsExt;
    let t = Trees::new();
    std::fs::set_permissions(t.t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t.file("a/usr/lib/secret/f", "a").file("a/usr/bin/x", "a");
    t.file("b/usr/bin/x", "b").file("c/usr/bin/x", "c");
    std::fs::set_permissions(
        t.p("a/usr/lib/secret"),
        std::fs::Permissions::from_mode(0o311),
    )
    .unwrap();
    let (scanned, refused) = crate::gather::identity::tests::as_nobody(|| {
        let layers = t.layers(&["a", "b", "c"]);
        (
            scan_paths(&layers, None, &usr()),
            refuse_paths(&layers, None, &usr()),
        )
    });
    let why = format!(
        "opening directory {}: Permission denied (os error 13)",
        t.p("a/usr/lib/secret").display()
    );
    assert_eq!(scanned.unjudged, [("a".to_string(), why.clone())]);
    assert_eq!(scanned.conflicts.len(), 1);
    assert_eq!(scanned.conflicts[0].providers, ["b", "c"]);
    let names: Vec<&str> = refused.dropped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(
        refused.dropped[0].1,
        format!("cannot be checked for conflicts: {why}")
    );
    // A layer that cannot even be opened is unjudged too.
    let mut layers = t.layers(&["b", "c"]);
    layers.insert(0, ("gone".into(), t.p("gone")));
    let s = scan_paths(&layers, None, &usr());
    assert_eq!(s.unjudged.len(), 1);
    assert_eq!(s.unjudged[0].0, "gone");
    assert!(
        s.unjudged[0].1.contains("No such file or directory"),
        "{:?}",
        s.unjudged
    );
    assert_eq!(s.conflicts[0].providers, ["b", "c"]);
}

#[test]
fn conflicts_deeper_than_path_max_and_with_non_utf8_names() {
    let t = Trees::new();
    let long = "l".repeat(50);
    for n in ["a", "b"] {
        t.dir(&format!("{n}/usr/share"));
        crate::gather::walk::tests::deep_tree(&t.p(&format!("{n}/usr/share")), &long, 100);
        std::fs::write(t.p(n).join("usr/share").join(OsStr::from_bytes(b"\xff")), n).unwrap();
    }
    let cs = t.usr(&["a", "b"]);
    assert_eq!(cs.len(), 2, "{cs:#?}");
    let leaf = format!("/usr/share/{}/leaf", vec![long.as_str(); 100].join("/"));
    assert!(leaf.len() > 5000);
    assert_eq!(cs[0].path, leaf);
    assert_eq!(cs[0].kind, ConflictKind::SameFile);
    assert!(
        cs[0].detail.contains("identical content"),
        "{}",
        cs[0].detail
    );
    assert_eq!(cs[1].path, "/usr/share/\u{fffd}");
    assert!(
        cs[1].detail.contains("different content"),
        "{}",
        cs[1].detail
    );
}

#[test]
fn many_layers_share_a_deep_tree_within_the_fd_budget() {
    let t = Trees::new();
    let names: Vec<String> = (0..40).map(|i| format!("e{i:02}")).collect();
    for n in &names {
        let deep = format!("{n}/usr/lib/{}", vec!["d"; 30].join("/"));
        t.file(&format!("{deep}/{n}"), n);
        t.file(&format!("{deep}/shared"), "same");
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let cs = t.usr(&refs);
    assert_eq!(cs.len(), 1, "{cs:#?}");
    assert_eq!(cs[0].providers.len(), 40);
    assert!(cs[0].path.ends_with("/d/shared"), "{}", cs[0].path);
}

#[test]
fn entries_nothing_can_be_said_of_are_not_looked_up_as_root() {
    let t = Trees::new();
    t.file("base/usr/bin/host", "h");
    t.file("a/usr/bin/tool", "a");
    for i in 0..10 {
        t.file(&format!("a/usr/share/a/f{i}"), "a");
    }
    t.file("a/usr/share/a/empty", "");
    t.link("a/usr/share/a/link", "f0");
    t.chardev("a/usr/share/a/gone", 0, 0);
    t.file("a/usr/share/a/sub/g", "a");
    t.file("b/usr/bin/tool", "b").file("b/usr/share/b/x", "b");
    t.file("b/usr/share/b/w", "");
    t.xattr("b/usr/share/b/w", "trusted.overlay.whiteout", b"");
    let o = open_paths(&t.layers(&["a", "b"]), Some(&t.p("base")));
    let limits = Limits::default();
    let scan_with = |trust: bool| scan(&o.trees(trust), o.base.as_ref(), &usr(), &limits);
    let (light, full) = (scan_with(true), scan_with(false));
    let expected = [
        (ConflictKind::SameFile, "/usr/bin/tool"),
        (ConflictKind::Whiteout, "/usr/share/a/gone"),
        (ConflictKind::Whiteout, "/usr/share/b/w"),
    ];
    assert_eq!(kinds(&full.conflicts), expected);
    assert_eq!(light.conflicts, full.conflicts);
    // Looked up either way: bin, tool and share in the base and both layers (3 × 3), a's
    // directories a and sub and its device gone, b's directory b and its files x and w (b
    // holds xattrs: any of its files may be an xattr whiteout). a's link never is a marker.
    // Only where a's file system holds no xattrs are its regular files (f0-f9, empty, g)
    // left alone: none can be an xattr whiteout, and alone each overlaps nothing.
    assert!(o.xattr_free[0] && !o.xattr_free[1]);
    assert_eq!((light.looked_up, full.looked_up), (15, 27));
}
