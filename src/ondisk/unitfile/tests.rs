//! Unit files as systemd's config_parse() reads them, hostile input included.

use super::*;

/// (line, section, key, value) of each assignment.
fn assignments(data: &[u8]) -> Vec<(usize, String, String, String)> {
    let file = parse_unit_file(data).unwrap_or_else(|p| panic!("refused: {p}"));
    file.assignments
        .into_iter()
        .map(|a| (a.line, a.section, a.key, a.value))
        .collect()
}

fn a(line: usize, section: &str, key: &str, value: &str) -> (usize, String, String, String) {
    (line, section.into(), key.into(), value.into())
}

fn warnings(data: &[u8]) -> Vec<String> {
    let file = parse_unit_file(data).unwrap_or_else(|p| panic!("refused: {p}"));
    file.warnings.iter().map(|p| p.to_string()).collect()
}

#[test]
fn sections_comments_whitespace_and_values_as_written() {
    let text = b"# Ignition\n; also a comment\n[Unit]\nBefore=local-fs.target\n\n\
        [Mount]\n  What = \"LABEL=v\"  \nWhere=/var\nOptions=a=b=c,x\\,y\n\
        [X-Extra]\nWhat=/dev/other\n";
    assert_eq!(
        assignments(text),
        [
            a(4, "Unit", "Before", "local-fs.target"),
            a(7, "Mount", "What", "\"LABEL=v\""),
            a(8, "Mount", "Where", "/var"),
            a(9, "Mount", "Options", "a=b=c,x\\,y"),
            a(11, "X-Extra", "What", "/dev/other"),
        ]
    );
}

#[test]
fn ignored_lines_are_warnings_with_their_numbers() {
    let text = b"What=/dev/early\n[Mount]\nnot an assignment\n=value\nWhat=\xff\xfe\nType=ext4\n";
    assert_eq!(
        warnings(text),
        [
            "line 1: assignment outside of a section, ignoring",
            "line 3: missing '=', ignoring the line",
            "line 4: missing key name before '=', ignoring the line",
            "line 5: not valid UTF-8, ignoring the line",
        ]
    );
    assert_eq!(assignments(text), [a(6, "Mount", "Type", "ext4")]);
}

#[test]
fn continuation_lines() {
    let text = b"[Mount]\nWhat=/dev/\\\n  vdb\nOptions=a,\\\n# comment inside\n; and another\nb\nX=y\\\\\n";
    assert_eq!(
        assignments(text),
        [
            a(3, "Mount", "What", "/dev/   vdb"),
            a(7, "Mount", "Options", "a, b"),
            a(8, "Mount", "X", "y\\\\"),
        ]
    );
    // A continuation left open at the end is parsed, one line further on.
    assert_eq!(
        assignments(b"[Mount]\nWhat=/dev/a\\"),
        [a(3, "Mount", "What", "/dev/a")]
    );
}

#[test]
fn line_ends_cr_crlf_and_nul() {
    let text = b"[Mount]\r\nWhat=/a\rType=ext4\0Options=ro\n\rWhere=/var\r\rA=1\0\nB=2";
    assert_eq!(
        assignments(text),
        [
            a(2, "Mount", "What", "/a"),
            a(3, "Mount", "Type", "ext4"),
            a(4, "Mount", "Options", "ro"),
            a(5, "Mount", "Where", "/var"),
            a(7, "Mount", "A", "1"),
            a(9, "Mount", "B", "2"),
        ]
    );
}

#[test]
fn byte_order_marks() {
    let text = b"\xef\xbb\xbf[Mount]\n\xef\xbb\xbfWhat=/a\n";
    // Dropped once, at the first line that has one; the second stays part of the key.
    assert_eq!(assignments(text), [a(2, "Mount", "\u{feff}What", "/a")]);
    assert_eq!(
        assignments(b"[Mount]\n\xef\xbb\xbfWhat=/b\n"),
        [a(2, "Mount", "What", "/b")]
    );
}

#[test]
fn what_refuses_the_whole_file() {
    let e = parse_unit_file(b"[Mount]\nWhat=/a\n[Mount\nType=ext4\n").unwrap_err();
    assert_eq!(e.to_string(), "line 3: invalid section header '[Mount'");
    assert!(parse_unit_file(b"[\n").is_err());
    assert_eq!(
        parse_unit_file(b"[]\nA=b\n").unwrap().assignments[0].section,
        ""
    );
    let mut long = b"[Mount]\nWhat=".to_vec();
    long.resize(LONG_LINE_MAX + 100, b'a');
    assert_eq!(
        parse_unit_file(&long).unwrap_err().to_string(),
        "line 2: line too long"
    );
    // Two halves each below the limit, joined by a continuation, above it.
    let mut cont = b"[Mount]\nWhat=".to_vec();
    cont.resize(LONG_LINE_MAX / 2 + 10, b'a');
    cont.extend_from_slice(b"\\\n");
    cont.resize(LONG_LINE_MAX + 40, b'b');
    assert_eq!(
        parse_unit_file(&cont).unwrap_err().to_string(),
        "line 3: continuation line too long"
    );
}

proptest::proptest! {
    #[test]
    fn any_bytes_give_stripped_assignments_in_line_order(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        if let Ok(file) = parse_unit_file(&data) {
            let ws: &[char] = &[' ', '\t', '\n', '\r'];
            for a in &file.assignments {
                proptest::prop_assert!(!a.key.is_empty());
                proptest::prop_assert_eq!(a.key.trim_matches(ws), a.key.as_str());
                proptest::prop_assert_eq!(a.value.trim_matches(ws), a.value.as_str());
            }
            proptest::prop_assert!(file.assignments.windows(2).all(|w| w[0].line <= w[1].line));
            proptest::prop_assert!(file.warnings.windows(2).all(|w| w[0].line <= w[1].line));
        }
    }
}
