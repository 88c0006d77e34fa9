//! Version comparison exactly as systemd's `strverscmp_improved()`
//! (`src/fundamental/string-util-fundamental.c`), used for layer order and vpick.

use std::cmp::Ordering;
use std::ffi::c_char;

fn is_valid_version_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'~' | b'-' | b'^' | b'.')
}

/// systemd's `CMP(x, y)` on booleans: `true` sorts after `false`.
fn cmp_bool(a: bool, b: bool) -> Ordering {
    a.cmp(&b)
}

/// The byte at `i`, or NUL past the end, so the loop reads like the C it mirrors.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn span(s: &[u8], from: usize, pred: fn(&u8) -> bool) -> usize {
    from + s
        .get(from..)
        .map_or(0, |rest| rest.iter().take_while(|c| pred(c)).count())
}

/// C strings end at the first NUL; a Rust string may carry one, so cut there like systemd would.
fn c_str(s: &str) -> &[u8] {
    let b = s.as_bytes();
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// systemd's strverscmp_improved (exact algorithm incl. '~' pre-release, '-'/'^' handling, leading zeros, non-alnum separators).
///
/// Segments are numeric or alphabetic; `~` marks the oldest (pre-release) segment, `-` separates
/// version and release, `^` marks a patched release, `.` a point release, every other character
/// is a separator. Numeric segments ignore leading zeros and beat alphabetic ones.
///
/// One function on purpose (longer than our ~80 lines): it follows systemd's loop statement by
/// statement, so the two can be compared side by side (src/fundamental/string-util-fundamental.c).
pub fn strverscmp_improved(a: &str, b: &str) -> Ordering {
    let (a, b) = (c_str(a), c_str(b));
    let (mut i, mut j) = (0usize, 0usize);

    loop {
        while at(a, i) != 0 && !is_valid_version_char(at(a, i)) {
            i += 1;
        }
        while at(b, j) != 0 && !is_valid_version_char(at(b, j)) {
            j += 1;
        }

        if at(a, i) == b'~' || at(b, j) == b'~' {
            let r = cmp_bool(at(a, i) != b'~', at(b, j) != b'~');
            if r != Ordering::Equal {
                return r;
            }
            i += 1;
            j += 1;
        }

        // After a '~' the next byte was not filtered, so it may be any byte: compare it the way C
        // compares `char`, whose signedness depends on the target (signed on x86, unsigned on arm).
        if at(a, i) == 0 || at(b, j) == 0 {
            return (at(a, i) as c_char).cmp(&(at(b, j) as c_char));
        }

        for sep in [b'-', b'^', b'.'] {
            if at(a, i) == sep || at(b, j) == sep {
                let r = cmp_bool(at(a, i) != sep, at(b, j) != sep);
                if r != Ordering::Equal {
                    return r;
                }
                i += 1;
                j += 1;
            }
        }

        let (aa, bb);
        if at(a, i).is_ascii_digit() || at(b, j).is_ascii_digit() {
            aa = span(a, i, u8::is_ascii_digit);
            bb = span(b, j, u8::is_ascii_digit);

            // A numeric segment is newer than an empty one (i.e. an alphabetic one).
            let r = cmp_bool(aa != i, bb != j);
            if r != Ordering::Equal {
                return r;
            }

            while at(a, i) == b'0' {
                i += 1;
            }
            while at(b, j) == b'0' {
                j += 1;
            }

            let r = (aa - i).cmp(&(bb - j));
            if r != Ordering::Equal {
                return r;
            }

            let r = a[i..aa].cmp(&b[j..bb]);
            if r != Ordering::Equal {
                return r;
            }
        } else {
            aa = span(a, i, u8::is_ascii_alphabetic);
            bb = span(b, j, u8::is_ascii_alphabetic);

            let n = (aa - i).min(bb - j);
            let r = a[i..i + n].cmp(&b[j..j + n]);
            if r != Ordering::Equal {
                return r;
            }

            let r = (aa - i).cmp(&(bb - j));
            if r != Ordering::Equal {
                return r;
            }
        }

        i = aa;
        j = bb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Ordering::{Equal, Greater, Less};

    fn newer(older: &str, newer: &str) {
        assert_eq!(
            strverscmp_improved(older, newer),
            Less,
            "{older:?} < {newer:?}"
        );
        assert_eq!(
            strverscmp_improved(newer, older),
            Greater,
            "{newer:?} > {older:?}"
        );
        assert_eq!(
            strverscmp_improved(older, older),
            Equal,
            "{older:?} == itself"
        );
        assert_eq!(
            strverscmp_improved(newer, newer),
            Equal,
            "{newer:?} == itself"
        );
    }

    fn cmp(a: &str, b: &str) -> Ordering {
        strverscmp_improved(a, b)
    }

    /// `TEST(strverscmp_improved)` in systemd's src/test/test-string-util.c: every later entry is newer.
    #[test]
    fn systemd_version_ladder() {
        const VERSIONS: &[&str] = &[
            "~1",
            "",
            "ab",
            "abb",
            "abc",
            "0001",
            "002",
            "12",
            "122",
            "122.9",
            "123~rc1",
            "123",
            "123-a",
            "123-a.1",
            "123-a1",
            "123-a1.1",
            "123-3",
            "123-3.1",
            "123^patch1",
            "123^1",
            "123.a-1",
            "123.1-1",
            "123a-1",
            "124",
        ];
        for (n, p) in VERSIONS.iter().enumerate() {
            for q in &VERSIONS[n + 1..] {
                newer(p, q);
            }
        }
    }

    #[test]
    fn systemd_release_pairs() {
        newer("123.45-67.88", "123.45-67.89");
        newer("123.45-67.89", "123.45-67.89a");
        newer("123.45-67.ab", "123.45-67.89");
        newer("123.45-67.9", "123.45-67.89");
        newer("123.45-67", "123.45-67.89");
        newer("123.45-66.89", "123.45-67.89");
        newer("123.45-9.99", "123.45-67.89");
        newer("123.42-99.99", "123.45-67.89");
        newer("123-99.99", "123.45-67.89");

        // '~': pre-releases
        newer("123~rc1-99.99", "123.45-67.89");
        newer("123~rc1-99.99", "123-45.67.89");
        newer("123~rc1-99.99", "123~rc2-67.89");
        newer("123~rc1-99.99", "123^aa2-67.89");
        newer("123~rc1-99.99", "123aa2-67.89");

        // '-': separator between version and release
        newer("123-99.99", "123.45-67.89");
        newer("123-99.99", "123^aa2-67.89");
        newer("123-99.99", "123aa2-67.89");

        // '^': patch releases
        newer("123^45-67.89", "123.45-67.89");
        newer("123^aa1-99.99", "123^aa2-67.89");
        newer("123^aa2-67.89", "123aa2-67.89");

        // '.': point release
        newer("123.aa2-67.89", "123aa2-67.89");
        newer("123.aa2-67.89", "123.ab2-67.89");
    }

    #[test]
    fn systemd_corner_cases() {
        // invalid characters
        assert_eq!(cmp("123_aa2-67.89", "123aa+2-67.89"), Equal);

        assert_eq!(cmp("123.", "123"), Greater); // one more version segment
        assert_eq!(cmp("12_3", "123"), Less); // 12 < 123
        assert_eq!(cmp("12_3", "12"), Greater); // 3 > ''
        assert_eq!(cmp("12_3", "12.3"), Greater); // 3 > ''
        assert_eq!(cmp("123.0", "123"), Greater); // 0 > ''
        assert_eq!(cmp("123_0", "123"), Greater); // 0 > ''
        assert_eq!(cmp("123..0", "123.0"), Less); // '' < 0

        // empty strings or strings with ignored characters only
        assert_eq!(cmp("", ""), Equal);
        assert_eq!(cmp("0_", "0"), Equal);
        assert_eq!(cmp("_0_", "0"), Equal);
        assert_eq!(cmp("_0", "0"), Equal);
        assert_eq!(cmp("0", "0___"), Equal);
        assert_eq!(cmp("", "_"), Equal);
        assert_eq!(cmp("_", ""), Equal);
        assert_eq!(cmp("_", "_"), Equal);
        assert_eq!(cmp("", "~"), Greater);
        assert_eq!(cmp("~", ""), Less);
        assert_eq!(cmp("~", "~"), Equal);

        // non-ASCII digits are not digits
        assert_eq!(cmp("1٠١٢٣٤٥٦٧٨٩", "1"), Equal);
        assert_eq!(cmp("1๐๑๒๓๔๕๖๗๘๙", "1"), Equal);
    }

    /// `TEST(strverscmp_improved_rpm)`: rpm's rpmvercmp.at cases as systemd keeps them.
    #[test]
    fn systemd_rpm_table() {
        const CASES: &[(&str, &str, Ordering)] = &[
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0", "1.0", Greater),
            ("2.0.1", "2.0.1", Equal),
            ("2.0", "2.0.1", Less),
            ("2.0.1", "2.0", Greater),
            ("2.0.1a", "2.0.1a", Equal),
            ("2.0.1a", "2.0.1", Greater),
            ("2.0.1", "2.0.1a", Less),
            ("5.5p1", "5.5p1", Equal),
            ("5.5p1", "5.5p2", Less),
            ("5.5p2", "5.5p1", Greater),
            ("5.5p10", "5.5p10", Equal),
            ("5.5p1", "5.5p10", Less),
            ("5.5p10", "5.5p1", Greater),
            ("10xyz", "10.1xyz", Greater), // reversed from rpm
            ("10.1xyz", "10xyz", Less),    // reversed from rpm
            ("xyz10", "xyz10", Equal),
            ("xyz10", "xyz10.1", Less),
            ("xyz10.1", "xyz10", Greater),
            ("xyz.4", "xyz.4", Equal),
            ("xyz.4", "8", Less),
            ("8", "xyz.4", Greater),
            ("xyz.4", "2", Less),
            ("2", "xyz.4", Greater),
            ("5.5p2", "5.6p1", Less),
            ("5.6p1", "5.5p2", Greater),
            ("5.6p1", "6.5p1", Less),
            ("6.5p1", "5.6p1", Greater),
            ("6.0.rc1", "6.0", Greater),
            ("6.0", "6.0.rc1", Less),
            ("10b2", "10a1", Greater),
            ("10a2", "10b2", Less),
            ("1.0aa", "1.0aa", Equal),
            ("1.0a", "1.0aa", Less),
            ("1.0aa", "1.0a", Greater),
            ("10.0001", "10.0001", Equal),
            ("10.0001", "10.1", Equal),
            ("10.1", "10.0001", Equal),
            ("10.0001", "10.0039", Less),
            ("10.0039", "10.0001", Greater),
            ("4.999.9", "5.0", Less),
            ("5.0", "4.999.9", Greater),
            ("20101121", "20101121", Equal),
            ("20101121", "20101122", Less),
            ("20101122", "20101121", Greater),
            ("2_0", "2_0", Equal),
            ("2.0", "2_0", Less),    // rpm: equal
            ("2_0", "2.0", Greater), // rpm: equal
            ("a", "a", Equal),
            ("a+", "a+", Equal),
            ("a+", "a_", Equal),
            ("a_", "a+", Equal),
            ("+a", "+a", Equal),
            ("+a", "_a", Equal),
            ("_a", "+a", Equal),
            ("+_", "+_", Equal),
            ("_+", "+_", Equal),
            ("_+", "_+", Equal),
            ("+", "_", Equal),
            ("_", "+", Equal),
            ("1.0~rc1", "1.0~rc1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0~rc1", Greater),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc2", "1.0~rc1", Greater),
            ("1.0~rc1~git123", "1.0~rc1~git123", Equal),
            ("1.0~rc1~git123", "1.0~rc1", Less),
            ("1.0~rc1", "1.0~rc1~git123", Greater),
            ("1.0^", "1.0^", Equal),
            ("1.0^", "1.0", Greater),
            ("1.0", "1.0^", Less),
            ("1.0^git1", "1.0^git1", Equal),
            ("1.0^git1", "1.0", Greater),
            ("1.0", "1.0^git1", Less),
            ("1.0^git1", "1.0^git2", Less),
            ("1.0^git2", "1.0^git1", Greater),
            ("1.0^git1", "1.01", Less),
            ("1.01", "1.0^git1", Greater),
            ("1.0^20160101", "1.0^20160101", Equal),
            ("1.0^20160101", "1.0.1", Less),
            ("1.0.1", "1.0^20160101", Greater),
            ("1.0^20160101^git1", "1.0^20160101^git1", Equal),
            ("1.0^20160102", "1.0^20160101^git1", Greater),
            ("1.0^20160101^git1", "1.0^20160102", Less),
            ("1.0~rc1^git1", "1.0~rc1^git1", Equal),
            ("1.0~rc1^git1", "1.0~rc1", Greater),
            ("1.0~rc1", "1.0~rc1^git1", Less),
            ("1.0^git1~pre", "1.0^git1~pre", Equal),
            ("1.0^git1", "1.0^git1~pre", Greater),
            ("1.0^git1~pre", "1.0^git1", Less),
            // rpm oddities systemd documents
            ("1b.fc17", "1b.fc17", Equal),
            ("1b.fc17", "1.fc17", Greater),
            ("1.fc17", "1b.fc17", Less),
            ("1g.fc17", "1g.fc17", Equal),
            ("1g.fc17", "1.fc17", Greater),
            ("1.fc17", "1g.fc17", Less),
            ("1.1.α", "1.1.α", Equal),
            ("1.1.α", "1.1.β", Equal),
            ("1.1.β", "1.1.α", Equal),
            ("1.1.αα", "1.1.α", Equal),
            ("1.1.α", "1.1.ββ", Equal),
            ("1.1.ββ", "1.1.αα", Equal),
        ];
        for (a, b, want) in CASES {
            assert_eq!(cmp(a, b), *want, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn extension_names_layer_as_expected() {
        newer("a_9", "a_10");
        newer("foo_1.2", "foo_1.10");
        newer("foo_1.0~rc1", "foo_1.0");
        newer("foo_01", "foo_2");
        assert_eq!(cmp("foo_01", "foo_1"), Equal);
        newer("app", "zoo");
        // A numeric segment beats a letter segment, so digit-led names layer above letter-led ones.
        newer("flatcar-docker", "00-flatcar-default");
    }

    #[test]
    fn embedded_nul_ends_the_string_like_c() {
        assert_eq!(cmp("1.0\0zzz", "1.0"), Equal);
    }

    /// Right after a '~' C compares a raw `char`; its signedness follows the target.
    #[test]
    fn byte_after_tilde_uses_c_char_signedness() {
        let r = cmp("~\u{e9}", "~");
        if (0xc3u8 as c_char) < 0 {
            assert_eq!(r, Less);
        } else {
            assert_eq!(r, Greater);
        }
        assert_eq!(cmp("~", "~\u{e9}"), r.reverse());
    }

    proptest! {
        #[test]
        fn reflexive(a in "\\PC{0,12}") {
            prop_assert_eq!(strverscmp_improved(&a, &a), Equal);
        }

        #[test]
        fn antisymmetric(a in "[0-9a-z.~^_+-]{0,10}", b in "[0-9a-z.~^_+-]{0,10}") {
            prop_assert_eq!(strverscmp_improved(&a, &b), strverscmp_improved(&b, &a).reverse());
        }

        #[test]
        fn antisymmetric_any_text(a in "\\PC{0,10}", b in "\\PC{0,10}") {
            prop_assert_eq!(strverscmp_improved(&a, &b), strverscmp_improved(&b, &a).reverse());
        }

        #[test]
        fn numbers_compare_numerically(x in 0u64..1_000_000, y in 0u64..1_000_000, zeros in 0usize..4) {
            let padded = format!("{}{x}", "0".repeat(zeros));
            prop_assert_eq!(strverscmp_improved(&padded, &y.to_string()), x.cmp(&y));
        }
    }
}
