//! Versioned directories (`NAME.v/`, `NAME.raw.v/`): entry-name parsing and the choice among
//! entries, as systemd's `src/shared/vpick.c` does it with `PICK_ARCHITECTURE|PICK_TRIES`.
//!
//! Entry names look like `<basename>_<version>[_<arch>][+<left>[-<done>]]<suffix>`.

use crate::ondisk::version::strverscmp_improved;
use std::cmp::Ordering;

/// The parts of a versioned entry name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionedName {
    /// The version string, never empty (`1.2`, `55`).
    pub version: String,
    /// A systemd architecture name (`x86-64`), if the entry carries a known one.
    pub architecture: Option<String>,
    /// Boot-counting tries left (`+3`), if present.
    pub tries_left: Option<u64>,
    /// Boot-counting tries done (`+3-1`), if present; `+3` alone means 0 done.
    pub tries_done: Option<u64>,
}

/// Architecture names systemd knows (`architecture_table` in src/basic/architecture.c).
pub const ARCHITECTURES: &[&str] = &[
    "alpha",
    "arc",
    "arc-be",
    "arm",
    "arm64",
    "arm64-be",
    "arm-be",
    "cris",
    "ia64",
    "loongarch64",
    "m68k",
    "mips",
    "mips64",
    "mips64-le",
    "mips-le",
    "nios2",
    "parisc",
    "parisc64",
    "ppc",
    "ppc64",
    "ppc64-le",
    "ppc-le",
    "riscv32",
    "riscv64",
    "s390",
    "s390x",
    "sh",
    "sh64",
    "sparc",
    "sparc64",
    "tilegx",
    "x32",
    "x86",
    "x86-64",
];

/// systemd's `UINT_MAX` stand-in for "no tries counter", which it compares as a number.
const TRIES_UNSET: u64 = u32::MAX as u64;

pub use crate::decide::arch::{native as native_architecture, secondary as secondary_architecture};

/// Whether an entry's architecture is eligible when no architecture is asked for: native,
/// secondary, or none at all.
pub fn architecture_allowed(arch: Option<&str>, native: &str) -> bool {
    match arch {
        None => true,
        Some(a) => a == native || Some(a) == secondary_architecture(native),
    }
}

/// systemd's `version_is_valid()`: non-empty, a valid filename part, only `[A-Za-z0-9.,_+-]`.
pub fn version_is_valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".,_-+".contains(&c))
}

/// systemd's `safe_atou()` on a digits-only string: `strtoul` base 0, so a leading `0` means
/// octal (and then `8`/`9` make it invalid); the value must fit an `unsigned`.
fn safe_atou_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (digits, radix) = if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let mut v: u64 = 0;
    for c in digits.bytes() {
        let d = u64::from(c - b'0');
        if d >= radix {
            return None;
        }
        v = v.checked_mul(radix)?.checked_add(d)?;
    }
    (v <= TRIES_UNSET).then_some(v)
}

/// `parse_tries()`: `+<left>` or `+<left>-<done>`.
fn parse_tries(s: &str) -> Option<(u64, u64)> {
    let s = s.strip_prefix('+')?;
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    if n == s.len() {
        return Some((safe_atou_digits(s)?, 0));
    }
    let done = s[n..].strip_prefix('-')?;
    Some((safe_atou_digits(&s[..n])?, safe_atou_digits(done)?))
}

/// Parse "<basename>_<version>[_<arch>][+<left>[-<done>]]<suffix>" for a given basename and suffix (suffix "" for directories, ".raw" for raw images). None if it does not match.
///
/// Like systemd, whatever follows the last `_` is cut off as the architecture field even when it
/// is not a known architecture name (`foo_1_2` is version `1`, no architecture), and a `+` tail
/// that is not a valid tries counter stays part of the version.
pub fn parse_versioned(file_name: &str, basename: &str, suffix: &str) -> Option<VersionedName> {
    let mut e = if basename.is_empty() {
        file_name
    } else {
        file_name.strip_prefix(basename)?.strip_prefix('_')?
    };
    if !suffix.is_empty() {
        e = e.strip_suffix(suffix)?;
    }

    let (mut tries_left, mut tries_done) = (None, None);
    if let Some(plus) = e.rfind('+') {
        if let Some((left, done)) = parse_tries(&e[plus..]) {
            tries_left = Some(left);
            tries_done = Some(done);
            e = &e[..plus];
        }
    }

    let mut architecture = None;
    if let Some(underscore) = e.rfind('_') {
        let a = &e[underscore + 1..];
        architecture = ARCHITECTURES
            .iter()
            .find(|k| **k == a)
            .map(|k| k.to_string());
        e = &e[..underscore];
    }

    if !version_is_valid(e) {
        return None;
    }
    Some(VersionedName {
        version: e.to_string(),
        architecture,
        tries_left,
        tries_done,
    })
}

/// `pick_result_compare()`: `Greater` when `a` is the better choice; `*_file` are the file names
/// used as the last tie-breaker.
pub fn compare_choices(
    a: &VersionedName,
    a_file: &str,
    b: &VersionedName,
    b_file: &str,
    native: &str,
) -> Ordering {
    let left = |v: &VersionedName| v.tries_left.unwrap_or(TRIES_UNSET);
    let done = |v: &VersionedName| v.tries_done.unwrap_or(TRIES_UNSET);
    let is = |v: &VersionedName, arch: &str| v.architecture.as_deref() == Some(arch);

    let mut d = (left(a) != 0).cmp(&(left(b) != 0));
    d = d.then_with(|| strverscmp_improved(&a.version, &b.version));
    d = d.then_with(|| is(a, native).cmp(&is(b, native)));
    if let Some(secondary) = secondary_architecture(native) {
        d = d.then_with(|| is(a, secondary).cmp(&is(b, secondary)));
    }
    d = d.then_with(|| left(a).cmp(&left(b)));
    d = d.then_with(|| done(b).cmp(&done(a)));
    d.then_with(|| a_file.as_bytes().cmp(b_file.as_bytes()))
}

/// Pick like systemd's path_pick with PICK_ARCHITECTURE|PICK_TRIES: entries with tries left (tries_left != Some(0)) first, then highest version (strverscmp_improved), then native arch, then other allowed arch (only native arch and no-arch entries are eligible when arch given: follow vpick.c), then more tries left, fewer tries done, then file name. Returns index into `names`.
///
/// Eligible are entries without an architecture and those of the native or its secondary
/// architecture (x86 on x86-64), as systemd does when no architecture is asked for.
pub fn pick(names: &[String], basename: &str, suffix: &str, native_arch: &str) -> Option<usize> {
    let mut best: Option<(usize, VersionedName)> = None;
    for (i, name) in names.iter().enumerate() {
        let Some(v) = parse_versioned(name, basename, suffix) else {
            continue;
        };
        if !architecture_allowed(v.architecture.as_deref(), native_arch) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, bv)) => compare_choices(&v, name, bv, &names[*b], native_arch).is_gt(),
        };
        if better {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests;
