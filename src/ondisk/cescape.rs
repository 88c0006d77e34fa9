//! C-style escaping compatible with systemd's `cescape()` / `cunescape()` (`src/basic/escape.c`).
//!
//! systemd stores the overlay work directory in the meta file `work_dir` as `cescape(path)` and
//! reads it back with `cunescape_length(…, flags=0)` on unmerge, so both directions must match
//! byte for byte.

use std::fmt;

/// Why [`cunescape`] refused its input (systemd returns `-EINVAL` for all of these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CunescapeError {
    /// Byte offset of the offending backslash in the input.
    pub offset: usize,
    /// What is wrong with the escape sequence.
    pub reason: &'static str,
}

impl fmt::Display for CunescapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid escape sequence at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for CunescapeError {}

/// Escape one byte the way `cescape_char()` does; returns the bytes to emit.
fn escape_byte(b: u8, out: &mut String) {
    let simple = match b {
        0x07 => Some('a'),
        0x08 => Some('b'),
        0x0c => Some('f'),
        b'\n' => Some('n'),
        b'\r' => Some('r'),
        b'\t' => Some('t'),
        0x0b => Some('v'),
        b'\\' => Some('\\'),
        b'"' => Some('"'),
        b'\'' => Some('\''),
        _ => None,
    };
    if let Some(c) = simple {
        out.push('\\');
        out.push(c);
    } else if !(b' '..127).contains(&b) {
        // systemd prefers octal over \xNN here "because glib's g_strescape() does the same".
        out.push('\\');
        out.push(char::from(b'0' + (b >> 6)));
        out.push(char::from(b'0' + ((b >> 3) & 7)));
        out.push(char::from(b'0' + (b & 7)));
    } else {
        out.push(char::from(b));
    }
}

/// systemd `cescape()`: `\a \b \f \n \r \t \v \\ \" \'`, other bytes < 0x20 or >= 0x7f as octal `\NNN`.
///
/// The result is always printable ASCII, so it fits on one line of a file.
pub fn cescape(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        escape_byte(b, &mut out);
    }
    out
}

fn unhex(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

fn unoct(b: u8) -> Option<u32> {
    char::from(b).to_digit(8)
}

/// Encode a code point as UTF-8 the way systemd's `utf8_encode_unichar()` does (surrogates included).
fn encode_unichar(c: u32, out: &mut Vec<u8>) {
    if c < 0x80 {
        out.push(c as u8);
    } else if c < 0x800 {
        out.push(0xc0 | (c >> 6) as u8);
        out.push(0x80 | (c & 0x3f) as u8);
    } else if c < 0x10000 {
        out.push(0xe0 | (c >> 12) as u8);
        out.push(0x80 | ((c >> 6) & 0x3f) as u8);
        out.push(0x80 | (c & 0x3f) as u8);
    } else {
        out.push(0xf0 | ((c >> 18) & 0x07) as u8);
        out.push(0x80 | ((c >> 12) & 0x3f) as u8);
        out.push(0x80 | ((c >> 6) & 0x3f) as u8);
        out.push(0x80 | (c & 0x3f) as u8);
    }
}

/// systemd's `unichar_is_valid()`, applied to `\U` escapes only (as upstream does).
fn unichar_is_valid(c: u32) -> bool {
    c < 0x11_0000
        && (c & 0xffff_f800) != 0xd800
        && !(0xfdd0..=0xfdef).contains(&c)
        && (c & 0xfffe) != 0xfffe
}

/// Parse the escape after a backslash (`cunescape_one()` with `accept_nul=false`).
/// Returns the consumed length and the bytes to emit.
fn unescape_one(p: &[u8], out: &mut Vec<u8>) -> Result<usize, &'static str> {
    let first = *p.first().ok_or("trailing backslash")?;
    let simple = match first {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' => Some(b'\\'),
        b'"' => Some(b'"'),
        b'\'' => Some(b'\''),
        // An XDG extension systemd also accepts.
        b's' => Some(b' '),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(b);
        return Ok(1);
    }
    match first {
        b'x' => {
            if p.len() < 3 {
                return Err("\\x needs two hex digits");
            }
            let a = unhex(p[1]).ok_or("\\x needs two hex digits")?;
            let b = unhex(p[2]).ok_or("\\x needs two hex digits")?;
            if a == 0 && b == 0 {
                return Err("NUL bytes are not allowed");
            }
            // Hex and octal escapes are raw bytes, not code points.
            out.push(((a << 4) | b) as u8);
            Ok(3)
        }
        b'u' | b'U' => {
            let n = if first == b'u' { 4 } else { 8 };
            if p.len() < n + 1 {
                return Err("\\u needs 4 and \\U needs 8 hex digits");
            }
            let mut c: u32 = 0;
            for &d in &p[1..=n] {
                c = (c << 4) | unhex(d).ok_or("\\u needs 4 and \\U needs 8 hex digits")?;
            }
            if c == 0 {
                return Err("NUL characters are not allowed");
            }
            if first == b'U' && !unichar_is_valid(c) {
                return Err("invalid code point");
            }
            encode_unichar(c, out);
            Ok(n + 1)
        }
        b'0'..=b'7' => {
            if p.len() < 3 {
                return Err("octal escapes need three digits");
            }
            let a = unoct(p[0]).ok_or("octal escapes need three digits")?;
            let b = unoct(p[1]).ok_or("octal escapes need three digits")?;
            let c = unoct(p[2]).ok_or("octal escapes need three digits")?;
            if a == 0 && b == 0 && c == 0 {
                return Err("NUL bytes are not allowed");
            }
            let m = (a << 6) | (b << 3) | c;
            if m > 255 {
                return Err("octal escape above 255");
            }
            out.push(m as u8);
            Ok(3)
        }
        _ => Err("unknown escape"),
    }
}

/// systemd `cunescape()` with no flags: the inverse of [`cescape`], plus `\s`, `\xNN`, `\uNNNN`,
/// `\UNNNNNNNN` and octal `\NNN`. NUL and unknown escapes are errors, as upstream.
pub fn cunescape(input: &str) -> Result<Vec<u8>, CunescapeError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let used = unescape_one(&bytes[i + 1..], &mut out)
            .map_err(|reason| CunescapeError { offset: i, reason })?;
        i += 1 + used;
    }
    Ok(out)
}

/// The byte ranges of `s` between the separators `sep` that no backslash escapes (an escape
/// is taken as the backslash and the byte after it; the pieces keep their escapes). Empty
/// pieces count; there is always at least one.
pub fn split_unescaped(s: &[u8], sep: u8) -> Vec<std::ops::Range<usize>> {
    let mut pieces = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < s.len() {
        if s[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i] == sep {
            pieces.push(start..i);
            start = i + 1;
        }
        i += 1;
    }
    pieces.push(start.min(s.len())..s.len());
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_paths_are_unchanged() {
        assert_eq!(
            cescape(b"var/lib/extensions.mutable/.systemd-usr-workdir"),
            "var/lib/extensions.mutable/.systemd-usr-workdir"
        );
        assert_eq!(cescape(b""), "");
    }

    #[test]
    fn named_escapes_match_cescape_char() {
        assert_eq!(
            cescape(b"\x07\x08\x0c\n\r\t\x0b\\\"'"),
            "\\a\\b\\f\\n\\r\\t\\v\\\\\\\"\\'"
        );
    }

    #[test]
    fn non_printable_bytes_are_octal_not_hex() {
        assert_eq!(cescape(b"\x01"), "\\001");
        assert_eq!(cescape(b"\x1f"), "\\037");
        assert_eq!(cescape(b"\x7f"), "\\177");
        // Non-ASCII UTF-8 is escaped byte by byte (c >= 127).
        assert_eq!(cescape("é".as_bytes()), "\\303\\251");
        assert_eq!(cescape(b" ~"), " ~");
    }

    #[test]
    fn cunescape_accepts_every_systemd_form() {
        assert_eq!(cunescape("a\\x41\\101\\sb").unwrap(), b"aAA b");
        assert_eq!(cunescape("\\u00e9").unwrap(), "é".as_bytes());
        assert_eq!(cunescape("\\U0001F600").unwrap(), "😀".as_bytes());
        assert_eq!(cunescape("\\303\\251").unwrap(), "é".as_bytes());
        assert_eq!(cunescape("\\xff").unwrap(), vec![0xff]);
        assert_eq!(
            cunescape("\\a\\b\\f\\n\\r\\t\\v\\\\\\\"\\'").unwrap(),
            b"\x07\x08\x0c\n\r\t\x0b\\\"'"
        );
    }

    #[test]
    fn cunescape_rejects_like_systemd_without_relax() {
        for bad in [
            "\\",
            "x\\",
            "\\q",
            "\\x00",
            "\\000",
            "\\u0000",
            "\\400",
            "\\x4",
            "\\xZZ",
            "\\12",
            "\\U00110000",
            "\\UFFFFFFFF",
        ] {
            assert!(cunescape(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(cunescape("ab\\q").unwrap_err().offset, 2);
    }

    #[test]
    fn split_unescaped_keeps_escapes_and_empty_pieces() {
        let pieces = |s: &str| -> Vec<String> {
            split_unescaped(s.as_bytes(), b',')
                .into_iter()
                .map(|r| s[r].to_string())
                .collect()
        };
        assert_eq!(pieces(""), [""]);
        assert_eq!(pieces(",a,,b,"), ["", "a", "", "b", ""]);
        assert_eq!(pieces(r"a\,b\\,c"), [r"a\,b\\", "c"]);
        assert_eq!(pieces("ä\\ö,x\\"), ["ä\\ö", "x\\"]);
    }

    proptest! {
        #[test]
        fn round_trip_without_nul(bytes in proptest::collection::vec(1u8..=255, 0..64)) {
            prop_assert_eq!(cunescape(&cescape(&bytes)).unwrap(), bytes);
        }

        #[test]
        fn output_is_one_printable_line(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = cescape(&bytes);
            prop_assert!(s.bytes().all(|b| (b' '..127).contains(&b)));
        }
    }
}
