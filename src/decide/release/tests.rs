//! Unit tests of `release`.

use super::*;
use anyhow::Result;
use proptest::prelude::*;
use ImageClass::{Confext, Sysext};

type Pairs<'a> = &'a [(&'a str, &'a str)];
/// label, class, host os-release, host scope, extension-release, expected verdict
type Row<'a> = (
    &'a str,
    ImageClass,
    Pairs<'a>,
    Scope,
    Option<Pairs<'a>>,
    Want,
);
/// label, image name, exact file exists, candidates, expected pick
type PickRow<'a> = (
    &'a str,
    &'a str,
    bool,
    Vec<ReleaseCandidate>,
    Result<Option<String>, String>,
);

fn data(pairs: &[(&str, &str)]) -> ReleaseData {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn host_with(pairs: &[(&str, &str)], scope: Scope) -> HostInfo {
    HostInfo::from_release(&data(pairs), scope, "x86-64", Path::new("/etc/os-release")).unwrap()
}

#[test]
fn parser_cases_match_systemd_env_file() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, Pairs)] = &[
        ("plain pairs", "A=1\nB=two\n", &[("A", "1"), ("B", "two")]),
        ("whitespace around key and value is trimmed", "  A  =   x y  \t\n", &[("A", "x y")]),
        ("# and ; comments after leading whitespace", "# c\n  ; c2\nA=1\n", &[("A", "1")]),
        ("# inside a value is literal", "A=x # no comment\n", &[("A", "x # no comment")]),
        ("double quotes keep whitespace", "A=\"  a b  \"\n", &[("A", "  a b  ")]),
        ("double-quote escapes \\\" \\\\ \\` \\$", r#"A="q\" b\\ t\` d\$""#, &[("A", "q\" b\\ t` d$")]),
        ("other escapes in double quotes keep the backslash", r#"A="a\nb\'c""#, &[("A", r"a\nb\'c")]),
        ("backslash-newline in double quotes is eaten", "A=\"ab\\\ncd\"\n", &[("A", "abcd")]),
        ("raw newline inside double quotes is kept", "A=\"a\nb\"\n", &[("A", "a\nb")]),
        ("single quotes are literal", r#"A='a\b \$ \"'"#, &[("A", r#"a\b \$ \""#)]),
        ("unquoted backslash escapes any char", r#"A=a\ b\\c\"d"#, &[("A", r#"a b\c"d"#)]),
        ("escaped trailing space survives the chomp", "A=foo\\ \n", &[("A", "foo ")]),
        ("unquoted continuation keeps next-line indent", "A=a \\\n  b\nB=2", &[("A", "a   b"), ("B", "2")]),
        ("quoted and unquoted parts concatenate", "A=\"foo\"'bar'baz\n", &[("A", "foobarbaz")]),
        ("whitespace after a closing quote is dropped", "A=\"foo\" bar\n", &[("A", "foobar")]),
        ("quotes after unquoted text are literal", "A=foo \"bar\"\n", &[("A", "foo \"bar\"")]),
        ("empty values", "A=\nB=\"\"\nC=''\n", &[("A", ""), ("B", ""), ("C", "")]),
        ("duplicate keys: last wins", "A=1\nA=2\n", &[("A", "2")]),
        ("missing final newline", "A=1", &[("A", "1")]),
        ("unterminated quote at EOF keeps the text", "A=\"abc", &[("A", "abc")]),
        ("backslash at EOF", "A=x\\", &[("A", "x")]),
        ("CRLF line endings", "A=1\r\nB=\"2\"\r\n", &[("A", "1"), ("B", "2")]),
        ("bare CR is a line break", "A=1\rB=2\r", &[("A", "1"), ("B", "2")]),
        ("CR inside quotes is literal", "A=\"x\ry\"\n", &[("A", "x\ry")]),
        ("backslash-CRLF unquoted: CR eaten, LF ends value", "A=foo\\\r\nB=1\n", &[("A", "foo"), ("B", "1")]),
        ("comment with trailing backslash does not continue (v254+)", "# c \\\nA=1\n", &[("A", "1")]),
        ("lowercase keys are valid names", "id_x=1\n", &[("id_x", "1")]),
    ];
    for (label, text, want) in cases {
        let (got, warnings) = parse_env(text);
        assert_eq!(got, data(want), "{label}: {text:?}");
        assert!(
            warnings.is_empty(),
            "{label}: unexpected warnings {warnings:?}"
        );
    }
}

#[test]
fn parser_ignores_bad_entries_with_warnings() {
    let (got, w) = parse_env("A=1\nNOEQUALS\n1BAD=x\nFOO-BAR=y\nK EY=z\nB=2\nTAIL");
    assert_eq!(got, data(&[("A", "1"), ("B", "2")]));
    assert_eq!(
        w.iter().map(|w| w.line).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 7],
        "{w:?}"
    );
    assert!(w[0].message.contains("NOEQUALS") && w[0].message.contains("'='"));
    assert!(w[1].message.contains("1BAD") && w[3].message.contains("K EY"));
}

#[test]
fn invalid_utf8_value_is_dropped_but_the_strict_parse_refuses_the_file() {
    let bytes = b"A=1\nB=\xff\xfe\nC=3\n";
    let (got, w) = parse_env_bytes(bytes);
    assert_eq!(got, data(&[("A", "1"), ("C", "3")]));
    assert_eq!((w.len(), w[0].line), (1, 2));
    assert!(w[0].message.contains("UTF-8"));
    // systemd's utf8_is_valid() also refuses noncharacters such as U+FFFE.
    assert!(parse_env("A=\u{fffe}\n").0.is_empty());
    let e = parse_env_strict(bytes).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("UTF-8"), "{}", e.message);
}

#[test]
fn embedded_nul_makes_the_file_unusable() {
    let (got, w) = parse_env_bytes(b"A=1\nB=\0\n");
    assert!(got.is_empty());
    assert_eq!(w[0].line, 2);
    let e = parse_env_strict(b"A=1\0").unwrap_err();
    assert!(e.message.contains("NUL"), "{}", e.message);
}

#[test]
fn the_strict_parse_keeps_good_lines_and_warns_about_bad_ones() {
    let (got, w) = parse_env_strict(b"ID=flatcar\nVERSION_ID=3815.2.0\nBAD LINE\n").unwrap();
    assert_eq!(got, data(&[("ID", "flatcar"), ("VERSION_ID", "3815.2.0")]));
    assert_eq!((w.len(), w[0].line), (1, 3));
}

proptest! {
    #[test]
    fn prop_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_env_bytes(&bytes);
    }

    #[test]
    fn prop_quoted_values_round_trip(key in "[A-Z_][A-Z0-9_]{0,10}", value in "\\PC{0,30}") {
        let escaped: String = value
            .chars()
            .flat_map(|c| "\"\\`$".contains(c).then_some('\\').into_iter().chain([c]))
            .collect();
        let dq = parse_env(&format!("{key}=\"{escaped}\"\n")).0;
        prop_assert_eq!(dq.get(&key), Some(&value));
        if !value.contains('\'') {
            let sq = parse_env(&format!("{key}='{value}'\n")).0;
            prop_assert_eq!(sq.get(&key), Some(&value));
        }
    }
}

/// Expected verdict; a reject names a field its reason must mention.
enum Want {
    Accept,
    Reject(&'static str),
}

#[test]
fn validation_rules_in_systemd_order() {
    use Want::{Accept, Reject};
    let h_ver: Pairs = &[("ID", "flatcar"), ("VERSION_ID", "3816.0.0")];
    let h_roll: Pairs = &[("ID", "arch"), ("ID_LIKE", "foo  bar")];
    let h_lvl: Pairs = &[
        ("ID", "flatcar"),
        ("VERSION_ID", "3816.0.0"),
        ("SYSEXT_LEVEL", "1.2"),
    ];
    let h_lvl_only: Pairs = &[("ID", "flatcar"), ("SYSEXT_LEVEL", "1.2")];
    let h_conf: Pairs = &[
        ("ID", "flatcar"),
        ("VERSION_ID", "1"),
        ("CONFEXT_LEVEL", "c1"),
        ("SYSEXT_LEVEL", "s1"),
    ];
    let (sys, ini) = (Scope::System, Scope::Initrd);
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("rule1: no release data", Sysext, h_ver, sys, None, Reject("release data")),
        ("rule1: empty release data", Sysext, h_ver, sys, Some(&[]), Reject("release data")),
        ("rule2: absent scope means system portable (system)", Sysext, h_roll, sys, Some(&[("ID", "arch")]), Accept),
        ("rule2: absent scope means system portable (portable)", Sysext, h_roll, Scope::Portable, Some(&[("ID", "arch")]), Accept),
        ("rule2: absent scope is rejected in the initrd", Sysext, h_roll, ini, Some(&[("ID", "arch")]), Reject("SYSEXT_SCOPE")),
        ("rule2 [QUIRK]: present-but-empty scope fails (system)", Sysext, h_roll, sys, Some(&[("ID", "arch"), ("SYSEXT_SCOPE", "")]), Reject("SYSEXT_SCOPE")),
        ("rule2 [QUIRK]: present-but-empty scope fails (initrd)", Sysext, h_roll, ini, Some(&[("ID", "arch"), ("SYSEXT_SCOPE", " ")]), Reject("SYSEXT_SCOPE")),
        ("rule2: scope list must contain the host scope", Sysext, h_roll, sys, Some(&[("ID", "arch"), ("SYSEXT_SCOPE", "initrd portable")]), Reject("SYSEXT_SCOPE=initrd portable")),
        ("rule2: whitespace-separated list incl. initrd", Sysext, h_roll, ini, Some(&[("ID", "arch"), ("SYSEXT_SCOPE", "system\tinitrd")]), Accept),
        ("rule2: confext reads CONFEXT_SCOPE only", Confext, h_roll, ini, Some(&[("ID", "arch"), ("SYSEXT_SCOPE", "initrd")]), Reject("CONFEXT_SCOPE")),
        ("rule2 before rule3: scope wins over arch", Sysext, h_roll, ini, Some(&[("ID", "arch"), ("ARCHITECTURE", "s390x")]), Reject("SCOPE")),
        ("rule3: ARCHITECTURE mismatch", Sysext, h_roll, sys, Some(&[("ID", "arch"), ("ARCHITECTURE", "arm64")]), Reject("ARCHITECTURE=arm64")),
        ("rule3: ARCHITECTURE=_any", Sysext, h_roll, sys, Some(&[("ID", "arch"), ("ARCHITECTURE", "_any")]), Accept),
        ("rule3: empty ARCHITECTURE is ignored", Sysext, h_roll, sys, Some(&[("ID", "arch"), ("ARCHITECTURE", "")]), Accept),
        ("rule3: matching ARCHITECTURE", Sysext, h_roll, sys, Some(&[("ID", "arch"), ("ARCHITECTURE", "x86-64")]), Accept),
        ("rule3 before rule4: arch mismatch beats ID=_any", Sysext, h_roll, sys, Some(&[("ID", "_any"), ("ARCHITECTURE", "arm64")]), Reject("ARCHITECTURE")),
        ("rule4: ID missing", Sysext, h_ver, sys, Some(&[("VERSION_ID", "3816.0.0")]), Reject("ID")),
        ("rule4: ID empty", Sysext, h_ver, sys, Some(&[("ID", ""), ("VERSION_ID", "3816.0.0")]), Reject("ID")),
        ("rule4: ID=_any skips VERSION_ID and LEVEL", Sysext, h_lvl, sys, Some(&[("ID", "_any"), ("VERSION_ID", "1"), ("SYSEXT_LEVEL", "9")]), Accept),
        ("rule5: ID mismatch", Sysext, h_ver, sys, Some(&[("ID", "fedora"), ("VERSION_ID", "3816.0.0")]), Reject("ID=fedora")),
        ("rule5: ID found in host ID_LIKE", Sysext, h_roll, sys, Some(&[("ID", "bar")]), Accept),
        ("rule5: ID_LIKE matches whole words only", Sysext, h_roll, sys, Some(&[("ID", "fo")]), Reject("ID_LIKE")),
        ("rule6: rolling host accepts any version", Sysext, h_roll, sys, Some(&[("ID", "arch"), ("VERSION_ID", "7"), ("SYSEXT_LEVEL", "3")]), Accept),
        ("rule7: equal LEVEL beats VERSION_ID mismatch", Sysext, h_lvl, sys, Some(&[("ID", "flatcar"), ("VERSION_ID", "1"), ("SYSEXT_LEVEL", "1.2")]), Accept),
        ("rule7: LEVEL mismatch", Sysext, h_lvl, sys, Some(&[("ID", "flatcar"), ("VERSION_ID", "3816.0.0"), ("SYSEXT_LEVEL", "1.3")]), Reject("SYSEXT_LEVEL=1.3")),
        ("rule7: LEVEL compared as strings", Sysext, h_lvl, sys, Some(&[("ID", "flatcar"), ("SYSEXT_LEVEL", "1.2.0")]), Reject("SYSEXT_LEVEL")),
        ("rule7: LEVEL mismatch also without host VERSION_ID", Sysext, h_lvl_only, sys, Some(&[("ID", "flatcar"), ("SYSEXT_LEVEL", "2")]), Reject("SYSEXT_LEVEL=2")),
        ("rule7: confext compares CONFEXT_LEVEL", Confext, h_conf, sys, Some(&[("ID", "flatcar"), ("CONFEXT_LEVEL", "c1"), ("SYSEXT_LEVEL", "x")]), Accept),
        ("rule8: no ext LEVEL falls back to VERSION_ID", Sysext, h_lvl, sys, Some(&[("ID", "flatcar"), ("VERSION_ID", "3816.0.0")]), Accept),
        ("rule8: host VERSION_ID but ext has none", Sysext, h_ver, sys, Some(&[("ID", "flatcar")]), Reject("VERSION_ID")),
        ("rule8: VERSION_ID mismatch", Sysext, h_ver, sys, Some(&[("ID", "flatcar"), ("VERSION_ID", "3815.0.0")]), Reject("VERSION_ID=3815.0.0")),
        ("rule8: VERSION_ID compared as strings", Sysext, h_ver, sys, Some(&[("ID", "flatcar"), ("VERSION_ID", "3816.0")]), Reject("VERSION_ID")),
        ("rule8: ext LEVEL but no host LEVEL", Sysext, h_ver, sys, Some(&[("ID", "flatcar"), ("VERSION_ID", "3816.0.0"), ("SYSEXT_LEVEL", "1")]), Accept),
        ("rule9 [QUIRK]: host LEVEL only; ext has neither", Sysext, h_lvl_only, sys, Some(&[("ID", "flatcar")]), Accept),
        ("rule9 [QUIRK]: host LEVEL only; ext VERSION_ID only", Sysext, h_lvl_only, sys, Some(&[("ID", "flatcar"), ("VERSION_ID", "0")]), Accept),
    ];
    for (label, class, host_pairs, scope, ext, want) in rows {
        let ext = ext.map(data);
        let got = validate(
            &host_with(host_pairs, *scope),
            *class,
            "myext",
            ext.as_ref(),
        );
        match (want, &got) {
            (Accept, Verdict::Accept) => {}
            (Reject(f), Verdict::Reject(r)) => {
                assert!(
                    r.to_string().contains(f),
                    "{label}: {r:?} does not mention {f}"
                )
            }
            _ => panic!("{label}: got {got:?}"),
        }
    }
}

#[test]
fn version_mismatch_message_is_a_full_explanation() {
    let host = host_with(
        &[("ID", "flatcar"), ("VERSION_ID", "3816.0.0")],
        Scope::System,
    );
    let ext = data(&[("ID", "flatcar"), ("VERSION_ID", "3815.0.0")]);
    let want = "VERSION_ID=3815.0.0 does not match the host's VERSION_ID=3816.0.0 \
                (and no common SYSEXT_LEVEL: the host declares none)";
    let Verdict::Reject(r) = validate(&host, Sysext, "x", Some(&ext)) else {
        panic!("a version mismatch must be rejected");
    };
    assert!(r.is_version_mismatch());
    assert_eq!(r.to_string(), want);
}

#[test]
fn upstream_test50_fixture() {
    let os =
        parse_env("ID=testtest\nID_LIKE=\"foobar test_alike something-else\"\nVERSION=1.2.3\n").0;
    let sys = HostInfo::from_release(
        &os,
        Scope::System,
        "x86-64",
        Path::new("/usr/lib/os-release"),
    )
    .unwrap();
    assert_eq!((sys.id_like.len(), sys.version_id.as_deref()), (3, None));
    let initrd = HostInfo {
        scope: Scope::Initrd,
        ..sys.clone()
    };
    let v = |h: &HostInfo, text: &str| validate(h, Sysext, "ext", Some(&parse_env(text).0));
    assert_eq!(v(&sys, "ID=_any\n"), Verdict::Accept, "ID=_any");
    assert_eq!(v(&sys, "ID=testtest\n"), Verdict::Accept, "#34 ID=testtest");
    assert_eq!(
        v(&sys, "ID=test_alike\n"),
        Verdict::Accept,
        "#35 ID=test_alike via ID_LIKE"
    );
    assert!(
        matches!(v(&sys, "ID=test\n"), Verdict::Reject(_)),
        "not a whole ID_LIKE word"
    );
    let scoped = "ID=testtest\nSYSEXT_SCOPE=initrd\n";
    assert!(
        matches!(v(&sys, scoped), Verdict::Reject(r) if r.to_string().contains("SYSEXT_SCOPE")),
        "#37 on system"
    );
    assert_eq!(
        v(&initrd, scoped),
        Verdict::Accept,
        "#37 initrd-only in the initrd"
    );
    assert!(
        matches!(v(&initrd, "ID=testtest\n"), Verdict::Reject(_)),
        "#37 default scope in initrd"
    );
}

#[test]
fn host_info_from_release_and_level() {
    let d = data(&[("ID", ""), ("VERSION_ID", "1")]);
    assert!(
        HostInfo::from_release(&d, Scope::System, "x86-64", Path::new("/x"))
            .unwrap_err()
            .contains("ID=")
    );
    let d = data(&[
        ("ID", "fc"),
        ("VERSION_ID", ""),
        ("SYSEXT_LEVEL", "s"),
        ("CONFEXT_LEVEL", ""),
    ]);
    let h = HostInfo::from_release(&d, Scope::Initrd, "arm64", Path::new("/x")).unwrap();
    assert_eq!((h.version_id.as_deref(), h.id_like.len()), (None, 0));
    assert_eq!((h.level(Sysext), h.level(Confext)), (Some("s"), None));
    assert_eq!(serde_json::to_value(&h).unwrap()["scope"], "initrd");
    assert_eq!(Scope::Portable.as_str(), "portable");
}

#[test]
fn architecture_table() {
    #[rustfmt::skip]
    let cases = [
        ("x86_64", "x86-64"), ("i386", "x86"), ("i686", "x86"), ("aarch64", "arm64"), ("aarch64_be", "arm64-be"),
        ("armv7l", "arm"), ("armv7b", "arm-be"), ("ppc64le", "ppc64-le"), ("ppc64", "ppc64"), ("ppcle", "ppc-le"),
        ("ppc", "ppc"), ("s390x", "s390x"), ("s390", "s390"), ("riscv64", "riscv64"), ("riscv32", "riscv32"),
        ("loongarch64", "loongarch64"), ("mips64", "mips64"), ("mips", "mips"), ("alpha", "alpha"),
        ("ia64", "ia64"), ("parisc64", "parisc64"), ("parisc", "parisc"), ("sh4", "sh"), ("sparc64", "sparc64"),
    ];
    for (machine, arch) in cases {
        assert_eq!(
            crate::decide::arch::from_machine(machine),
            Some(arch),
            "{machine}"
        );
    }
    assert_eq!(
        (
            crate::decide::arch::from_machine("x86-64"),
            crate::decide::arch::from_machine("vax")
        ),
        (None, None)
    );
    if cfg!(target_arch = "x86_64") {
        assert_eq!(crate::kernel::features::uname_architecture(), "x86-64");
    }
}

#[test]
fn release_name_stem_follows_path_extract_image_name() {
    #[rustfmt::skip]
    let cases = [
        ("foo", "foo"), ("foo_1.2", "foo"), ("foo+3-1", "foo"), ("foo.raw", "foo"), ("foo.sysext.raw", "foo"),
        ("foo.confext.raw", "foo"), ("foo_1.raw", "foo"), ("foo.v", "foo.v"), ("a.b_c+d", "a.b"), ("_x", ""),
    ];
    for (name, stem) in cases {
        assert_eq!(release_name_stem(name), stem, "{name}");
    }
}

#[test]
fn pick_release_file_rules() {
    let c = |f: &str, strict: Option<bool>| ReleaseCandidate {
        file_name: f.into(),
        strict,
    };
    let some = |f: &str| Ok(Some(f.to_owned()));
    let other_false = c("extension-release.other", Some(false));
    #[rustfmt::skip]
    let rows: Vec<PickRow> = vec![
        ("exact name wins", "foo", true, vec![other_false.clone()], some("extension-release.foo")),
        ("version suffix: foo_1.2 accepts extension-release.foo", "foo_1.2", false, vec![c("extension-release.foo", None)], some("extension-release.foo")),
        ("tries suffix: foo+3-1", "foo+3-1", false, vec![c("extension-release.foo", None)], some("extension-release.foo")),
        ("xattr false accepts another name", "foo", false, vec![other_false.clone()], some("extension-release.other")),
        ("xattr true and absent are skipped", "foo", false, vec![c("extension-release.a", Some(true)), c("extension-release.b", None)], Ok(None)),
        ("invalid stem skips even xattr-false files", "_1.2", false, vec![other_false.clone()], Ok(None)),
        ("backup, hidden, invalid and foreign names are not candidates", "foo", false,
         vec![c("extension-release.x.bak", Some(false)), c("extension-release.x~", Some(false)),
              c("extension-release..#x", Some(false)), c("extension-release.", Some(false)), c("other", Some(false))], Ok(None)),
    ];
    for (label, name, exact, cands, want) in rows {
        assert_eq!(pick_release_file(name, exact, &cands), want, "{label}");
    }
    let two = [c("extension-release.foo", None), other_false];
    let err = pick_release_file("foo_2", false, &two).unwrap_err();
    assert!(
        err.contains("extension-release.foo,") && err.contains("extension-release.other"),
        "{err}"
    );
    assert!(err.contains("'foo_2'"), "{err}");
    assert!(
        pick_release_file("a/b", false, &[]).is_err(),
        "invalid image name"
    );
}

#[test]
fn relaxed_lookup_takes_any_single_candidate() {
    let c = |f: &str, strict: Option<bool>| ReleaseCandidate {
        file_name: f.into(),
        strict,
    };
    let renamed = [c("extension-release.renamed", Some(true))];
    assert_eq!(pick_release_file("foo", false, &renamed), Ok(None));
    assert_eq!(
        pick_release_file_relaxed("foo", false, &renamed),
        Ok(Some("extension-release.renamed".to_owned()))
    );
    assert_eq!(
        pick_release_file_relaxed("foo", true, &renamed),
        Ok(Some("extension-release.foo".to_owned()))
    );
    // In a merged tree, every merged extension's file is a candidate: ambiguous.
    let merged = [
        c("extension-release.a", None),
        c("extension-release.b", None),
    ];
    assert!(pick_release_file_relaxed("foo", false, &merged).is_err());
    // The stem rule still applies, and invalid names are still not candidates.
    assert_eq!(pick_release_file_relaxed("_1", false, &renamed), Ok(None));
    assert_eq!(
        pick_release_file_relaxed("foo", false, &[c("extension-release.x~", None)]),
        Ok(None)
    );
}

#[test]
fn rejection_reasons_escape_control_characters_of_release_values() {
    let host = host_with(&[("ID", "debian"), ("VERSION_ID", "13")], Scope::System);
    // An unterminated quote makes ID span the rest of the file: one log line must stay one line.
    let (ext, _) = parse_env("ID=\"debian\nVERSION_ID=13\n");
    let Verdict::Reject(reason) = validate(&host, Sysext, "x", Some(&ext)) else {
        panic!("ID with a newline must not match");
    };
    let reason = reason.to_string();
    assert!(!reason.contains('\n'), "{reason:?}");
    assert!(reason.contains("ID=debian\\nVERSION_ID=13"), "{reason:?}");
    assert_eq!(shown("plain"), "plain");
    assert_eq!(shown("a\tb\u{1b}"), "a\\tb\\u{1b}");
}
