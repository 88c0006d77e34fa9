//! `/etc/fstab` read the way systemd-fstab-generator reads it, and its option tests.
//!
//! The generator (`parse_fstab()` in `src/fstab-generator/fstab-generator.c`) reads the file
//! with glibc's `setmntent()`/`getmntent()`, so the format is glibc's (`get_mnt_entry()` in
//! `misc/mntent_r.c`), quirks included, because what the booted system sees is what counts:
//!
//! * a line is what one `fgets()` into `getmntent()`'s 4096-byte buffer returns: a longer line
//!   is cut after [`LINE_MAX`] bytes and the rest of it skipped in 1023-byte reads;
//! * the text of a line ends at its first NUL byte; a line whose newline lies after a NUL is
//!   treated as cut, so the skipping swallows the **next** line too;
//! * blanks (space, tab) before the newline are dropped; a line that is empty or whose first
//!   non-blank byte is `#` is skipped;
//! * fields are split on runs of blanks (`strsep()`), a missing field is empty, and each field
//!   has `\040` (space), `\011` (tab), `\012` (newline), `\134` and `\\` (backslash) decoded
//!   (`decode_name()`), nothing else;
//! * an `autofs` entry with the option `ignore` is skipped (`__getmntent_r()`).
//!
//! The fifth and sixth fields (dump, pass) are not needed here and not parsed.

use crate::ondisk::cescape::split_unescaped;

/// `getmntent()`'s buffer (`BUFFER_SIZE` 4096 in glibc's `misc/mntent.c`) less the NUL.
pub const LINE_MAX: usize = 4095;
/// The `fgets()` size of the loop that skips the rest of a cut line (`char tmp[1024]`).
const SKIP_CHUNK: usize = 1023;

/// One fstab entry, fields decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FstabEntry {
    /// The 1-based line it was read from.
    pub line: usize,
    /// First field: the device (`LABEL=var`, `/dev/vdb`).
    pub fsname: Vec<u8>,
    /// Second field: the mount point.
    pub dir: Vec<u8>,
    /// Third field: the filesystem type (`auto`, `ext4`, `swap`).
    pub fstype: Vec<u8>,
    /// Fourth field: the options as written (still comma-separated).
    pub options: Vec<u8>,
}

/// `fgets()` over a byte slice: what was read, and how many newlines.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    lines: usize,
}

impl<'a> Reader<'a> {
    /// Up to `size` bytes, through the first newline; empty at the end.
    fn fgets(&mut self, size: usize) -> &'a [u8] {
        let rest = &self.data[self.pos..];
        let window = &rest[..rest.len().min(size)];
        let take = window
            .iter()
            .position(|&b| b == b'\n')
            .map_or(window.len(), |i| i + 1);
        self.pos += take;
        let chunk = &rest[..take];
        self.lines += usize::from(chunk.last() == Some(&b'\n'));
        chunk
    }
}

/// A C string's view of a buffer: up to the first NUL.
fn c_str(buf: &[u8]) -> &[u8] {
    buf.iter().position(|&b| b == 0).map_or(buf, |i| &buf[..i])
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_blanks(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_blank(b)).count();
    &s[n..]
}

/// `strsep(&head, " \t")` then `head += strspn(head, " \t")`; a field after the last is empty.
fn next_field<'a>(head: &mut Option<&'a [u8]>) -> &'a [u8] {
    let Some(h) = *head else {
        return b"";
    };
    match h.iter().position(|&b| is_blank(b)) {
        Some(i) => {
            *head = Some(skip_blanks(&h[i + 1..]));
            &h[..i]
        }
        None => {
            *head = None;
            h
        }
    }
}

/// glibc's `decode_name()`: the four octal escapes fstab writers use, and `\\`.
pub fn decode_name(field: &[u8]) -> Vec<u8> {
    const ESCAPES: [(&[u8], u8); 5] = [
        (b"\\040", b' '),
        (b"\\011", b'\t'),
        (b"\\012", b'\n'),
        (b"\\\\", b'\\'),
        (b"\\134", b'\\'),
    ];
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let rest = &field[i..];
        match ESCAPES.iter().find(|(e, _)| rest.starts_with(e)) {
            Some((e, c)) => {
                out.push(*c);
                i += e.len();
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// The entries of an fstab, in file order (see the module docs for the rules).
pub fn parse_fstab(data: &[u8]) -> Vec<FstabEntry> {
    let mut r = Reader {
        data,
        pos: 0,
        lines: 0,
    };
    let mut entries = Vec::new();
    loop {
        let line = r.lines + 1;
        let chunk = r.fgets(LINE_MAX);
        if chunk.is_empty() {
            return entries;
        }
        let text = c_str(chunk);
        let text = match text.iter().position(|&b| b == b'\n') {
            Some(nl) => {
                let kept = text[..nl].iter().rposition(|&b| !is_blank(b));
                &text[..kept.map_or(0, |k| k + 1)]
            }
            None => {
                skip_rest(&mut r);
                text
            }
        };
        let head = skip_blanks(text);
        if head.is_empty() || head[0] == b'#' {
            continue;
        }
        let mut head = Some(head);
        let entry = FstabEntry {
            line,
            fsname: decode_name(next_field(&mut head)),
            dir: decode_name(next_field(&mut head)),
            fstype: decode_name(next_field(&mut head)),
            options: decode_name(next_field(&mut head)),
        };
        if entry.fstype == b"autofs" && has_mnt_opt(&entry.options, b"ignore") {
            continue;
        }
        entries.push(entry);
    }
}

/// "Not the whole line was read. Do it now but forget it": read on until a chunk whose C
/// string holds a newline, or the end.
fn skip_rest(r: &mut Reader<'_>) {
    loop {
        let chunk = r.fgets(SKIP_CHUNK);
        if chunk.is_empty() || c_str(chunk).contains(&b'\n') {
            return;
        }
    }
}

/// glibc's `hasmntopt()`: `opt` alone or as `opt=…` between commas (no escapes).
fn has_mnt_opt(options: &[u8], opt: &[u8]) -> bool {
    options.split(|&b| b == b',').any(|w| {
        w.strip_prefix(opt)
            .is_some_and(|r| r.is_empty() || r[0] == b'=')
    })
}

/// The option words of an fstab option string, split at commas that a backslash does not
/// escape (backslashes kept), as `fstab_filter_options()` walks them when it only tests.
fn option_words(opts: &[u8]) -> impl Iterator<Item = &[u8]> {
    split_unescaped(opts, b',').into_iter().map(|r| &opts[r])
}

/// `fstab_filter_options(opts, names, &namefound, NULL, NULL, NULL)`: the name among `names`
/// that the **last** matching option word matches (`name` alone or `name=…`); per word the
/// first of `names` that matches counts.
pub fn last_option<'n>(opts: &[u8], names: &[&'n str]) -> Option<&'n str> {
    let mut found = None;
    for word in option_words(opts) {
        let hit = names.iter().find(|n| {
            word.strip_prefix(n.as_bytes())
                .is_some_and(|r| r.is_empty() || r[0] == b'=')
        });
        if let Some(n) = hit {
            found = Some(*n);
        }
    }
    found
}

/// `fstab_test_option()`: whether any of `names` is among the options.
pub fn test_option(opts: &[u8], names: &[&str]) -> bool {
    last_option(opts, names).is_some()
}

/// `fstab_test_yes_no_option(opts, "yes\0no\0")`: true when `yes` occurs after the last `no`
/// (so `noauto,auto` is not noauto).
pub fn yes_no_option(opts: &[u8], yes: &str, no: &str) -> bool {
    last_option(opts, &[yes, no]) == Some(yes)
}

#[cfg(test)]
mod tests;
