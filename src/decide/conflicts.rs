//! The conflicts judge: given what every layer has at one path (plain data gathered by
//! `gather::conflicts`, which walks the trees), report where layers fight over content the way
//! overlayfs will stack them — the same non-directory in several extensions, an extension hiding
//! a base-OS file, a directory replaced by a non-directory (or the reverse, e.g. Flatcar's
//! `usr/sbin → bin` symlink hidden by a real `usr/sbin` directory, sysext-bakery#131), opaque
//! directories and whiteouts (sysext-bakery#50, Flatcar#1414/#1265) — and say which directories
//! overlayfs merges there (where the walk goes on). Then the `refuse` policy: which extensions
//! to drop for a set of conflicts, and for the extensions the walk could not judge.
//!
//! No file-system calls here: a test greps this file for them.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

mod refuse;
pub use refuse::{refuse_scanned, to_drop, Refusal, Scanned};

/// Provider name of the host (base OS) tree; always the first provider when present.
pub const BASE: &str = "base";

/// Layer index of the base tree in a judged path (extensions are 1..).
pub const BASE_LAYER: usize = 0;

/// Directory xattrs that make overlayfs hide the lower layers below a directory. Only the
/// `trusted.*` one: the merges extmerge and systemd make are privileged overlays without
/// `userxattr`, where the kernel ignores `user.overlay.*` (tests/conflicts.rs shows it).
pub const OPAQUE_XATTRS: [&str; 1] = ["trusted.overlay.opaque"];

/// Xattrs that turn an empty regular file into a whiteout (Linux ≥ 6.7 "xattr whiteouts");
/// `trusted.*` only, as [`OPAQUE_XATTRS`].
pub const WHITEOUT_XATTRS: [&str; 1] = ["trusted.overlay.whiteout"];

/// Every extension ships its own release file here; they never collide in a meaningful way.
const RELEASE_PREFIXES: [&[u8]; 2] = [
    b"/usr/lib/extension-release.d/extension-release.",
    b"/etc/extension-release.d/extension-release.",
];

/// Whether the walk skips `path` (in the merged hierarchy, as bytes): extension-release files.
pub fn is_skipped(path: &[u8]) -> bool {
    RELEASE_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// What to do about conflicts (`--check-conflicts=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ConflictPolicy {
    /// Drop the later (winning) extension of every conflict except base shadowing, and say so.
    Refuse,
    /// Log every conflict, merge anyway.
    #[default]
    Warn,
    /// Do not look for conflicts.
    Off,
}

impl ConflictPolicy {
    /// The spelling used on the command line, in config files and on the kernel command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::Refuse => "refuse",
            ConflictPolicy::Warn => "warn",
            ConflictPolicy::Off => "off",
        }
    }
}

impl FromStr for ConflictPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [Self::Refuse, Self::Warn, Self::Off];
        all.into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| format!("unknown conflict policy '{s}' (use refuse, warn or off)"))
    }
}

impl fmt::Display for ConflictPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of conflict, in report order for one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictKind {
    /// A regular file, symlink or device provided by more than one extension.
    SameFile,
    /// An extension hides a base-OS (host hierarchy) non-directory entry.
    ShadowsBase,
    /// A directory in one layer and a non-directory in another (e.g. the `usr/sbin` symlink).
    TypeChange,
    /// An opaque directory (`*.overlay.opaque=y`) hides everything below it in lower layers.
    OpaqueDir,
    /// A whiteout (0:0 character device or whiteout xattr) deletes a lower entry.
    Whiteout,
}

impl ConflictKind {
    /// The JSON/table spelling (`same-file`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::SameFile => "same-file",
            ConflictKind::ShadowsBase => "shadows-base",
            ConflictKind::TypeChange => "type-change",
            ConflictKind::OpaqueDir => "opaque-dir",
            ConflictKind::Whiteout => "whiteout",
        }
    }
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One conflict at one path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// What kind of conflict.
    pub kind: ConflictKind,
    /// Path as seen in the merged hierarchy, e.g. `/usr/bin/foo`.
    pub path: String,
    /// Layers involved, bottom first: [`BASE`] for the host, then extension names.
    pub providers: Vec<String>,
    /// The provider whose entry ends up visible (or that hides the others): the top one.
    pub winner: String,
    /// One human sentence.
    pub detail: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.path, self.detail)
    }
}

/// The type of a layer's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A regular file.
    Regular,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A FIFO.
    Fifo,
    /// A socket.
    Socket,
}

/// What one layer has at one path: plain data gathered by the walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// [`BASE_LAYER`] for the base, 1.. for the extensions bottom first.
    pub layer: usize,
    /// Its type.
    pub kind: FileKind,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Device number (major, minor) of a device.
    pub rdev: (u32, u32),
    /// The target of a symlink.
    pub link_target: Option<Vec<u8>>,
    /// The values of the xattrs [`xattrs_to_read`] asked for that are set.
    pub xattrs: Vec<(&'static str, Vec<u8>)>,
    /// Equality token of a regular file's bytes, where [`wants_content`] asked for it: equal
    /// tokens mean equal bytes; `None` (unknown, e.g. unreadable) is never equal to anything.
    pub content: Option<u64>,
}

/// The xattrs the judge needs of an entry: overlayfs's opaque markers on an extension's
/// directory, its whiteout markers on an extension's empty regular file (only those can be
/// xattr whiteouts; asking nothing of the others saves a syscall per file).
pub fn xattrs_to_read(layer: usize, kind: FileKind, size: u64) -> &'static [&'static str] {
    match kind {
        _ if layer == BASE_LAYER => &[],
        FileKind::Directory => &OPAQUE_XATTRS,
        FileKind::Regular if size == 0 => &WHITEOUT_XATTRS,
        _ => &[],
    }
}

/// Whether [`judge`] compares the contents of the regular files at this path (then the walk
/// fills in [`LayerEntry::content`]): no directory there and two or more regular files.
pub fn wants_content(entries: &[LayerEntry]) -> bool {
    let present: Vec<&LayerEntry> = entries
        .iter()
        .filter(|e| !matches!(classify(e), Node::Whiteout { .. }))
        .collect();
    !present.iter().any(|e| e.kind == FileKind::Directory)
        && present
            .iter()
            .filter(|e| e.kind == FileKind::Regular)
            .count()
            > 1
}

/// What overlayfs makes of one layer's entry.
#[derive(Clone, Copy, Debug)]
enum Node {
    /// A directory; `opaque` names the xattr that makes it opaque.
    Dir { opaque: Option<&'static str> },
    /// A whiteout; `how` says what kind.
    Whiteout { how: &'static str },
    /// Any other non-directory (file, symlink, device, FIFO, socket).
    Other,
}

fn classify(e: &LayerEntry) -> Node {
    let set = |names: &[&str], accept: fn(&[u8]) -> bool| {
        e.xattrs
            .iter()
            .filter(|(n, v)| names.contains(n) && accept(v))
            .map(|(n, _)| *n)
            .min_by_key(|n| names.iter().position(|x| x == n))
    };
    if e.kind == FileKind::Directory {
        // The base is the bottom layer: an opaque flag there hides nothing.
        let opaque = if e.layer == BASE_LAYER {
            None
        } else {
            // "x" means "has xattr whiteouts below", not opaque.
            set(&OPAQUE_XATTRS, |v| v == b"y")
        };
        return Node::Dir { opaque };
    }
    if e.layer == BASE_LAYER {
        return Node::Other;
    }
    if e.kind == FileKind::CharDevice && e.rdev == (0, 0) {
        return Node::Whiteout {
            how: "0:0 character device",
        };
    }
    if e.kind == FileKind::Regular && e.size == 0 {
        if let Some(x) = set(&WHITEOUT_XATTRS, |_| true) {
            return Node::Whiteout { how: x };
        }
    }
    Node::Other
}

/// One layer's entry at the judged path, as overlayfs sees it.
struct Entry<'a> {
    layer: usize,
    node: Node,
    src: &'a LayerEntry,
}

impl Entry<'_> {
    fn is_dir(&self) -> bool {
        matches!(self.node, Node::Dir { .. })
    }
    fn is_whiteout(&self) -> bool {
        matches!(self.node, Node::Whiteout { .. })
    }
}

/// Collects the conflicts found at one path.
struct At<'a> {
    names: &'a [String],
    path: &'a str,
    out: &'a mut Vec<Conflict>,
}

impl At<'_> {
    fn name(&self, e: &Entry) -> String {
        self.names[e.layer].clone()
    }
    /// `the base OS, 'a'` for sentences.
    fn list(&self, es: &[&Entry]) -> String {
        let v: Vec<String> = es.iter().map(|e| who(&self.names[e.layer])).collect();
        v.join(", ")
    }
    fn push(&mut self, kind: ConflictKind, providers: &[&Entry], winner: &Entry, detail: String) {
        self.out.push(Conflict {
            kind,
            path: self.path.to_string(),
            providers: providers.iter().map(|e| self.name(e)).collect(),
            winner: self.name(winner),
            detail,
        });
    }
    /// A whiteout or opaque dir of `e` hiding `below` (what lower layers have at this path).
    fn hiding(&mut self, kind: ConflictKind, below: Vec<&Entry>, e: &Entry, what: String) {
        let detail = if below.is_empty() {
            format!("{what}: it hides nothing today, but would hide whatever the base OS or a lower extension puts here later")
        } else {
            format!("{what}: it hides what {} ship(s) here", self.list(&below))
        };
        let mut providers = below;
        providers.push(e);
        self.push(kind, &providers, e, detail);
    }
}

/// Report the conflicts at one path of the merged hierarchy (what every layer has there, bottom
/// first; `names[layer]` names a layer, [`BASE`] for the base) into `out`, and return the
/// indices (into `entries`) of the directories overlayfs merges there: where the walk goes on.
pub fn judge(
    names: &[String],
    path: &str,
    entries: &[LayerEntry],
    out: &mut Vec<Conflict>,
) -> Vec<usize> {
    let entries: Vec<Entry> = entries
        .iter()
        .map(|e| Entry {
            layer: e.layer,
            node: classify(e),
            src: e,
        })
        .collect();
    let mut at = At { names, path, out };
    let visible = merged_dirs(&entries);
    report_hiding(&mut at, &entries, &visible);
    report_overlaps(&mut at, &entries);
    visible
}

/// Overlayfs lookup, top down: directories merge until an opaque one (inclusive) or a
/// non-directory (exclusive); a non-directory or whiteout on top hides everything below.
/// Returns the merged directories' indices, bottom first.
fn merged_dirs(entries: &[Entry]) -> Vec<usize> {
    let mut visible = Vec::new();
    for (i, e) in entries.iter().enumerate().rev() {
        let Node::Dir { opaque } = e.node else { break };
        visible.push(i);
        if opaque.is_some() {
            break;
        }
    }
    visible.reverse();
    visible
}

/// Whiteouts, and the opaque directory at the bottom of the merged ones.
fn report_hiding(at: &mut At<'_>, entries: &[Entry], visible: &[usize]) {
    for (k, e) in entries.iter().enumerate() {
        if let Node::Whiteout { how } = e.node {
            let below = entries[..k].iter().filter(|b| !b.is_whiteout()).collect();
            let what = format!("'{}' deletes this path with a whiteout ({how})", at.name(e));
            at.hiding(ConflictKind::Whiteout, below, e, what);
        }
    }
    if let Some(&i) = visible.first() {
        if let Node::Dir { opaque: Some(x) } = entries[i].node {
            let what = format!(
                "'{}' marks this directory opaque ({x}=y)",
                at.name(&entries[i])
            );
            at.hiding(
                ConflictKind::OpaqueDir,
                entries[..i].iter().collect(),
                &entries[i],
                what,
            );
        }
    }
}

/// A type change, the same file in several extensions, or an extension file over the base's.
fn report_overlaps(at: &mut At<'_>, entries: &[Entry]) {
    let names = at.names;
    let present: Vec<&Entry> = entries.iter().filter(|e| !e.is_whiteout()).collect();
    let Some(&top) = present.last() else {
        return;
    };
    let dirs = present.iter().filter(|e| e.is_dir()).count();
    let exts: Vec<&Entry> = present
        .iter()
        .copied()
        .filter(|e| e.layer != BASE_LAYER)
        .collect();
    if dirs > 0 && dirs < present.len() {
        let parts: Vec<String> = present
            .iter()
            .map(|e| format!("{} in {}", describe(e), who(&names[e.layer])))
            .collect();
        let mut detail = format!(
            "{}; the {} from {} wins and hides the others",
            parts.join(", "),
            type_word(top),
            who(&names[top.layer])
        );
        if top.is_dir() && present.iter().any(|e| e.layer == BASE_LAYER && !e.is_dir()) {
            detail.push_str(" (the base OS's entry disappears: whatever it pointed to is no longer reachable here)");
        }
        at.push(ConflictKind::TypeChange, &present, top, detail);
    } else if dirs == 0 && exts.len() > 1 {
        let mut detail = format!(
            "{} provided by {} ({}); '{}' wins",
            describe(top),
            at.list(&exts),
            content_word(&exts),
            names[top.layer]
        );
        if present[0].layer == BASE_LAYER {
            detail.push_str("; it also hides the base OS's entry");
        }
        at.push(ConflictKind::SameFile, &present, top, detail);
    } else if dirs == 0 && present.len() > 1 {
        let detail = format!(
            "'{}' hides the base OS's {} with its {} ({})",
            names[top.layer],
            describe(present[0]),
            describe(top),
            content_word(&present)
        );
        at.push(ConflictKind::ShadowsBase, &present, top, detail);
    }
}

/// `identical content` when every entry has the same type, mode and bytes (or link target,
/// or device number), so users can tell harmless duplicates.
fn content_word(es: &[&Entry]) -> &'static str {
    if es.windows(2).all(|w| same_content(w[0].src, w[1].src)) {
        "identical content"
    } else {
        "different content"
    }
}

/// `the base OS` or `'name'`, for sentences.
fn who(name: &str) -> String {
    if name == BASE {
        "the base OS".to_string()
    } else {
        format!("'{name}'")
    }
}

fn type_word(e: &Entry) -> &'static str {
    match e.src.kind {
        FileKind::Directory => "directory",
        FileKind::Symlink => "symbolic link",
        FileKind::Regular => "regular file",
        FileKind::CharDevice => "character device",
        FileKind::BlockDevice => "block device",
        FileKind::Fifo => "FIFO",
        FileKind::Socket => "socket",
    }
}

/// `a symbolic link to bin`, `a regular file`, `a character device 1:3`, …
fn describe(e: &Entry) -> String {
    let word = type_word(e);
    match (e.src.kind, &e.src.link_target) {
        (FileKind::Symlink, Some(t)) => format!("a {word} to {}", String::from_utf8_lossy(t)),
        (FileKind::CharDevice | FileKind::BlockDevice, _) => {
            let (major, minor) = e.src.rdev;
            format!("a {word} {major}:{minor}")
        }
        _ => format!("a {word}"),
    }
}

fn same_content(a: &LayerEntry, b: &LayerEntry) -> bool {
    if a.mode != b.mode {
        return false;
    }
    match a.kind {
        FileKind::Symlink => a.link_target.is_some() && a.link_target == b.link_target,
        FileKind::CharDevice | FileKind::BlockDevice => a.rdev == b.rdev,
        // An unreadable file cannot be shown to be a harmless duplicate.
        FileKind::Regular => a.size == b.size && a.content.is_some() && a.content == b.content,
        _ => true,
    }
}

/// Sort conflicts by path, then kind (the report order) and drop duplicates.
pub fn sort_conflicts(out: &mut Vec<Conflict>) {
    out.sort_by(|a, b| {
        (&a.path, a.kind, &a.providers, &a.winner).cmp(&(&b.path, b.kind, &b.providers, &b.winner))
    });
    out.dedup();
}

#[cfg(test)]
mod tests;
