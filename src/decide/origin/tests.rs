//! Golden records per generation, from the facts sheet (`flatcar-systemd-versions.md` §2.2,
//! §3.3): the text systemd writes, not only values that parse alike.

use super::*;
use crate::decide::skip_record::SkipRecord::{NoSkipLogic, Systemd258, Systemd260};

/// The `foo` entry Debian's systemd 262.1 wrote for a directory extension (facts sheet §3.3).
fn foo_262() -> (String, String, OriginId) {
    (
        "foo".into(),
        "/var/lib/extensions/foo".into(),
        OriginId::Weak(WeakId {
            on_mount_id: 2147691524,
            file_handle: Some((1, vec![0x82, 0x45, 0xa2, 0x00, 0x13, 0xfa, 0x63, 0xfa])),
            inode: 77,
            crtime: 1796649125486611,
            mtime: 0,
        }),
    )
}

fn read_only_dir() -> Origin {
    Origin {
        mode: MutableMode::No,
        mutable_dirs: vec![],
        mount_options: None,
        extensions: vec![foo_262()],
    }
}

const FOO_ENTRY: &str = "\t\"extensions\" : {\n\t\t\"foo\" : {\n\t\t\t\"path\" : \"/var/lib/extensions/foo\",\n\t\t\t\"onMountId\" : 2147691524,\n\t\t\t\"fileHandle\" : {\n\t\t\t\t\"type\" : 1,\n\t\t\t\t\"handle\" : \"8245a20013fa63fa\"\n\t\t\t},\n\t\t\t\"crtime\" : 1796649125486611,\n\t\t\t\"mtime\" : 0\n\t\t}\n\t}\n}\n";

#[test]
fn systemd_260_writes_the_mode_as_a_string() {
    assert_eq!(
        read_only_dir().to_json_text(Systemd260).unwrap(),
        format!("{{\n\t\"mutable\" : {{\n\t\t\"mode\" : \"no\"\n\t}},\n{FOO_ENTRY}")
    );
}

#[test]
fn systemd_258_writes_the_mode_as_an_integer_and_the_rest_alike() {
    assert_eq!(
        read_only_dir().to_json_text(Systemd258).unwrap(),
        format!("{{\n\t\"mutable\" : {{\n\t\t\"mode\" : 0\n\t}},\n{FOO_ENTRY}")
    );
}

#[test]
fn a_systemd_without_skip_logic_gets_no_record() {
    assert_eq!(read_only_dir().to_json_text(NoSkipLogic), None);
}

/// `--mutable=yes` with `SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS=redirect_dir=on` (§3.3).
fn mutable_yes_with_options() -> Origin {
    Origin {
        mode: MutableMode::Yes,
        mutable_dirs: vec![
            ("/usr".into(), "/var/lib/extensions.mutable/usr".into()),
            ("/opt".into(), "/var/lib/extensions.mutable/opt".into()),
        ],
        mount_options: Some("redirect_dir=on".into()),
        extensions: vec![],
    }
}

#[test]
fn mount_options_are_recorded_by_260_only() {
    let dirs = "\t\t\"mutableDirs\" : {\n\t\t\t\"/usr\" : \"/var/lib/extensions.mutable/usr\",\n\t\t\t\"/opt\" : \"/var/lib/extensions.mutable/opt\"\n\t\t}\n\t}";
    assert_eq!(
        mutable_yes_with_options().to_json_text(Systemd260).unwrap(),
        format!("{{\n\t\"mutable\" : {{\n\t\t\"mode\" : \"yes\",\n{dirs},\n\t\"mountOptions\" : \"redirect_dir=on\"\n}}\n")
    );
    assert_eq!(
        mutable_yes_with_options().to_json_text(Systemd258).unwrap(),
        format!("{{\n\t\"mutable\" : {{\n\t\t\"mode\" : 1,\n{dirs}\n}}\n")
    );
}

/// Flatcar's `/etc` (§5): `Mutable=auto`, the `extensions.mutable/etc -> /etc` link, the
/// default confext as a verity DDI and a user confext directory on a file system without
/// handles (the inode stands in).
fn flatcar_confext() -> Origin {
    Origin {
        mode: MutableMode::Auto,
        mutable_dirs: vec![("/etc".into(), "/etc".into())],
        mount_options: None,
        extensions: vec![
            (
                "00-flatcar-default".into(),
                "/usr/lib/confexts/00-flatcar-default.raw".into(),
                OriginId::Verity("3f0a".into()),
            ),
            (
                "user".into(),
                "/etc/extensions/user".into(),
                OriginId::Weak(WeakId {
                    on_mount_id: 42,
                    file_handle: None,
                    inode: 1234,
                    crtime: 0,
                    mtime: 0,
                }),
            ),
        ],
    }
}

#[test]
fn flatcar_etc_per_generation() {
    let rest = "\t\t\"mutableDirs\" : {\n\t\t\t\"/etc\" : \"/etc\"\n\t\t}\n\t},\n\t\"extensions\" : {\n\t\t\"00-flatcar-default\" : {\n\t\t\t\"path\" : \"/usr/lib/confexts/00-flatcar-default.raw\",\n\t\t\t\"verityHash\" : \"3f0a\"\n\t\t},\n\t\t\"user\" : {\n\t\t\t\"path\" : \"/etc/extensions/user\",\n\t\t\t\"onMountId\" : 42,\n\t\t\t\"inode\" : 1234,\n\t\t\t\"crtime\" : 0,\n\t\t\t\"mtime\" : 0\n\t\t}\n\t}\n}\n";
    assert_eq!(
        flatcar_confext().to_json_text(Systemd258).unwrap(),
        format!("{{\n\t\"mutable\" : {{\n\t\t\"mode\" : 2,\n{rest}")
    );
    assert_eq!(
        flatcar_confext().to_json_text(Systemd260).unwrap(),
        format!("{{\n\t\"mutable\" : {{\n\t\t\"mode\" : \"auto\",\n{rest}")
    );
}

#[test]
fn the_258_mode_numbers_follow_its_enum() {
    let numbers: Vec<u64> = MutableMode::ALL
        .iter()
        .map(|m| mode_number_258(*m))
        .collect();
    let names: Vec<&str> = MutableMode::ALL.iter().map(|m| m.as_str()).collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4, 5]);
    assert_eq!(
        names,
        [
            "no",
            "yes",
            "auto",
            "import",
            "ephemeral",
            "ephemeral-import"
        ]
    );
}

#[test]
fn origin_of_uses_recorded_identities_and_the_ephemeral_quirk() {
    let hierarchies = [PathBuf::from("/usr"), PathBuf::from("/opt")];
    let acc = vec![("a".to_string(), PathBuf::from("/var/lib/extensions/a.raw"))];
    let mut ids = BTreeMap::new();
    ids.insert("a".to_string(), OriginId::Verity("ab".into()));
    let dirs = [(
        PathBuf::from("/usr"),
        PathBuf::from("/var/lib/extensions.mutable/usr"),
    )];
    let o = origin_of(MutableMode::Import, &hierarchies, None, &acc, &dirs, &ids).unwrap();
    assert_eq!(
        o,
        Origin {
            mode: MutableMode::Import,
            mutable_dirs: vec![("/usr".into(), "/var/lib/extensions.mutable/usr".into())],
            mount_options: None,
            extensions: vec![(
                "a".into(),
                "/var/lib/extensions/a.raw".into(),
                OriginId::Verity("ab".into())
            )],
        }
    );
    let e = origin_of(
        MutableMode::EphemeralImport,
        &hierarchies,
        Some("x"),
        &acc,
        &dirs,
        &ids,
    );
    let e = e.unwrap();
    assert_eq!(
        e.mutable_dirs,
        [
            ("/usr".to_string(), "/run/systemd/sysext/usr".to_string()),
            ("/opt".to_string(), "/run/systemd/sysext/opt".to_string())
        ]
    );
    assert_eq!(e.mount_options.as_deref(), Some("x"));
    assert_eq!(
        origin_of(MutableMode::No, &hierarchies, None, &acc, &dirs, &BTreeMap::new()),
        Err("no identity recorded for extension 'a' (it could not be found from the caller's namespace)".into())
    );
}

#[test]
fn names_and_paths_are_json_escaped() {
    let o = Origin {
        mode: MutableMode::No,
        mutable_dirs: vec![],
        mount_options: None,
        extensions: vec![(
            "q\"\\\n\u{1}".into(),
            "/p".into(),
            OriginId::Verity("00".into()),
        )],
    };
    let text = o.to_json_text(Systemd260).unwrap();
    assert!(text.contains("\"q\\\"\\\\\\n\\u0001\" : {"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["extensions"]["q\"\\\n\u{1}"]["verityHash"], "00");
}
