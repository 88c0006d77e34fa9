use super::*;

const BIN: &str = "/usr/bin/systemd-sysext";

fn facts(binary: Binary) -> SystemdFacts {
    SystemdFacts {
        binary_path: PathBuf::from(BIN),
        binary,
        shared_libs: Vec::new(),
        os_id: None,
        version_id: None,
    }
}

fn read(skip_logic: bool, lib: Option<&str>) -> SystemdFacts {
    facts(Binary::Read {
        skip_logic,
        shared_lib: lib.map(str::to_string),
    })
}

fn flatcar(mut f: SystemdFacts, version: &str) -> SystemdFacts {
    f.os_id = Some("flatcar".into());
    f.version_id = Some(version.into());
    f
}

fn libs(mut f: SystemdFacts, paths: &[&str]) -> SystemdFacts {
    f.shared_libs = paths.iter().map(PathBuf::from).collect();
    f
}

fn record(f: &SystemdFacts) -> SkipRecord {
    choose(f).record
}

#[test]
fn the_binary_without_skip_logic_gets_no_record_whatever_else_the_root_says() {
    // Flatcar Stable 4593.2.5 ships 257.9.
    let f = flatcar(read(false, Some("libsystemd-shared-257.so")), "4593.2.5");
    assert_eq!(
        choose(&f),
        Choice {
            record: SkipRecord::NoSkipLogic,
            reason: "/usr/bin/systemd-sysext has no refresh-skip logic (systemd 257 or older, or upstream 258/259)".into()
        }
    );
    // Upstream 258 has no skip logic: the binary wins over a build number that would say 258.
    let f = flatcar(read(false, Some("libsystemd-shared-258.so")), "4694.1.1");
    assert_eq!(record(&f), SkipRecord::NoSkipLogic);
}

#[test]
fn the_linked_library_names_the_generation() {
    let f = read(true, Some("libsystemd-shared-258.so"));
    assert_eq!(
        choose(&f),
        Choice {
            record: SkipRecord::Systemd258,
            reason: "/usr/bin/systemd-sysext has refresh-skip logic and links libsystemd-shared-258.so: systemd 258 has it only as Flatcar's backport, which reads the mutable mode as an integer".into()
        }
    );
    let f = read(true, Some("libsystemd-shared-262.so"));
    assert_eq!(
        choose(&f).reason,
        "/usr/bin/systemd-sysext has refresh-skip logic and links libsystemd-shared-262.so: systemd 262 reads upstream's record"
    );
    assert_eq!(record(&f), SkipRecord::Systemd260);
    // Flatcar Beta/Alpha: 260.1.
    assert_eq!(
        record(&flatcar(
            read(true, Some("libsystemd-shared-260.so")),
            "4757.1.0"
        )),
        SkipRecord::Systemd260
    );
    // Flatcar main's 259.4 nightlies carried a string-mode backport.
    assert_eq!(
        record(&read(true, Some("libsystemd-shared-259.so"))),
        SkipRecord::Systemd260
    );
    // The binary's own library beats a build number and another library lying around.
    let f = libs(
        flatcar(read(true, Some("libsystemd-shared-260.so")), "4694.1.1"),
        &["/usr/lib64/systemd/libsystemd-shared-258.so"],
    );
    assert_eq!(record(&f), SkipRecord::Systemd260);
}

#[test]
fn a_version_before_258_with_skip_logic_gets_upstreams_record_and_says_so() {
    let f = read(true, Some("libsystemd-shared-257.3-1.fc42.so"));
    assert_eq!(
        choose(&f),
        Choice {
            record: SkipRecord::Systemd260,
            reason: "/usr/bin/systemd-sysext has refresh-skip logic and links libsystemd-shared-257.3-1.fc42.so, but no systemd 257 is known to have it: writing upstream's record".into()
        }
    );
}

#[test]
fn without_a_linked_library_the_library_directory_then_the_build_number_decide() {
    let f = libs(
        read(true, None),
        &["/usr/lib64/systemd/libsystemd-shared-258.so"],
    );
    assert_eq!(
        choose(&f).reason,
        "/usr/bin/systemd-sysext has refresh-skip logic and the root holds /usr/lib64/systemd/libsystemd-shared-258.so: systemd 258 has it only as Flatcar's backport, which reads the mutable mode as an integer"
    );
    assert_eq!(record(&f), SkipRecord::Systemd258);
    let f = flatcar(read(true, None), "4669.0.0");
    assert_eq!(
        choose(&f),
        Choice {
            record: SkipRecord::Systemd258,
            reason: "/usr/bin/systemd-sysext has refresh-skip logic, its systemd version is not in the root's files, and Flatcar build 4669 ships the 258 backport (integer mutable mode)".into()
        }
    );
    for other in ["4757.1.0", "4593.2.5", "4700.0.0"] {
        assert_eq!(
            record(&flatcar(read(true, None), other)),
            SkipRecord::Systemd260,
            "{other}"
        );
    }
    assert_eq!(
        choose(&read(true, None)).reason,
        "/usr/bin/systemd-sysext has refresh-skip logic and its systemd version is not in the root's files: writing upstream's record"
    );
}

#[test]
fn without_the_binary_the_flatcar_build_decides_first() {
    let missing = || facts(Binary::Missing);
    assert_eq!(
        choose(&flatcar(missing(), "4593.2.5")),
        Choice {
            record: SkipRecord::NoSkipLogic,
            reason: "/usr/bin/systemd-sysext is not in the root; Flatcar 4593.2.5 (build 4593) ships no refresh-skip record".into()
        }
    );
    assert_eq!(
        choose(&flatcar(missing(), "4081.3.10")).record,
        SkipRecord::NoSkipLogic,
        "LTS 255.8"
    );
    for b in ["4628.1.2", "4669.0.0", "4694.1.1"] {
        assert_eq!(
            record(&flatcar(missing(), b)),
            SkipRecord::Systemd258,
            "{b}"
        );
    }
    assert_eq!(
        choose(&flatcar(missing(), "4790.0.0")).reason,
        "/usr/bin/systemd-sysext is not in the root; Flatcar 4790.0.0 (build 4790) ships the systemd 260+ refresh-skip record (string mutable mode, mountOptions)"
    );
    // A build number no branch had says nothing: the library does.
    let f = libs(
        flatcar(missing(), "4700.0.0"),
        &["/usr/lib64/systemd/libsystemd-shared-255.so"],
    );
    assert_eq!(record(&f), SkipRecord::NoSkipLogic);
}

#[test]
fn without_the_binary_elsewhere_only_an_unambiguous_library_major_counts() {
    let missing = || facts(Binary::Missing);
    let f = libs(
        missing(),
        &["/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-262.so"],
    );
    assert_eq!(
        choose(&f),
        Choice {
            record: SkipRecord::Systemd260,
            reason: "/usr/bin/systemd-sysext is not in the root; /usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-262.so is systemd 262, which reads upstream's record".into()
        }
    );
    let f = libs(missing(), &["/usr/lib/systemd/libsystemd-shared-252.so"]);
    assert_eq!(
        choose(&f).reason,
        "/usr/bin/systemd-sysext is not in the root; /usr/lib/systemd/libsystemd-shared-252.so is systemd 252, which has no refresh-skip logic"
    );
    assert_eq!(record(&f), SkipRecord::NoSkipLogic);
    // 258 and 259 upstream have no skip logic, Flatcar's 258 has: the library cannot tell.
    for ambiguous in [
        &["/usr/lib64/systemd/libsystemd-shared-258.so"][..],
        &[
            "/usr/lib/systemd/libsystemd-shared-257.so",
            "/usr/lib64/systemd/libsystemd-shared-262.so",
        ][..],
        &[][..],
    ] {
        let f = libs(missing(), ambiguous);
        assert_eq!(
            choose(&f),
            Choice {
                record: SkipRecord::Systemd260,
                reason: "/usr/bin/systemd-sysext is not in the root and no other file tells its systemd generation: writing upstream's record".into()
            },
            "{ambiguous:?}"
        );
    }
    let f = facts(Binary::Unreadable(
        "larger than the 67108864 bytes allowed".into(),
    ));
    assert_eq!(
        choose(&f).reason,
        "/usr/bin/systemd-sysext cannot be read (larger than the 67108864 bytes allowed) and no other file tells its systemd generation: writing upstream's record"
    );
}

#[test]
fn the_major_comes_from_the_shared_lib_tag() {
    assert_eq!(major_of_shared_lib("libsystemd-shared-262.so"), Some(262));
    assert_eq!(
        major_of_shared_lib("libsystemd-shared-257.3-1.fc42.so"),
        Some(257)
    );
    for no in [
        "libsystemd-shared-.so",
        "libsystemd-shared-abc.so",
        "libsystemd-core-262.so",
        "libsystemd-shared-262.so.0",
    ] {
        assert_eq!(major_of_shared_lib(no), None, "{no}");
    }
}

#[test]
fn choices_serialize_with_their_format_names() {
    let c = Choice {
        record: SkipRecord::Systemd258,
        reason: "r".into(),
    };
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        r#"{"format":"systemd-258","reason":"r"}"#
    );
    for r in [
        SkipRecord::NoSkipLogic,
        SkipRecord::Systemd258,
        SkipRecord::Systemd260,
    ] {
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            serde_json::json!(r.as_str())
        );
    }
    assert_eq!(Choice::legacy().record, SkipRecord::Systemd260);
}
