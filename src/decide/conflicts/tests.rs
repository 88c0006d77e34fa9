//! Unit tests of the conflicts judge and the refuse policy: plain data in, plain data out.

use super::*;

fn names(n: &[&str]) -> Vec<String> {
    std::iter::once(BASE)
        .chain(n.iter().copied())
        .map(String::from)
        .collect()
}

fn e(layer: usize, kind: FileKind) -> LayerEntry {
    let ty = match kind {
        FileKind::Directory => 0o040000,
        FileKind::Symlink => 0o120000,
        FileKind::CharDevice => 0o020000,
        FileKind::BlockDevice => 0o060000,
        FileKind::Fifo => 0o010000,
        FileKind::Socket => 0o140000,
        FileKind::Regular => 0o100000,
    };
    LayerEntry {
        layer,
        kind,
        mode: ty | 0o644,
        size: 1,
        rdev: (0, 0),
        link_target: None,
        xattrs: Vec::new(),
        content: Some(layer as u64),
    }
}

fn file(layer: usize, token: u64) -> LayerEntry {
    LayerEntry {
        content: Some(token),
        ..e(layer, FileKind::Regular)
    }
}

fn judged(n: &[&str], entries: &[LayerEntry]) -> (Vec<Conflict>, Vec<usize>) {
    let mut out = Vec::new();
    let v = judge(&names(n), "/usr/x", entries, &mut out);
    (out, v)
}

#[test]
fn same_file_with_equal_and_different_tokens() {
    let (cs, v) = judged(&["a", "b"], &[file(1, 7), file(2, 7)]);
    assert!(v.is_empty());
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].kind, ConflictKind::SameFile);
    assert_eq!(cs[0].providers, ["a", "b"]);
    assert_eq!(cs[0].winner, "b");
    assert_eq!(
        cs[0].detail,
        "a regular file provided by 'a', 'b' (identical content); 'b' wins"
    );
    let (cs, _) = judged(&["a", "b"], &[file(1, 7), file(2, 8)]);
    assert!(
        cs[0].detail.contains("different content"),
        "{}",
        cs[0].detail
    );
    // Unknown content is never identical, not even to itself.
    let unknown = LayerEntry {
        content: None,
        ..file(1, 0)
    };
    let (cs, _) = judged(
        &["a", "b"],
        &[
            unknown.clone(),
            LayerEntry {
                layer: 2,
                ..unknown
            },
        ],
    );
    assert!(
        cs[0].detail.contains("different content"),
        "{}",
        cs[0].detail
    );
    // Same bytes, another mode.
    let exec = LayerEntry {
        mode: 0o100755,
        ..file(2, 7)
    };
    let (cs, _) = judged(&["a", "b"], &[file(1, 7), exec]);
    assert!(
        cs[0].detail.contains("different content"),
        "{}",
        cs[0].detail
    );
}

#[test]
fn base_shadowing_and_type_change() {
    let (cs, _) = judged(&["a"], &[file(0, 1), file(1, 1)]);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].kind, ConflictKind::ShadowsBase);
    assert_eq!(
        cs[0].detail,
        "'a' hides the base OS's a regular file with its a regular file (identical content)"
    );
    let link = LayerEntry {
        link_target: Some(b"bin".to_vec()),
        ..e(0, FileKind::Symlink)
    };
    let (cs, v) = judged(&["a"], &[link, e(1, FileKind::Directory)]);
    assert_eq!(v, [1], "only the extension's directory is merged");
    assert_eq!(cs[0].kind, ConflictKind::TypeChange);
    assert_eq!(
        cs[0].detail,
        "a symbolic link to bin in the base OS, a directory in 'a'; the directory from 'a' \
         wins and hides the others (the base OS's entry disappears: whatever it pointed to \
         is no longer reachable here)"
    );
}

#[test]
fn directories_merge_until_an_opaque_one() {
    let opaque = LayerEntry {
        xattrs: vec![("trusted.overlay.opaque", b"y".to_vec())],
        ..e(2, FileKind::Directory)
    };
    let dirs = [
        e(0, FileKind::Directory),
        e(1, FileKind::Directory),
        opaque,
        e(3, FileKind::Directory),
    ];
    let (cs, v) = judged(&["a", "b", "c"], &dirs);
    assert_eq!(v, [2, 3]);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].kind, ConflictKind::OpaqueDir);
    assert_eq!(cs[0].providers, [BASE, "a", "b"]);
    assert_eq!(cs[0].winner, "b");
    // "x" is not opaque; on the base nothing is.
    let x = LayerEntry {
        xattrs: vec![("trusted.overlay.opaque", b"x".to_vec())],
        ..e(1, FileKind::Directory)
    };
    let base_y = LayerEntry {
        xattrs: vec![("trusted.overlay.opaque", b"y".to_vec())],
        ..e(0, FileKind::Directory)
    };
    let (cs, v) = judged(&["a"], &[base_y, x]);
    assert!(cs.is_empty(), "{cs:?}");
    assert_eq!(v, [0, 1]);
}

#[test]
fn whiteouts_by_device_and_by_xattr() {
    let dev = e(2, FileKind::CharDevice);
    let (cs, v) = judged(&["a", "b"], &[file(1, 1), dev]);
    assert!(v.is_empty());
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].kind, ConflictKind::Whiteout);
    assert!(
        cs[0].detail.contains("0:0 character device"),
        "{}",
        cs[0].detail
    );
    let empty = LayerEntry {
        size: 0,
        xattrs: vec![("trusted.overlay.whiteout", Vec::new())],
        ..file(1, 0)
    };
    let (cs, _) = judged(&["a"], &[empty]);
    assert_eq!(cs[0].kind, ConflictKind::Whiteout);
    assert_eq!(cs[0].providers, ["a"]);
    assert!(
        cs[0].detail.contains("hides nothing today"),
        "{}",
        cs[0].detail
    );
    // A non-empty file with the xattr is a file; a 1:3 device is a device.
    let full = LayerEntry {
        xattrs: vec![("trusted.overlay.whiteout", Vec::new())],
        ..file(1, 0)
    };
    let null = LayerEntry {
        rdev: (1, 3),
        ..e(1, FileKind::CharDevice)
    };
    assert!(judged(&["a"], &[full]).0.is_empty());
    assert!(judged(&["a"], &[null]).0.is_empty());
}

#[test]
fn what_the_walk_must_gather() {
    assert_eq!(xattrs_to_read(0, FileKind::Directory, 0), [] as [&str; 0]);
    assert_eq!(xattrs_to_read(1, FileKind::Directory, 0), OPAQUE_XATTRS);
    assert_eq!(xattrs_to_read(1, FileKind::Regular, 0), WHITEOUT_XATTRS);
    assert_eq!(xattrs_to_read(1, FileKind::Regular, 1), [] as [&str; 0]);
    assert!(wants_content(&[file(0, 1), file(1, 1)]));
    assert!(!wants_content(&[file(1, 1)]));
    assert!(!wants_content(&[
        file(1, 1),
        e(2, FileKind::Directory),
        file(3, 1)
    ]));
    assert!(!wants_content(&[file(1, 1), e(2, FileKind::Symlink)]));
    assert!(is_skipped(
        b"/usr/lib/extension-release.d/extension-release.a"
    ));
    assert!(!is_skipped(b"/usr/lib/extension-release.d"));
}

/// decide/ is pure: no file-system, mount or process calls in the judge's files.
#[test]
fn the_judge_does_no_io() {
    let src = [
        include_str!("../conflicts.rs"),
        include_str!("refuse.rs"),
        include_str!("tests.rs"),
    ]
    .concat();
    let forbidden = [
        ["std", "::fs"].concat(),
        ["rus", "tix"].concat(),
        ["lib", "c::"].concat(),
        ["ni", "x::"].concat(),
        ["std::os", "::unix"].concat(),
        ["File", "::open"].concat(),
    ];
    for f in &forbidden {
        assert!(!src.contains(f.as_str()), "decide/conflicts.rs uses {f}");
    }
}

#[test]
fn refuse_drops_the_unjudged_first_and_rescans_the_rest() {
    let layers: Vec<(String, ())> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| (n.to_string(), ()))
        .collect();
    let mut seen: Vec<Vec<String>> = Vec::new();
    let r = refuse_scanned(&layers, |l| {
        let names: Vec<String> = l.iter().map(|(n, _)| n.clone()).collect();
        seen.push(names.clone());
        let has = |n: &str| names.iter().any(|x| x == n);
        let mut s = Scanned::default();
        if has("b") {
            s.unjudged.push(("b".into(), "/x: too deep".into()));
        }
        if has("c") && has("d") {
            s.conflicts
                .push(conflict(ConflictKind::SameFile, &["c", "d"]));
        }
        Ok::<_, ()>(s)
    })
    .unwrap();
    assert_eq!(
        r.dropped,
        [
            (
                "b".to_string(),
                "cannot be checked for conflicts: /x: too deep".to_string()
            ),
            (
                "d".to_string(),
                "same-file conflict with 'c' on /usr/x: d".to_string()
            )
        ]
    );
    assert_eq!(seen, [vec!["a", "b", "c", "d"], vec!["a", "c"]]);
    assert_eq!(r.conflicts.len(), 1);
    // Nothing to judge but one unjudged extension: it alone goes.
    let r = refuse_scanned(&layers[..2], |l| {
        let mut s = Scanned::default();
        if l.iter().any(|(n, _)| n == "a") {
            s.unjudged.push(("a".into(), "unreadable".into()));
        }
        Ok::<_, ()>(s)
    })
    .unwrap();
    let names: Vec<&str> = r.dropped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a"]);
}

fn conflict(kind: ConflictKind, providers: &[&str]) -> Conflict {
    Conflict {
        kind,
        path: "/usr/x".into(),
        providers: providers.iter().map(|s| s.to_string()).collect(),
        winner: providers.last().unwrap().to_string(),
        detail: "d".into(),
    }
}

fn dropped(cs: &[Conflict]) -> Vec<String> {
    to_drop(cs).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn refuse_drops_the_later_extension() {
    use ConflictKind::*;
    assert_eq!(dropped(&[conflict(SameFile, &["a", "b"])]), ["b"]);
    assert_eq!(
        dropped(&[conflict(SameFile, &[BASE, "a", "b", "c"])]),
        ["b", "c"]
    );
    // b goes for its conflict with a; then c no longer conflicts with anything kept.
    assert_eq!(
        dropped(&[
            conflict(SameFile, &["a", "b"]),
            conflict(SameFile, &["b", "c"])
        ]),
        ["b"]
    );
    assert_eq!(dropped(&[conflict(TypeChange, &[BASE, "a"])]), ["a"]);
    assert_eq!(dropped(&[conflict(TypeChange, &["a", "b", "c"])]), ["c"]);
    assert_eq!(dropped(&[conflict(OpaqueDir, &[BASE, "a", "b"])]), ["b"]);
    assert_eq!(dropped(&[conflict(OpaqueDir, &["a"])]), ["a"]);
    assert_eq!(dropped(&[conflict(Whiteout, &[BASE, "a"])]), ["a"]);
    let reasons = to_drop(&[conflict(SameFile, &["a", "b"])]);
    assert!(
        reasons[0]
            .1
            .contains("same-file conflict with 'a' on /usr/x"),
        "{reasons:?}"
    );
}

#[test]
fn refuse_never_drops_for_base_shadowing_alone() {
    use ConflictKind::*;
    assert!(to_drop(&[conflict(ShadowsBase, &[BASE, "a"])]).is_empty());
    assert!(to_drop(&[]).is_empty());
}

#[test]
fn policy_and_kind_spellings() {
    for p in [
        ConflictPolicy::Refuse,
        ConflictPolicy::Warn,
        ConflictPolicy::Off,
    ] {
        assert_eq!(p.as_str().parse::<ConflictPolicy>(), Ok(p));
        assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
    }
    assert_eq!(ConflictPolicy::default(), ConflictPolicy::Warn);
    assert!("yes"
        .parse::<ConflictPolicy>()
        .unwrap_err()
        .contains("refuse, warn or off"));
    let v = serde_json::to_value(conflict(ConflictKind::ShadowsBase, &[BASE, "a"])).unwrap();
    assert_eq!(v["kind"], "shadows-base");
    assert_eq!(v["winner"], "a");
    assert_eq!(v["providers"], serde_json::json!(["base", "a"]));
}
