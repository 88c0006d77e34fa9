//! Unit tests of `vpick`.

use super::*;

fn v(version: &str, arch: Option<&str>, left: Option<u64>, done: Option<u64>) -> VersionedName {
    VersionedName {
        version: version.into(),
        architecture: arch.map(str::to_string),
        tries_left: left,
        tries_done: done,
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn picked<'a>(list: &'a [String], basename: &str, suffix: &str, native: &str) -> Option<&'a str> {
    pick(list, basename, suffix, native).map(|i| list[i].as_str())
}

/// test-vpick.c's choice with an explicit `filter.architecture`: only that architecture matches.
fn pick_explicit<'a>(
    list: &'a [String],
    basename: &str,
    suffix: &str,
    arch: &str,
) -> Option<&'a str> {
    let native = native_architecture();
    let mut best: Option<(usize, VersionedName)> = None;
    for (i, n) in list.iter().enumerate() {
        let Some(p) = parse_versioned(n, basename, suffix) else {
            continue;
        };
        if p.architecture.as_deref() != Some(arch) {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(b, bv)| compare_choices(&p, n, bv, &list[*b], native).is_gt())
        {
            best = Some((i, p));
        }
    }
    best.map(|(i, _)| list[i].as_str())
}

#[test]
fn parse_plain_and_suffixes() {
    assert_eq!(
        parse_versioned("foo_1.0", "foo", ""),
        Some(v("1.0", None, None, None))
    );
    assert_eq!(
        parse_versioned("foo_1.0.raw", "foo", ".raw"),
        Some(v("1.0", None, None, None))
    );
    assert_eq!(
        parse_versioned("foo_1.0.raw", "foo", ""),
        Some(v("1.0.raw", None, None, None))
    );
    assert_eq!(parse_versioned("foo_1.0", "foo", ".raw"), None);
    assert_eq!(parse_versioned("foo-1.0.raw", "foo", ".raw"), None);
    assert_eq!(parse_versioned("foobar_1.raw", "foo", ".raw"), None);
    assert_eq!(parse_versioned("foo_.raw", "foo", ".raw"), None);
    assert_eq!(
        parse_versioned("foo_1.0.sysext.raw", "foo", ".sysext.raw"),
        Some(v("1.0", None, None, None))
    );
    // empty basename: the whole name (minus suffix) is parsed
    assert_eq!(
        parse_versioned("1.2.raw", "", ".raw"),
        Some(v("1.2", None, None, None))
    );
}

#[test]
fn parse_architecture() {
    assert_eq!(
        parse_versioned("foo_7_x86-64.raw", "foo", ".raw"),
        Some(v("7", Some("x86-64"), None, None))
    );
    assert_eq!(
        parse_versioned("foo_5_ia64.raw", "foo", ".raw"),
        Some(v("5", Some("ia64"), None, None))
    );
    // unknown "architecture" after the last '_' is still cut off (vpick.c chops unconditionally)
    assert_eq!(
        parse_versioned("foo_1_2.raw", "foo", ".raw"),
        Some(v("1", None, None, None))
    );
    assert_eq!(
        parse_versioned("foo_1.0_rc1", "foo", ""),
        Some(v("1.0", None, None, None))
    );
    // architecture names are case sensitive
    assert_eq!(
        parse_versioned("foo_1_X86-64", "foo", ""),
        Some(v("1", None, None, None))
    );
}

#[test]
fn parse_tries_counters() {
    assert_eq!(
        parse_versioned("quux_2_s390+4-6.raw", "quux", ".raw"),
        Some(v("2", Some("s390"), Some(4), Some(6)))
    );
    assert_eq!(
        parse_versioned("foo_3+5", "foo", ""),
        Some(v("3", None, Some(5), Some(0)))
    );
    assert_eq!(
        parse_versioned("foo_3+0-10", "foo", ""),
        Some(v("3", None, Some(0), Some(10)))
    );
    // not a counter: stays in the version, which allows '+'
    assert_eq!(
        parse_versioned("foo_3+x", "foo", ""),
        Some(v("3+x", None, None, None))
    );
    assert_eq!(
        parse_versioned("foo_3+1-", "foo", ""),
        Some(v("3+1-", None, None, None))
    );
    // the last '+' is the counter
    assert_eq!(
        parse_versioned("foo_1+2+3", "foo", ""),
        Some(v("1+2", None, Some(3), Some(0)))
    );
    // strtoul base 0: leading zero is octal, and 8/9 then make it no counter
    assert_eq!(
        parse_versioned("foo_1+010", "foo", ""),
        Some(v("1", None, Some(8), Some(0)))
    );
    assert_eq!(
        parse_versioned("foo_1+09", "foo", ""),
        Some(v("1+09", None, None, None))
    );
    // must fit an unsigned int
    assert_eq!(
        parse_versioned("foo_1+4294967295", "foo", "")
            .unwrap()
            .tries_left,
        Some(4294967295)
    );
    assert_eq!(
        parse_versioned("foo_1+4294967296", "foo", ""),
        Some(v("1+4294967296", None, None, None))
    );
}

#[test]
fn parse_rejects_invalid_versions() {
    // '~' and '^' are not allowed in vpick versions (version_is_valid)
    assert_eq!(parse_versioned("foo_1.0~rc1", "foo", ""), None);
    assert_eq!(parse_versioned("foo_1.0^p1", "foo", ""), None);
    assert_eq!(parse_versioned("foo_1 0", "foo", ""), None);
    assert_eq!(
        parse_versioned("foo_1,0", "foo", ""),
        Some(v("1,0", None, None, None))
    );
    // no '_' left, so no architecture field: "x86-64" is taken as the version
    assert_eq!(
        parse_versioned("foo_x86-64", "foo", ""),
        Some(v("x86-64", None, None, None))
    );
}

/// The enumeration case of test-vpick.c `TEST(path_pick)`.
#[test]
fn test_vpick_foo_v() {
    let mut list = names(&[
        "foo_5.5.raw",
        "foo_55.raw",
        "foo_5.raw",
        "foo_5_ia64.raw",
        "foo_7.raw",
        "foo_7_x86-64.raw",
        "foo_55_x86-64.raw",
        "foo_55_x86.raw",
        "foo_99_x86.raw",
        "foo_100_sparc.raw",
        "quux_1_s390.raw",
        "quux_2_s390+4-6.raw",
        "quux_3_s390+0-10.raw",
    ]);

    // on x86-64 (x86 is secondary) the highest version wins even if it is the secondary arch
    assert_eq!(
        picked(&list, "foo", ".raw", "x86-64"),
        Some("foo_99_x86.raw")
    );
    assert_eq!(picked(&list, "foo", ".raw", "x86"), Some("foo_99_x86.raw"));

    assert_eq!(
        pick_explicit(&list, "foo", ".raw", "x86-64"),
        Some("foo_55_x86-64.raw")
    );
    assert_eq!(
        pick_explicit(&list, "foo", ".raw", "ia64"),
        Some("foo_5_ia64.raw")
    );
    assert_eq!(pick_explicit(&list, "foo", ".raw", "cris"), None);

    list.retain(|n| n != "foo_99_x86.raw");
    assert_eq!(
        picked(&list, "foo", ".raw", "x86-64"),
        Some("foo_55_x86-64.raw")
    );
    assert_eq!(picked(&list, "foo", ".raw", "x86"), Some("foo_55_x86.raw"));

    // the tries counter: +0 is deprioritised even though its version is higher
    assert_eq!(
        pick_explicit(&list, "quux", ".raw", "s390"),
        Some("quux_2_s390+4-6.raw")
    );
    assert_eq!(
        picked(&list, "quux", ".raw", "s390x"),
        Some("quux_2_s390+4-6.raw")
    );
}

#[test]
fn pick_version_order() {
    let list = names(&["foo_1.10", "foo_1.9", "foo_1.2", "foo_1.10.1"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_1.10.1"));
    let list = names(&["foo_9", "foo_10", "foo_9.99"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_10"));
    // strverscmp: a release after '-' is newer than the bare version
    let list = names(&["foo_10-1", "foo_10"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_10-1"));
}

#[test]
fn pick_arch_preference_native_then_secondary_then_none() {
    let list = names(&["foo_1", "foo_1_x86", "foo_1_x86-64", "foo_1_arm64"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_1_x86-64"));
    let list = names(&["foo_1", "foo_1_x86", "foo_1_arm64"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_1_x86"));
    assert_eq!(picked(&list, "foo", "", "arm64"), Some("foo_1_arm64"));
    let list = names(&["foo_1", "foo_2_arm64"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_1"));
    // foreign architecture only: nothing eligible
    let list = names(&["foo_2_arm64", "foo_3_sparc"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), None);
    // riscv64 has no secondary architecture
    let list = names(&["foo_1_riscv32", "foo_1"]);
    assert_eq!(picked(&list, "foo", "", "riscv64"), Some("foo_1"));
}

#[test]
fn pick_tries() {
    // exhausted entries (tries_left == 0) lose against any other, whatever the version
    let list = names(&["foo_9+0", "foo_1+1"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_1+1"));
    // ...but are still picked when they are all there is
    let list = names(&["foo_9+0-3", "foo_8+0"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_9+0-3"));
    // same version: more tries left, then fewer done
    let list = names(&["foo_1+2", "foo_1+3-5"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_1+3-5"));
    let list = names(&["foo_1+3-1", "foo_1+3-5", "foo_1+3-0"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_1+3-0"));
    // no counter counts as UINT_MAX tries left, so it beats a counted entry of the same version
    let list = names(&["foo_1+3", "foo_1"]);
    assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_1"));
}

#[test]
fn pick_file_name_breaks_ties() {
    // "1" and "01" are the same version; the file name decides, independent of list order
    for list in [names(&["foo_01", "foo_1"]), names(&["foo_1", "foo_01"])] {
        assert_eq!(picked(&list, "foo", "", "x86-64"), Some("foo_1"));
    }
    assert_eq!(pick(&[], "foo", "", "x86-64"), None);
}

#[test]
fn compare_is_antisymmetric_on_samples() {
    let samples = [
        (v("1", None, None, None), "a"),
        (v("1", Some("x86-64"), None, None), "b"),
        (v("1", Some("x86"), Some(0), Some(1)), "c"),
        (v("2", None, Some(3), Some(0)), "d"),
        (v("2", None, Some(3), Some(2)), "e"),
    ];
    for (a, an) in &samples {
        for (b, bn) in &samples {
            assert_eq!(
                compare_choices(a, an, b, bn, "x86-64"),
                compare_choices(b, bn, a, an, "x86-64").reverse()
            );
        }
    }
}

#[test]
fn native_architecture_is_a_systemd_name() {
    assert!(ARCHITECTURES.contains(&native_architecture()));
    if cfg!(target_arch = "x86_64") {
        assert_eq!(native_architecture(), "x86-64");
        assert_eq!(secondary_architecture("x86-64"), Some("x86"));
    }
}

#[test]
fn safe_atou_matches_strtoul_base0() {
    assert_eq!(safe_atou_digits("0"), Some(0));
    assert_eq!(safe_atou_digits("7"), Some(7));
    assert_eq!(safe_atou_digits("017"), Some(15));
    assert_eq!(safe_atou_digits("018"), None);
    assert_eq!(safe_atou_digits(""), None);
    assert_eq!(safe_atou_digits("99999999999999999999999"), None);
}
