//! os-release / extension-release handling: systemd's env-file parser, the extension-release lookup
//! (`open_extension_release_at`) and the compatibility decision (`extension_release_validate`).

use crate::chase::{chase, ChaseError};
use crate::class::ImageClass;
use crate::mutable::parse_boolean;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

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
const WHITESPACE: &[u8] = b" \t\n\r";
const NEWLINE: &[u8] = b"\n\r";
const COMMENTS: &[u8] = b"#;";
const SHELL_NEED_ESCAPE: &[u8] = b"\"\\`$";
const RELEASE_PREFIX: &str = "extension-release.";
const STRICT_XATTR: &str = "user.extension-release.strict";

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
fn systemd_utf8(bytes: &[u8]) -> Option<&str> {
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

/// A port of systemd's env-file automaton (src/basic/env-file.c), byte for byte.
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

/// Read and parse an env file; fails where systemd refuses the whole file (NUL byte, invalid UTF-8).
pub fn read_env_file(path: &Path) -> Result<ReleaseData> {
    // Refuse FIFOs and devices up front so a hostile image cannot make us block on read.
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed = parse_detailed(&bytes);
    for (_, w) in &parsed.warnings {
        tracing::warn!("{}:{}: {}", path.display(), w.line, w.message);
    }
    if let Some((_, w)) = parsed.warnings.iter().find(|(fatal, _)| *fatal) {
        bail!(
            "{}:{}: {} (systemd refuses such a file entirely)",
            path.display(),
            w.line,
            w.message
        );
    }
    Ok(parsed.data)
}

/// `chase()` inside a root where "does not exist" is an answer rather than an error.
fn chase_opt(root: &Path, rel: &str) -> Result<Option<PathBuf>, ChaseError> {
    match chase(root, Path::new(rel)) {
        Ok(r) => Ok(Some(r.host)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn chase_ctx(root: &Path, rel: &str) -> Result<Option<PathBuf>> {
    chase_opt(root, rel).with_context(|| format!("cannot resolve /{rel} inside {}", root.display()))
}

/// Read `<root>/etc/os-release`, else `<root>/usr/lib/os-release`, resolving symlinks inside root.
pub fn read_os_release(root: &Path) -> Result<(PathBuf, ReleaseData)> {
    const CANDIDATES: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
    for rel in CANDIDATES {
        // Only ENOENT moves on to the fallback, as in open_os_release_at().
        if let Some(path) = chase_ctx(root, rel)? {
            let data = read_env_file(&path)?;
            return Ok((path, data));
        }
    }
    let [a, b] = CANDIDATES.map(|c| root.join(c));
    bail!(
        "neither {} nor {} exists, so the OS tree cannot be identified",
        a.display(),
        b.display()
    )
}

/// The scope an extension must list in `<CLASS>_SCOPE=` to be used on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// A booted system (no `/etc/initrd-release`).
    System,
    /// An initrd (`/etc/initrd-release` exists).
    Initrd,
    /// A portable service attachment.
    Portable,
}

impl Scope {
    /// The spelling used in `SYSEXT_SCOPE=` / `CONFEXT_SCOPE=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::Initrd => "initrd",
            Scope::Portable => "portable",
        }
    }
}

/// "initrd" iff `<root>/etc/initrd-release` exists (resolved inside root), else "system".
pub fn host_scope(root: &Path) -> Scope {
    match chase_opt(root, "etc/initrd-release") {
        Ok(Some(_)) => Scope::Initrd,
        Ok(None) => Scope::System,
        Err(e) => {
            // systemd fails the merge here; this signature cannot, so say loudly what is assumed.
            tracing::warn!(
                "cannot check for /etc/initrd-release in {}: {e}; assuming \"system\"",
                root.display()
            );
            Scope::System
        }
    }
}

/// systemd's `uname_architecture()` map, all per-CPU sections of architecture.c merged.
#[rustfmt::skip]
const ARCH_MAP: &[(&str, &str)] = &[
    ("aarch64", "arm64"), ("aarch64_be", "arm64-be"),
    ("armv8l", "arm"), ("armv7ml", "arm"), ("armv7l", "arm"), ("armv6l", "arm"), ("armv5tl", "arm"),
    ("armv5tel", "arm"), ("armv5tejl", "arm"), ("armv4tl", "arm"), ("armv4l", "arm"),
    ("armv8b", "arm-be"), ("armv7mb", "arm-be"), ("armv7b", "arm-be"), ("armv6b", "arm-be"),
    ("armv5tejb", "arm-be"), ("armv5teb", "arm-be"), ("armv5tb", "arm-be"), ("armv4tb", "arm-be"), ("armv4b", "arm-be"),
    ("alpha", "alpha"), ("arc", "arc"), ("arceb", "arc-be"), ("crisv32", "cris"),
    ("x86_64", "x86-64"), ("i686", "x86"), ("i586", "x86"), ("i486", "x86"), ("i386", "x86"),
    ("ia64", "ia64"), ("parisc64", "parisc64"), ("parisc", "parisc"), ("loongarch64", "loongarch64"),
    ("m68k", "m68k"), ("mips64", "mips64"), ("mips", "mips"), ("nios2", "nios2"),
    ("ppc64le", "ppc64-le"), ("ppc64", "ppc64"), ("ppcle", "ppc-le"), ("ppc", "ppc"),
    ("riscv64", "riscv64"), ("riscv32", "riscv32"),
    // systemd maps the bare name by the pointer size it was built for.
    ("riscv", if cfg!(target_pointer_width = "32") { "riscv32" } else { "riscv64" }),
    ("s390x", "s390x"), ("s390", "s390"),
    ("sh5", "sh64"), ("sh4a", "sh"), ("sh4", "sh"), ("sh3", "sh"), ("sh2a", "sh"), ("sh2", "sh"),
    ("sparc64", "sparc64"), ("sparc", "sparc"), ("tilegx", "tilegx"),
];

/// systemd architecture name for a uname machine string (`x86_64` is `x86-64`); None if unknown.
pub fn architecture_from_machine(machine: &str) -> Option<&'static str> {
    ARCH_MAP
        .iter()
        .find(|(m, _)| *m == machine)
        .map(|(_, a)| *a)
}

/// The running kernel's architecture in systemd's spelling, or the raw machine string if unknown.
pub fn uname_architecture() -> String {
    let uts = rustix::system::uname();
    let machine = uts.machine().to_string_lossy();
    architecture_from_machine(&machine).map_or_else(|| machine.to_string(), str::to_owned)
}

/// Identity of the OS tree extensions are merged onto.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// os-release `ID=` (never empty).
    pub id: String,
    /// os-release `ID_LIKE=`, split into words.
    pub id_like: Vec<String>,
    /// os-release `VERSION_ID=`, if set and non-empty.
    pub version_id: Option<String>,
    /// os-release `SYSEXT_LEVEL=`, if set and non-empty.
    pub sysext_level: Option<String>,
    /// os-release `CONFEXT_LEVEL=`, if set and non-empty.
    pub confext_level: Option<String>,
    /// Scope extensions must declare to be used here.
    pub scope: Scope,
    /// systemd architecture name compared with `ARCHITECTURE=`.
    pub architecture: String,
    /// The os-release file that was read (host path).
    pub os_release_path: PathBuf,
}

/// systemd splits scope and ID_LIKE lists on its ASCII WHITESPACE set only.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split([' ', '\t', '\n', '\r']).filter(|w| !w.is_empty())
}

fn non_empty<'a>(data: &'a ReleaseData, key: &str) -> Option<&'a str> {
    data.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

impl HostInfo {
    /// Build from parsed os-release; Err if ID is missing or empty (systemd then fails the merge).
    pub fn from_release(
        data: &ReleaseData,
        scope: Scope,
        architecture: &str,
        os_release_path: &Path,
    ) -> Result<HostInfo, String> {
        let Some(id) = non_empty(data, "ID") else {
            let p = os_release_path.display();
            return Err(format!(
                "{p} has no ID= (or an empty one); extensions cannot be matched against it"
            ));
        };
        let owned = |k: &str| non_empty(data, k).map(str::to_owned);
        Ok(HostInfo {
            id: id.to_owned(),
            id_like: data
                .get("ID_LIKE")
                .map_or_else(Vec::new, |v| words(v).map(str::to_owned).collect()),
            version_id: owned("VERSION_ID"),
            sysext_level: owned(ImageClass::Sysext.level_key()),
            confext_level: owned(ImageClass::Confext.level_key()),
            scope,
            architecture: architecture.to_owned(),
            os_release_path: os_release_path.to_path_buf(),
        })
    }

    /// Read the host identity of the tree at `root` (os-release, scope, uname architecture).
    pub fn load(root: &Path) -> Result<HostInfo> {
        let (path, data) = read_os_release(root)?;
        HostInfo::from_release(&data, host_scope(root), &uname_architecture(), &path)
            .map_err(|e| anyhow!(e))
    }

    /// The host's API level for `class` (`SYSEXT_LEVEL` or `CONFEXT_LEVEL`).
    pub fn level(&self, class: ImageClass) -> Option<&str> {
        match class {
            ImageClass::Sysext => self.sysext_level.as_deref(),
            ImageClass::Confext => self.confext_level.as_deref(),
        }
    }
}

/// Outcome of the compatibility check for one extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The extension may be merged.
    Accept,
    /// The extension is ignored, for the stated reason.
    Reject(String),
}

/// systemd's `extension_release_validate()`, rule for rule and in the same order.
pub fn validate(
    host: &HostInfo,
    class: ImageClass,
    name: &str,
    ext: Option<&ReleaseData>,
) -> Verdict {
    match check(host, class, name, ext) {
        Ok(()) => Verdict::Accept,
        Err(reason) => Verdict::Reject(reason),
    }
}

fn check(
    host: &HostInfo,
    class: ImageClass,
    name: &str,
    ext: Option<&ReleaseData>,
) -> Result<(), String> {
    let Some(ext) = ext.filter(|e| !e.is_empty()) else {
        return Err(format!("extension '{name}' carries no release data (no extension-release file, or an empty one)"));
    };
    let (scope_key, hs) = (class.scope_key(), host.scope.as_str());
    match ext.get(scope_key) {
        None if hs != "system" && hs != "portable" => {
            return Err(format!(
                "{scope_key} is not set, which means \"system portable\", so it is not meant for the host scope \"{hs}\""
            ))
        }
        Some(v) if words(v).next().is_none() => {
            return Err(format!("{scope_key} is set but empty, which matches no scope, not even the host scope \"{hs}\""))
        }
        Some(v) if !words(v).any(|w| w == hs) => {
            return Err(format!("{scope_key}={v} does not include the host scope \"{hs}\""))
        }
        _ => {}
    }
    if let Some(arch) =
        non_empty(ext, "ARCHITECTURE").filter(|a| *a != "_any" && *a != host.architecture)
    {
        let h = &host.architecture;
        return Err(format!("ARCHITECTURE={arch} does not match the host architecture {h} (ARCHITECTURE=_any fits all)"));
    }
    let Some(id) = non_empty(ext, "ID") else {
        let h = &host.id;
        return Err(format!(
            "ID is not set; it must be the host's ID={h}, a word of its ID_LIKE, or _any"
        ));
    };
    if id == "_any" {
        return Ok(());
    }
    if id != host.id && !host.id_like.iter().any(|l| l == id) {
        let like = if host.id_like.is_empty() {
            "(the host sets no ID_LIKE)".to_owned()
        } else {
            format!("nor any word of its ID_LIKE=\"{}\"", host.id_like.join(" "))
        };
        return Err(format!(
            "ID={id} matches neither the host's ID={} {like}",
            host.id
        ));
    }
    let level_key = class.level_key();
    let (host_level, ext_level) = (host.level(class), non_empty(ext, level_key));
    if host.version_id.is_none() && host_level.is_none() {
        return Ok(()); // rule 6: a rolling release without version information
    }
    if let (Some(h), Some(e)) = (host_level, ext_level) {
        if h != e {
            return Err(format!(
                "{level_key}={e} does not match the host's {level_key}={h}"
            ));
        }
        return Ok(());
    }
    if let Some(hv) = host.version_id.as_deref() {
        let why = match host_level {
            Some(h) => format!("and no common {level_key}: the extension declares none, the host has {level_key}={h}"),
            None => format!("and no common {level_key}: the host declares none"),
        };
        match non_empty(ext, "VERSION_ID") {
            None => {
                return Err(format!(
                    "VERSION_ID is not set, but the host has VERSION_ID={hv} ({why})"
                ))
            }
            Some(ev) if ev != hv => {
                return Err(format!(
                    "VERSION_ID={ev} does not match the host's VERSION_ID={hv} ({why})"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(()) // rule 9 [QUIRK]: a host with a LEVEL but no VERSION_ID accepts an extension with neither
}

/// systemd's `path_extract_image_name()` stem: drop a `.sysext.raw`/`.confext.raw`/`.raw` suffix, cut at `_`/`+`.
pub fn release_name_stem(name: &str) -> &str {
    let base = [".sysext.raw", ".confext.raw", ".raw"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    base.find(['_', '+']).map_or(base, |i| &base[..i])
}

/// systemd's `image_name_is_valid()`.
fn image_name_is_valid(s: &str) -> bool {
    let plain = s.len() <= 255 && !s.contains('/') && !s.bytes().any(|b| b < b' ' || b == 127);
    plain
        && !matches!(s, "" | "." | "..")
        && !s.starts_with(".#")
        && systemd_utf8(s.as_bytes()).is_some()
}

/// systemd's `hidden_or_backup_file()`, which FOREACH_DIRENT applies during the fallback scan.
fn hidden_or_backup_file(name: &str) -> bool {
    #[rustfmt::skip]
    const SUFFIXES: &[&str] = &[
        "ignore", "rpmnew", "rpmsave", "rpmorig", "dpkg-old", "dpkg-new", "dpkg-tmp", "dpkg-dist", "dpkg-bak",
        "dpkg-backup", "dpkg-remove", "ucf-new", "ucf-old", "ucf-dist", "swp", "bak", "old", "new",
    ];
    name.starts_with('.')
        || matches!(name, "lost+found" | "aquota.user" | "aquota.group")
        || name.ends_with('~')
        || name
            .rfind('.')
            .is_some_and(|i| SUFFIXES.contains(&&name[i + 1..]))
}

/// The `<X>` of a fallback candidate `extension-release.<X>`, if the scan considers it at all.
fn release_suffix(file_name: &str) -> Option<&str> {
    let x = file_name.strip_prefix(RELEASE_PREFIX)?;
    (!hidden_or_backup_file(file_name) && image_name_is_valid(x)).then_some(x)
}

/// A regular file found by the fallback scan of the extension-release directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseCandidate {
    /// Directory entry name, `extension-release.<X>`.
    pub file_name: String,
    /// Parsed `user.extension-release.strict` xattr (None if absent or not a boolean).
    pub strict: Option<bool>,
}

/// Decide which extension-release file systemd (strict mode) would use for image `name`.
pub fn pick_release_file(
    name: &str,
    exact_exists: bool,
    candidates: &[ReleaseCandidate],
) -> Result<Option<String>, String> {
    if !image_name_is_valid(name) {
        return Err(format!(
            "'{name}' is not a valid image name, so it has no extension-release file"
        ));
    }
    if exact_exists {
        return Ok(Some(format!("{RELEASE_PREFIX}{name}")));
    }
    let stem = release_name_stem(name);
    // systemd skips every candidate (even xattr-relaxed ones) when the stem is not a valid name.
    if !image_name_is_valid(stem) {
        return Ok(None);
    }
    let mut accepted: Vec<&str> = candidates
        .iter()
        .filter(|c| {
            release_suffix(&c.file_name).is_some_and(|x| x == stem || c.strict == Some(false))
        })
        .map(|c| c.file_name.as_str())
        .collect();
    accepted.sort_unstable();
    accepted.dedup();
    match accepted.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).to_owned())),
        many => Err(format!(
            "image '{name}' has no {RELEASE_PREFIX}{name} and several fallback files qualify ({}); \
             the choice is ambiguous, so none is used",
            many.join(", ")
        )),
    }
}

/// Parsed `user.extension-release.strict` xattr; None when absent, unreadable or not a boolean.
fn read_strict_xattr(path: &Path) -> Option<bool> {
    // Longer values cannot be a boolean anyway, so ERANGE simply means "not false".
    let mut buf = [0u8; 256];
    let n = rustix::fs::getxattr(path, STRICT_XATTR, &mut buf[..]).ok()?;
    // One trailing NUL is tolerated, an embedded one is not (getxattr_at_malloc: EBADMSG).
    let v = buf[..n].strip_suffix(b"\0").unwrap_or(&buf[..n]);
    if v.contains(&0) {
        return None;
    }
    parse_boolean(std::str::from_utf8(v).ok()?)
}

/// Locate the extension-release file of image `name` inside `image_root` the way systemd does.
pub fn find_extension_release(
    image_root: &Path,
    class: ImageClass,
    name: &str,
) -> Result<Option<PathBuf>> {
    if !image_name_is_valid(name) {
        bail!("'{name}' is not a valid image name, so it has no extension-release file");
    }
    // Like systemd's flagless chaseat(): any existing inode wins, only ENOENT falls back to the scan.
    if let Some(exact) = chase_ctx(
        image_root,
        &format!("{}/{RELEASE_PREFIX}{name}", class.release_dir()),
    )? {
        return Ok(Some(exact));
    }
    let Some(dir) = chase_ctx(image_root, class.release_dir())? else {
        return Ok(None);
    };
    let mut candidates = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let Some(file_name) = entry
            .file_name()
            .to_str()
            .filter(|n| release_suffix(n).is_some())
            .map(str::to_owned)
        else {
            continue;
        };
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot stat {}", path.display()))?;
        // The scan never follows symlinks (systemd opens O_NOFOLLOW and insists on a regular file).
        if meta.file_type().is_file() {
            candidates.push(ReleaseCandidate {
                strict: read_strict_xattr(&path),
                file_name,
            });
        }
    }
    match pick_release_file(name, false, &candidates) {
        Ok(found) => Ok(found.map(|f| dir.join(f))),
        Err(msg) => Err(anyhow!("{msg} (in {})", dir.display())),
    }
}

/// Find and parse the extension-release file of image `name`; Ok(None) if the image has none.
pub fn load_extension_release(
    image_root: &Path,
    class: ImageClass,
    name: &str,
) -> Result<Option<(PathBuf, ReleaseData)>> {
    let Some(path) = find_extension_release(image_root, class, name)? else {
        return Ok(None);
    };
    let data = read_env_file(&path)?;
    Ok(Some((path, data)))
}

/// True if the tree ships `usr/lib/os-release` (resolved inside `image_root`; dangling counts as absent).
pub fn has_forbidden_content(image_root: &Path) -> io::Result<bool> {
    match chase_opt(image_root, "usr/lib/os-release") {
        Ok(found) => Ok(found.is_some()),
        Err(e) => {
            let kind = match &e {
                ChaseError::Io { source, .. } => source.kind(),
                _ => io::ErrorKind::Other,
            };
            Err(io::Error::new(kind, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;
    use std::os::unix::fs::symlink;
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

    fn write(path: &Path, text: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
        format!("{:#}", r.unwrap_err())
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
    fn invalid_utf8_value_is_dropped_but_read_env_file_refuses_the_file() {
        let bytes = b"A=1\nB=\xff\xfe\nC=3\n";
        let (got, w) = parse_env_bytes(bytes);
        assert_eq!(got, data(&[("A", "1"), ("C", "3")]));
        assert_eq!((w.len(), w[0].line), (1, 2));
        assert!(w[0].message.contains("UTF-8"));
        // systemd's utf8_is_valid() also refuses noncharacters such as U+FFFE.
        assert!(parse_env("A=\u{fffe}\n").0.is_empty());
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("rel");
        fs::write(&p, bytes).unwrap();
        let err = err_text(read_env_file(&p));
        assert!(err.contains(&format!("{}:2:", p.display())), "{err}");
    }

    #[test]
    fn embedded_nul_makes_the_file_unusable() {
        let (got, w) = parse_env_bytes(b"A=1\nB=\0\n");
        assert!(got.is_empty());
        assert_eq!(w[0].line, 2);
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("rel");
        fs::write(&p, b"A=1\0").unwrap();
        assert!(err_text(read_env_file(&p)).contains("NUL"));
    }

    #[test]
    fn read_env_file_errors_name_the_path() {
        let t = tempfile::tempdir().unwrap();
        assert!(err_text(read_env_file(&t.path().join("nope"))).contains("nope"));
        assert!(err_text(read_env_file(t.path())).contains("not a regular file"));
        let ok = t.path().join("ok");
        fs::write(&ok, "ID=flatcar\nVERSION_ID=3815.2.0\nBAD LINE\n").unwrap();
        assert_eq!(
            read_env_file(&ok).unwrap(),
            data(&[("ID", "flatcar"), ("VERSION_ID", "3815.2.0")])
        );
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
                    assert!(r.contains(f), "{label}: {r:?} does not mention {f}")
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
        assert_eq!(
            validate(&host, Sysext, "x", Some(&ext)),
            Verdict::Reject(want.into())
        );
    }

    #[test]
    fn upstream_test50_fixture() {
        let os =
            parse_env("ID=testtest\nID_LIKE=\"foobar test_alike something-else\"\nVERSION=1.2.3\n")
                .0;
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
            matches!(v(&sys, scoped), Verdict::Reject(r) if r.contains("SYSEXT_SCOPE")),
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
            assert_eq!(architecture_from_machine(machine), Some(arch), "{machine}");
        }
        assert_eq!(
            (
                architecture_from_machine("x86-64"),
                architecture_from_machine("vax")
            ),
            (None, None)
        );
        if cfg!(target_arch = "x86_64") {
            assert_eq!(uname_architecture(), "x86-64");
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

    fn set_strict(path: &Path, value: &[u8]) {
        rustix::fs::setxattr(path, STRICT_XATTR, value, rustix::fs::XattrFlags::empty()).unwrap();
    }

    const SYS_DIR: &str = "usr/lib/extension-release.d";

    #[test]
    fn find_exact_and_symlinks_stay_inside_the_image() {
        let t = tempfile::tempdir().unwrap();
        let img = t.path();
        write(&img.join("real.d/extension-release.foo"), b"ID=_any\n");
        fs::create_dir_all(img.join("usr/lib")).unwrap();
        // An absolute symlink must resolve inside the image, never on the host.
        symlink("/real.d", img.join(SYS_DIR)).unwrap();
        let (p, d) = load_extension_release(img, Sysext, "foo").unwrap().unwrap();
        assert_eq!(
            (p, d),
            (
                img.join("real.d/extension-release.foo"),
                data(&[("ID", "_any")])
            )
        );
        let escape = "../../../../../../real.d/extension-release.foo";
        symlink(escape, img.join("real.d/extension-release.bar")).unwrap();
        let found = find_extension_release(img, Sysext, "bar").unwrap();
        assert_eq!(found, Some(img.join("real.d/extension-release.foo")));
        assert_eq!(
            find_extension_release(img, Confext, "foo").unwrap(),
            None,
            "confext has its own dir"
        );
        assert_eq!(
            find_extension_release(&img.join("missing"), Sysext, "foo").unwrap(),
            None
        );
    }

    #[test]
    fn find_fallback_scan() {
        let t = tempfile::tempdir().unwrap();
        let (img, dir) = (t.path(), t.path().join(SYS_DIR));
        let find = |name: &str| find_extension_release(img, Sysext, name);
        write(&dir.join("extension-release.foo"), b"ID=a\n");
        assert_eq!(
            find("foo_1.2").unwrap(),
            Some(dir.join("extension-release.foo")),
            "stem"
        );
        let renamed = dir.join("extension-release.renamed");
        write(&renamed, b"ID=b\n");
        set_strict(&renamed, b"1");
        assert_eq!(find("zzz").unwrap(), None, "xattr true is skipped");
        set_strict(&renamed, b"no\0");
        assert_eq!(find("zzz").unwrap(), Some(renamed.clone()), "xattr false");
        let err = err_text(find("foo_9"));
        assert!(
            err.contains("extension-release.foo,") && err.contains("extension-release.renamed"),
            "{err}"
        );
        // A dangling exact symlink falls back to the scan.
        symlink("/nowhere", dir.join("extension-release.zzz")).unwrap();
        assert_eq!(find("zzz").unwrap(), Some(renamed.clone()));
        // The scan never uses symlinked candidates.
        fs::remove_file(&renamed).unwrap();
        symlink("extension-release.foo", dir.join("extension-release.lnk")).unwrap();
        assert_eq!(find("lnk_1").unwrap(), None);
    }

    #[test]
    fn find_confext_and_non_regular_exact_match() {
        let t = tempfile::tempdir().unwrap();
        let img = t.path();
        write(
            &img.join("etc/extension-release.d/extension-release.cfg"),
            b"ID=x\n",
        );
        assert!(load_extension_release(img, Confext, "cfg")
            .unwrap()
            .is_some());
        // Like systemd, an exact name that exists as a directory is chosen and then fails to read.
        fs::create_dir_all(img.join(SYS_DIR).join("extension-release.d1")).unwrap();
        assert!(find_extension_release(img, Sysext, "d1").unwrap().is_some());
        assert!(load_extension_release(img, Sysext, "d1").is_err());
    }

    #[test]
    fn read_os_release_order_and_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let err = err_text(read_os_release(r));
        assert!(
            err.contains("etc/os-release") && err.contains("usr/lib/os-release"),
            "{err}"
        );
        let usr = r.join("usr/lib/os-release");
        write(&usr, b"ID=usr\n");
        assert_eq!(
            read_os_release(r).unwrap(),
            (usr.clone(), data(&[("ID", "usr")])),
            "usr/lib fallback"
        );
        fs::create_dir_all(r.join("etc")).unwrap();
        symlink("/nowhere", r.join("etc/os-release")).unwrap();
        assert_eq!(
            read_os_release(r).unwrap().0,
            usr,
            "dangling etc/os-release falls back"
        );
        fs::remove_file(r.join("etc/os-release")).unwrap();
        symlink("/usr/lib/os-release", r.join("etc/os-release")).unwrap();
        assert_eq!(
            read_os_release(r).unwrap().0,
            usr,
            "absolute symlink resolves inside root"
        );
        fs::remove_file(r.join("etc/os-release")).unwrap();
        write(&r.join("etc/os-release"), b"ID=etc\n");
        assert_eq!(
            read_os_release(r).unwrap(),
            (r.join("etc/os-release"), data(&[("ID", "etc")])),
            "etc first"
        );
    }

    #[test]
    fn host_scope_and_load() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            &r.join("usr/lib/os-release"),
            b"ID=flatcar\nVERSION_ID=1\nSYSEXT_LEVEL=1.0\n",
        );
        assert_eq!(host_scope(r), Scope::System);
        fs::create_dir_all(r.join("etc")).unwrap();
        symlink("/usr/lib/initrd-release", r.join("etc/initrd-release")).unwrap();
        assert_eq!(host_scope(r), Scope::System, "dangling initrd-release");
        write(&r.join("usr/lib/initrd-release"), b"ID=flatcar\n");
        assert_eq!(host_scope(r), Scope::Initrd);
        let h = HostInfo::load(r).unwrap();
        assert_eq!(
            (h.id.as_str(), h.scope, h.sysext_level.as_deref()),
            ("flatcar", Scope::Initrd, Some("1.0"))
        );
        assert_eq!(
            (h.architecture, h.os_release_path),
            (uname_architecture(), r.join("usr/lib/os-release"))
        );
        write(&r.join("etc/os-release"), b"NAME=x\n");
        assert!(err_text(HostInfo::load(r)).contains("ID="));
    }

    #[test]
    fn forbidden_content() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let usr = r.join("usr/lib/os-release");
        write(&r.join("etc/os-release"), b"ID=x\n");
        assert!(!has_forbidden_content(r).unwrap(), "etc/os-release is fine");
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("/etc/missing", &usr).unwrap();
        assert!(
            !has_forbidden_content(r).unwrap(),
            "dangling symlink counts as absent"
        );
        fs::remove_file(&usr).unwrap();
        symlink("/etc/os-release", &usr).unwrap();
        assert!(
            has_forbidden_content(r).unwrap(),
            "symlink resolved inside the image"
        );
        fs::remove_file(&usr).unwrap();
        write(&usr, b"ID=x\n");
        assert!(has_forbidden_content(r).unwrap());
    }
}
