use super::*;

/// Bytes laid out like a dynamically linked systemd-sysext: `.dynstr` with its libraries,
/// `.rodata` with its messages.
fn elf_like(needed: &[&str], messages: &[&str]) -> Vec<u8> {
    let mut b = b"\x7fELF\x02\x01\x01\0".to_vec();
    for s in needed.iter().chain(messages) {
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }
    b
}

const SKIP: &str =
    "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh.";

#[test]
fn the_skip_message_is_found_anywhere_and_only_whole() {
    assert!(has_skip_logic(&elf_like(&["libc.so.6"], &["a", SKIP])));
    assert!(!has_skip_logic(&elf_like(
        &["libc.so.6"],
        &["Skipping extension refresh because no change"]
    )));
    assert!(!has_skip_logic(b""));
}

#[test]
fn the_needed_shared_library_is_the_one_name_there() {
    let one = elf_like(&["libsystemd-shared-258.so", "libc.so.6"], &[SKIP]);
    assert_eq!(
        needed_shared_lib(&one).as_deref(),
        Some("libsystemd-shared-258.so")
    );
    let tagged = elf_like(&["libsystemd-shared-257.3-1.fc42.so"], &[]);
    assert_eq!(
        needed_shared_lib(&tagged).as_deref(),
        Some("libsystemd-shared-257.3-1.fc42.so")
    );
    let twice = elf_like(
        &["libsystemd-shared-262.so", "libsystemd-shared-262.so"],
        &[],
    );
    assert_eq!(
        needed_shared_lib(&twice).as_deref(),
        Some("libsystemd-shared-262.so")
    );
    let two = elf_like(
        &["libsystemd-shared-258.so", "libsystemd-shared-260.so"],
        &[],
    );
    assert_eq!(needed_shared_lib(&two), None, "ambiguous");
    // Not library names: a versioned soname, a message, bytes that are no name.
    let noise = elf_like(
        &["libsystemd-shared-262.so.1"],
        &[
            "libsystemd-shared-%s.so missing",
            "libsystemd-shared-\u{e9}.so",
        ],
    );
    assert_eq!(needed_shared_lib(&noise), None);
    assert_eq!(needed_shared_lib(&elf_like(&["libc.so.6"], &[])), None);
    // A name running to the end without a NUL still counts.
    assert_eq!(
        needed_shared_lib(b"xlibsystemd-shared-259.so").as_deref(),
        Some("libsystemd-shared-259.so")
    );
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn host(id: &str, version_id: Option<&str>) -> Result<HostInfo, String> {
    Ok(HostInfo {
        id: id.into(),
        id_like: vec![],
        version_id: version_id.map(str::to_string),
        sysext_level: None,
        confext_level: None,
        scope: crate::decide::release::Scope::System,
        architecture: "x86-64".into(),
        os_release_path: "/usr/lib/os-release".into(),
    })
}

#[test]
fn facts_of_a_flatcar_like_root() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    // The binary is a link, resolved inside the root (an absolute target is the root's).
    write(
        r,
        "usr/lib/systemd/systemd-sysext.real",
        &elf_like(&["libsystemd-shared-258.so"], &[SKIP]),
    );
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/systemd-sysext.real",
        r.join("usr/bin/systemd-sysext"),
    )
    .unwrap();
    write(r, "usr/lib64/systemd/libsystemd-shared-258.so", b"");
    write(r, "usr/lib64/systemd/libsystemd-core-258.so", b"");
    write(r, "usr/lib/systemd/libsystemd-shared-257.so.bak", b"");
    write(
        r,
        "usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-262.so",
        b"",
    );
    write(r, "usr/lib/python3/systemd/libsystemd-shared-1.so", b"");
    let root = Root::open(r).unwrap();
    let f = facts(&root, &host("flatcar", Some("4694.1.1")));
    assert_eq!(
        f,
        SystemdFacts {
            binary_path: PathBuf::from("/usr/bin/systemd-sysext"),
            binary: Binary::Read {
                skip_logic: true,
                shared_lib: Some("libsystemd-shared-258.so".into())
            },
            shared_libs: vec![
                PathBuf::from("/usr/lib64/systemd/libsystemd-shared-258.so"),
                PathBuf::from("/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-262.so"),
            ],
            os_id: Some("flatcar".into()),
            version_id: Some("4694.1.1".into()),
        }
    );
}

#[test]
fn facts_of_roots_without_a_readable_binary() {
    let t = tempfile::tempdir().unwrap();
    let root = Root::open(t.path()).unwrap();
    let f = facts(&root, &Err("no os-release".into()));
    assert_eq!(
        f,
        SystemdFacts {
            binary_path: PathBuf::from("/usr/bin/systemd-sysext"),
            binary: Binary::Missing,
            shared_libs: vec![],
            os_id: None,
            version_id: None,
        }
    );
    std::fs::create_dir_all(t.path().join("usr/bin/systemd-sysext")).unwrap();
    let f = facts(&root, &host("debian", None));
    assert_eq!(
        f.binary,
        Binary::Unreadable(format!(
            "opening {}: not a regular file (directory)",
            t.path().join("usr/bin/systemd-sysext").display()
        ))
    );
    assert_eq!(f.os_id.as_deref(), Some("debian"));
}
