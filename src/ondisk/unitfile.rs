//! systemd unit files (and their drop-ins) read the way PID 1 reads them: `config_parse()` and
//! `parse_line()` in `src/shared/conf-parser.c`, with lines split as `read_line()` does
//! (`src/basic/fileio.c`). The result is every assignment with its section and line; what a
//! key means is the caller's business (a mount unit's `[Mount]` keys: `initrd::var::unit`).
//!
//! Hand-written rather than an INI crate: the crates on offer (rust-ini, configparser) unescape
//! and unquote values, know no line continuation of systemd's kind, take `\r` and NUL for
//! ordinary bytes and report no line numbers; each of those would make us read a different
//! `/var` than the booted system does. The rules, in the order systemd applies them:
//!
//! * a line ends at `\n`, `\r` or NUL; `\r\n` (and `\n\r`) is one end, a NUL ends a run;
//! * a line longer than [`LONG_LINE_MAX`] fails the whole file ("Line too long");
//! * a line whose first non-whitespace byte is `#` or `;` is a comment — also in the middle of
//!   a continuation, which goes on past it;
//! * a UTF-8 byte order mark is dropped at the start of a line until one has been seen;
//! * a line ending in an odd number of backslashes continues on the next one, the last
//!   backslash becoming a space;
//! * a logical line is stripped of whitespace; one that is not UTF-8 is ignored (warning);
//! * `[NAME]` starts a section; a `[` line not ending in `]` fails the whole file;
//! * `KEY=VALUE` outside a section, without `=`, or with an empty key is ignored (warning);
//!   key and value are stripped, the value is kept as written (no unquoting, no escapes).

/// systemd's `LONG_LINE_MAX` (1 MiB): a longer physical or logical line fails the file.
pub const LONG_LINE_MAX: usize = 1 << 20;
/// What `strstrip()` removes (`WHITESPACE`).
const WHITESPACE: &[u8] = b" \t\n\r";
/// `UTF8_BYTE_ORDER_MARK`.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// One `KEY=VALUE` inside a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The line systemd names for it: the last physical line of the logical line.
    pub line: usize,
    /// The section it is in (`Mount`).
    pub section: String,
    /// The key, stripped.
    pub key: String,
    /// The value, stripped, otherwise as written.
    pub value: String,
}

/// What systemd logs about one line: a warning (the line is ignored) or why the file is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The line systemd names.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    fn new(line: usize, message: impl Into<String>) -> Problem {
        Problem {
            line,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A parsed unit file: its assignments in order, and what systemd would warn about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitFile {
    /// Every assignment, in file order.
    pub assignments: Vec<Assignment>,
    /// One per ignored line.
    pub warnings: Vec<Problem>,
}

/// `read_line()`'s kinds of line end, as bits.
fn eol_kind(b: u8) -> u8 {
    match b {
        b'\n' => 1,
        b'\r' => 2,
        0 => 4,
        _ => 0,
    }
}

/// The physical lines of `data` without their ends (`read_line()` with its EOL rules).
fn physical_lines(data: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let start = i;
        while i < data.len() && eol_kind(data[i]) == 0 {
            i += 1;
        }
        lines.push(&data[start..i]);
        let mut seen = 0u8;
        while let Some(kind) = data.get(i).map(|&b| eol_kind(b)) {
            // A second end of a kind already seen, or anything after a NUL, starts a new line.
            if kind == 0 || seen & kind != 0 || seen & 4 != 0 {
                break;
            }
            seen |= kind;
            i += 1;
        }
    }
    lines
}

fn strip(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !WHITESPACE.contains(b));
    let Some(start) = start else {
        return &[];
    };
    let end = s
        .iter()
        .rposition(|b| !WHITESPACE.contains(b))
        .unwrap_or(start);
    &s[start..=end]
}

/// Whether `s` ends in an unescaped backslash (`config_parse()`'s `escaped` scan).
fn ends_escaped(s: &[u8]) -> bool {
    let mut escaped = false;
    for &b in s {
        escaped = if escaped { false } else { b == b'\\' };
    }
    escaped
}

/// Parser state across logical lines (`config_parse()`'s locals).
#[derive(Default)]
struct State {
    section: Option<String>,
    file: UnitFile,
}

/// Parse a unit file. `Err` is what makes systemd refuse the whole file (an invalid section
/// header, a line too long).
pub fn parse_unit_file(data: &[u8]) -> Result<UnitFile, Problem> {
    let mut state = State::default();
    let mut continuation: Option<Vec<u8>> = None;
    let mut bom_seen = false;
    let mut line = 0usize;
    for raw in physical_lines(data) {
        line += 1;
        if raw.len() > LONG_LINE_MAX {
            return Err(Problem::new(line, "line too long"));
        }
        let lead = raw.iter().position(|b| !WHITESPACE.contains(b));
        if lead.is_some_and(|i| matches!(raw[i], b'#' | b';')) {
            continue;
        }
        let mut l = raw;
        if !bom_seen {
            if let Some(rest) = raw.strip_prefix(BOM) {
                l = rest;
                bom_seen = true;
            }
        }
        let logical = match continuation.take() {
            Some(mut c) => {
                if c.len() + l.len() > LONG_LINE_MAX {
                    return Err(Problem::new(line, "continuation line too long"));
                }
                c.extend_from_slice(l);
                c
            }
            None => l.to_vec(),
        };
        if ends_escaped(&logical) {
            let mut logical = logical;
            if let Some(last) = logical.last_mut() {
                *last = b' ';
            }
            continuation = Some(logical);
            continue;
        }
        parse_line(&mut state, line, &logical)?;
    }
    if let Some(rest) = continuation {
        parse_line(&mut state, line + 1, &rest)?;
    }
    Ok(state.file)
}

/// One logical line (`parse_line()`).
fn parse_line(state: &mut State, line: usize, text: &[u8]) -> Result<(), Problem> {
    let l = strip(text);
    if l.is_empty() {
        return Ok(());
    }
    let Ok(l) = std::str::from_utf8(l) else {
        let warning = Problem::new(line, "not valid UTF-8, ignoring the line");
        state.file.warnings.push(warning);
        return Ok(());
    };
    if let Some(inner) = l.strip_prefix('[') {
        let Some(name) = inner.strip_suffix(']') else {
            return Err(Problem::new(line, format!("invalid section header '{l}'")));
        };
        state.section = Some(name.to_string());
        return Ok(());
    }
    let Some(section) = state.section.clone() else {
        let warning = Problem::new(line, "assignment outside of a section, ignoring");
        state.file.warnings.push(warning);
        return Ok(());
    };
    let warning = match l.split_once('=') {
        None => "missing '=', ignoring the line",
        Some(("", _)) => "missing key name before '=', ignoring the line",
        Some((key, value)) => {
            state.file.assignments.push(Assignment {
                line,
                section,
                key: trim(key).to_string(),
                value: trim(value).to_string(),
            });
            return Ok(());
        }
    };
    state.file.warnings.push(Problem::new(line, warning));
    Ok(())
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && WHITESPACE.contains(&(c as u8)))
}

#[cfg(test)]
mod tests;
