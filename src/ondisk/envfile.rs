//! systemd's env-file parser (os-release(5) syntax), ported from src/basic/env-file.c.

use anyhow::Result;
use std::collections::BTreeMap;
/// Key/value pairs of an os-release or extension-release file.
pub type ReleaseData = BTreeMap<String, String>;

/// A problem found while parsing an env file; the affected entry was not stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseWarning {
    /// 1-based line on which the entry starts.
    pub line: usize,
    /// What was wrong and that the entry was ignored.
    pub message: String,
}

// systemd's WHITESPACE / NEWLINE / COMMENTS / SHELL_NEED_ESCAPE: ASCII only, and '\r' is a newline.
pub(crate) const WHITESPACE: &[u8] = b" \t\n\r";
const NEWLINE: &[u8] = b"\n\r";
const COMMENTS: &[u8] = b"#;";
const SHELL_NEED_ESCAPE: &[u8] = b"\"\\`$";

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    PreKey,
    Key,
    PreValue,
    Value,
    ValueEscape,
    SingleQuote,
    DoubleQuote,
    DoubleQuoteEscape,
    Comment,
}

/// The locals of systemd's `parse_env_file_internal()` plus the results.
#[derive(Default)]
struct EnvParser {
    data: ReleaseData,
    /// `true` marks problems for which systemd refuses the whole file.
    warnings: Vec<(bool, ParseWarning)>,
    key: Vec<u8>,
    value: Vec<u8>,
    last_key_ws: Option<usize>,
    last_value_ws: Option<usize>,
    key_line: usize,
}

impl EnvParser {
    fn warn(&mut self, fatal: bool, message: String) {
        let line = self.key_line;
        self.warnings.push((fatal, ParseWarning { line, message }));
    }

    fn no_equals(&mut self) {
        let k = String::from_utf8_lossy(&std::mem::take(&mut self.key)).into_owned();
        self.warn(false, format!("line {k:?} has no '=', ignored"));
    }

    /// End the entry like systemd's push path: chomp trailing whitespace (unquoted only), validate.
    fn finish(&mut self, chomp_value: bool) {
        let (mut key, mut value) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.value),
        );
        if let (true, Some(n)) = (chomp_value, self.last_value_ws) {
            value.truncate(n);
        }
        if let Some(n) = self.last_key_ws {
            key.truncate(n);
        }
        let Some(key) = systemd_utf8(&key) else {
            let k = String::from_utf8_lossy(&key).into_owned();
            return self.warn(true, format!("invalid UTF-8 in key {k:?}, entry ignored"));
        };
        let Some(value) = systemd_utf8(&value) else {
            let v = String::from_utf8_lossy(&value).into_owned();
            return self.warn(
                true,
                format!("invalid UTF-8 in the value of {key}: {v:?}, entry ignored"),
            );
        };
        if !env_name_is_valid(key) {
            return self.warn(false, format!("invalid key name {key:?}, entry ignored"));
        }
        self.data.insert(key.to_owned(), value.to_owned());
    }
}

fn track_ws(last: &mut Option<usize>, len: usize, c: u8) {
    if !WHITESPACE.contains(&c) {
        *last = None;
    } else if last.is_none() {
        *last = Some(len);
    }
}

/// UTF-8 as systemd's `utf8_is_valid()` sees it: the Unicode noncharacters are refused too.
pub(crate) fn systemd_utf8(bytes: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(bytes).ok()?;
    let nonchar =
        |c: char| (0xFDD0..=0xFDEF).contains(&(c as u32)) || (c as u32 & 0xFFFE) == 0xFFFE;
    (!s.chars().any(nonchar)).then_some(s)
}

fn env_name_is_valid(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// A port of systemd's env-file automaton (src/basic/env-file.c), byte for byte. One state
/// machine in one function on purpose (longer than our ~80 lines): split up, it could no longer
/// be read against systemd's switch statement.
fn parse_detailed(bytes: &[u8]) -> EnvParser {
    let mut e = EnvParser {
        key_line: 1,
        ..Default::default()
    };
    // read_full_stream() refuses embedded NULs (EBADMSG) before any parsing happens.
    if let Some(pos) = bytes.iter().position(|b| *b == 0) {
        e.key_line = 1 + bytes[..pos].iter().filter(|b| **b == b'\n').count();
        e.warn(
            true,
            format!("embedded NUL byte at offset {pos}; the whole file is unusable"),
        );
        return e;
    }
    let (mut state, mut line) = (State::PreKey, 1);
    for &c in bytes {
        let (ws, nl) = (WHITESPACE.contains(&c), NEWLINE.contains(&c));
        state = match state {
            State::PreKey if COMMENTS.contains(&c) => State::Comment,
            State::PreKey if ws => State::PreKey,
            State::PreKey => {
                (e.key_line, e.last_key_ws) = (line, None);
                e.key.push(c);
                State::Key
            }
            State::Key if nl => {
                e.no_equals();
                State::PreKey
            }
            State::Key if c == b'=' => {
                e.last_value_ws = None;
                State::PreValue
            }
            State::Key => {
                track_ws(&mut e.last_key_ws, e.key.len(), c);
                e.key.push(c);
                State::Key
            }
            State::PreValue if nl => {
                e.finish(false);
                State::PreKey
            }
            State::PreValue if c == b'\'' => State::SingleQuote,
            State::PreValue if c == b'"' => State::DoubleQuote,
            State::PreValue if c == b'\\' => State::ValueEscape,
            State::PreValue if ws => State::PreValue,
            State::PreValue => {
                e.value.push(c);
                State::Value
            }
            State::Value if nl => {
                e.finish(true);
                State::PreKey
            }
            State::Value if c == b'\\' => {
                e.last_value_ws = None;
                State::ValueEscape
            }
            State::Value => {
                track_ws(&mut e.last_value_ws, e.value.len(), c);
                e.value.push(c);
                State::Value
            }
            State::ValueEscape => {
                if !nl {
                    e.value.push(c);
                }
                State::Value
            }
            State::SingleQuote if c == b'\'' => State::PreValue,
            State::DoubleQuote if c == b'"' => State::PreValue,
            State::DoubleQuote if c == b'\\' => State::DoubleQuoteEscape,
            State::SingleQuote | State::DoubleQuote => {
                e.value.push(c);
                state
            }
            State::DoubleQuoteEscape => {
                if SHELL_NEED_ESCAPE.contains(&c) {
                    e.value.push(c);
                } else if c != b'\n' {
                    // Like the shell: an unknown escape keeps its backslash.
                    e.value.extend_from_slice(&[b'\\', c]);
                }
                State::DoubleQuote
            }
            // Since v254 a trailing backslash no longer continues a comment.
            State::Comment if nl => State::PreKey,
            State::Comment => State::Comment,
        };
        if c == b'\n' {
            line += 1;
        }
    }
    match state {
        State::Key => e.no_equals(),
        State::PreKey | State::Comment => {}
        s => e.finish(s == State::Value),
    }
    e
}

/// Parse env-file (os-release(5)) text exactly like systemd's `parse_env_file`; bad entries become warnings.
pub fn parse_env(text: &str) -> (ReleaseData, Vec<ParseWarning>) {
    parse_env_bytes(text.as_bytes())
}

/// Like [`parse_env`] for raw file contents (invalid UTF-8 and NUL bytes are reported, never panicked on).
pub fn parse_env_bytes(bytes: &[u8]) -> (ReleaseData, Vec<ParseWarning>) {
    let p = parse_detailed(bytes);
    (p.data, p.warnings.into_iter().map(|(_, w)| w).collect())
}

/// Parse file contents with systemd's refusals: `Err` carries the problem for which systemd
/// refuses the whole file (NUL byte, invalid UTF-8); `Ok` carries the data and the warnings
/// about entries that were left out.
pub fn parse_env_strict(bytes: &[u8]) -> Result<(ReleaseData, Vec<ParseWarning>), ParseWarning> {
    let parsed = parse_detailed(bytes);
    if let Some((_, w)) = parsed.warnings.iter().find(|(fatal, _)| *fatal) {
        return Err(w.clone());
    }
    let warnings = parsed.warnings.into_iter().map(|(_, w)| w).collect();
    Ok((parsed.data, warnings))
}
