//! fstab as glibc's getmntent() reads it, hostile input included.

use super::*;

/// (line, fsname, dir, fstype, options) of each entry, lossily as text.
fn entries(data: &[u8]) -> Vec<(usize, String, String, String, String)> {
    let s = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    parse_fstab(data)
        .iter()
        .map(|e| (e.line, s(&e.fsname), s(&e.dir), s(&e.fstype), s(&e.options)))
        .collect()
}

fn e(line: usize, f: &[&str; 4]) -> (usize, String, String, String, String) {
    (line, f[0].into(), f[1].into(), f[2].into(), f[3].into())
}

#[test]
fn comments_blank_lines_blanks_and_missing_fields() {
    let text = b"# /etc/fstab\n\n   \t\n  # indented comment\n\
        LABEL=var\t /var  ext4 defaults,nofail 0 2\n\
        /dev/vdc /srv#x xfs   \t \n\
        /dev/vdd\n\
        UUID=1 /data";
    assert_eq!(
        entries(text),
        [
            e(5, &["LABEL=var", "/var", "ext4", "defaults,nofail"]),
            e(6, &["/dev/vdc", "/srv#x", "xfs", ""]),
            e(7, &["/dev/vdd", "", "", ""]),
            e(8, &["UUID=1", "/data", "", ""]),
        ]
    );
    assert!(parse_fstab(b"").is_empty());
    assert!(parse_fstab(b"\n\n#only\n").is_empty());
}

#[test]
fn escapes_are_decode_name() {
    let text = br"LABEL=my\040var /var\040x\011y\012z ext4 a\134b,c\\d,e\041f,g\ 0 0";
    assert_eq!(
        entries(text),
        [e(
            1,
            &["LABEL=my var", "/var x\ty\nz", "ext4", r"a\b,c\d,e\041f,g\"]
        )]
    );
    assert_eq!(decode_name(br"\\040"), br"\040");
    assert_eq!(decode_name(br"\04"), br"\04");
}

#[test]
fn a_carriage_return_is_not_a_blank() {
    assert_eq!(
        entries(b"LABEL=v /var ext4 rw\r\nLABEL=w /var\r\n"),
        [
            e(1, &["LABEL=v", "/var", "ext4", "rw\r"]),
            e(2, &["LABEL=w", "/var\r", "", ""])
        ]
    );
}

/// A NUL ends the line's text, and since the newline then lies beyond the C string, glibc
/// takes the line as cut and its skipping eats the next line too.
#[test]
fn nul_bytes_cut_the_line_and_swallow_the_next() {
    let text = b"/dev/a /x\0junk\nLABEL=v /var ext4 rw\n/dev/b /y\n";
    assert_eq!(
        entries(text),
        [
            e(1, &["/dev/a", "/x", "", ""]),
            e(3, &["/dev/b", "/y", "", ""])
        ]
    );
    // The skipping goes on while the lines it reads hold a NUL too, up to and including the
    // first line without one; line numbers stay true.
    let text = b"a /1\0\nb /2\0\nc /3\nd /4\n";
    assert_eq!(
        entries(text),
        [e(1, &["a", "/1", "", ""]), e(4, &["d", "/4", "", ""])]
    );
    assert!(parse_fstab(b"\0\0\0\n\0").is_empty());
}

#[test]
fn long_lines_are_cut_at_the_getmntent_buffer() {
    // 4094 bytes and a newline fit: the line is whole, trailing blanks dropped.
    let mut fits = b"LABEL=a /var ext4 ".to_vec();
    fits.resize(LINE_MAX - 1, b' ');
    fits.extend_from_slice(b"\nLABEL=b /srv\n");
    assert_eq!(
        entries(&fits),
        [
            e(1, &["LABEL=a", "/var", "ext4", ""]),
            e(2, &["LABEL=b", "/srv", "", ""])
        ]
    );
    // A 5000-byte device name: cut at 4095 bytes, the rest of the line (its mount point)
    // skipped, the next line read whole with its own number.
    let mut long = b"LABEL=".to_vec();
    long.resize(5000, b'v');
    long.extend_from_slice(b" /var ext4\nLABEL=b /var xfs\n");
    let got = parse_fstab(&long);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].fsname.len(), got[0].dir.as_slice()),
        (LINE_MAX, &b""[..])
    );
    assert_eq!(
        (
            got[1].line,
            got[1].fsname.as_slice(),
            got[1].fstype.as_slice()
        ),
        (2, &b"LABEL=b"[..], &b"xfs"[..])
    );
    // Exactly 4095 bytes before the newline: cut (no room for it), the newline skipped.
    let mut edge = vec![b'x'; LINE_MAX];
    edge.extend_from_slice(b"\n/dev/c /z\n");
    let got = entries(&edge);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], e(2, &["/dev/c", "/z", "", ""]));
}

#[test]
fn autofs_entries_with_ignore_are_skipped() {
    let text =
        b"auto.net /net autofs ignore,x\nauto.x /x autofs ignorex\nauto.y /y autofs ro,ignore=1\n";
    assert_eq!(
        entries(text),
        [e(2, &["auto.x", "/x", "autofs", "ignorex"])]
    );
}

#[test]
fn huge_input_is_parsed_in_bounded_pieces() {
    // 2 MiB of short entries; and one 3 MiB line without any newline at all.
    let many = b"LABEL=x /mnt ext4\n".repeat(2 << 16);
    let got = parse_fstab(&many);
    assert_eq!(
        (got.len(), got.last().map(|e| e.line)),
        (2 << 16, Some(2 << 16))
    );
    let one = parse_fstab(&vec![b'a'; 3 << 20]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].fsname.len(), LINE_MAX);
}

proptest::proptest! {
    #[test]
    fn any_bytes_give_entries_in_line_order(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let got = parse_fstab(&data);
        let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
        proptest::prop_assert!(got.iter().all(|e| !e.fsname.is_empty() && e.line <= lines));
        proptest::prop_assert!(got.windows(2).all(|w| w[0].line < w[1].line));
    }
}

#[test]
fn option_tests_are_fstab_util() {
    assert!(test_option(
        b"rw,x-systemd.automount",
        &["x-systemd.automount"]
    ));
    assert!(test_option(b"noauto=1", &["noauto"]), "name=value counts");
    assert!(!test_option(b"noautox,xnoauto", &["noauto"]));
    assert!(
        !test_option(br"a\,noauto", &["noauto"]),
        "an escaped comma does not split"
    );
    assert!(
        test_option(br"a\\,noauto", &["noauto"]),
        "an escaped backslash does"
    );
    assert!(!test_option(b"", &["noauto"]));
    // The last of the pair wins.
    assert!(yes_no_option(b"auto,noauto", "noauto", "auto"));
    assert!(!yes_no_option(b"noauto,auto", "noauto", "auto"));
    assert!(!yes_no_option(b"defaults", "noauto", "auto"));
    assert_eq!(
        last_option(b"fail,x,nofail,y", &["nofail", "fail"]),
        Some("nofail")
    );
    assert_eq!(last_option(b",,,", &["nofail"]), None);
}
