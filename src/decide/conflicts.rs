//! Conflict detection: walk the extension layers (and the host hierarchy below them) the way
//! overlayfs will stack them, and report every path where layers fight over content: the same
//! non-directory in several extensions, an extension hiding a base-OS file, a directory
//! replaced by a non-directory (or the reverse, e.g. Flatcar's `usr/sbin → bin` symlink hidden
//! by a real `usr/sbin` directory, sysext-bakery#131), opaque directories and whiteouts
//! (sysext-bakery#50, Flatcar#1414/#1265).
//!
//! Everything here only reads (lstat, readdir, getxattr) and works on plain directories and on
//! mounted images alike; whoever calls it decides where the trees come from.

use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Provider name of the host (base OS) tree; always the first provider when present.
pub const BASE: &str = "base";

/// Layer index of the base tree inside the walk (extensions are 1..).
const BASE_LAYER: usize = 0;

/// Directory xattrs that make overlayfs hide the lower layers below a directory.
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Xattrs that turn an empty regular file into a whiteout (Linux ≥ 6.7 "xattr whiteouts").
const WHITEOUT_XATTRS: [&str; 2] = ["trusted.overlay.whiteout", "user.overlay.whiteout"];

/// Every extension ships its own release file here; they never collide in a meaningful way.
const RELEASE_PREFIXES: [&str; 2] = [
    "/usr/lib/extension-release.d/extension-release.",
    "/etc/extension-release.d/extension-release.",
];

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

/// What one layer has at one path.
#[derive(Debug)]
enum Node {
    /// A directory; `opaque` names the xattr that makes it opaque.
    Dir { opaque: Option<&'static str> },
    /// A whiteout; `how` says what kind.
    Whiteout { how: &'static str },
    /// Any other non-directory (file, symlink, device, FIFO, socket).
    Other,
}

/// One layer's entry at one path.
#[derive(Debug)]
struct Entry {
    layer: usize,
    path: PathBuf,
    meta: Metadata,
    node: Node,
}

impl Entry {
    fn is_dir(&self) -> bool {
        matches!(self.node, Node::Dir { .. })
    }
    fn is_whiteout(&self) -> bool {
        matches!(self.node, Node::Whiteout { .. })
    }
}

/// Scan `hierarchies` of `layers` (bottom first, top = winner) over the host tree `base`.
///
/// Never follows symlinks below a hierarchy and never leaves a layer root; a directory that a
/// higher layer replaces with a non-directory (or hides by opacity) is not descended into.
/// Output is sorted by path, then kind.
pub fn scan(
    layers: &[(String, PathBuf)],
    base: Option<&Path>,
    hierarchies: &[PathBuf],
) -> Result<Vec<Conflict>> {
    let mut names = vec![BASE.to_string()];
    names.extend(layers.iter().map(|(n, _)| n.clone()));
    let mut out = Vec::new();
    for h in hierarchies {
        let mut roots = Vec::new();
        if let Some(b) = base {
            if let Some(p) = hierarchy_dir(b, h, false)? {
                roots.extend(entry(BASE_LAYER, p)?);
            }
        }
        for (i, (_, root)) in layers.iter().enumerate() {
            if let Some(p) = hierarchy_dir(root, h, true)? {
                roots.extend(entry(i + 1, p)?);
            }
        }
        walk_hierarchy(&names, h, roots, &mut out)?;
    }
    out.sort_by(|a, b| {
        (&a.path, a.kind, &a.providers, &a.winner).cmp(&(&b.path, b.kind, &b.providers, &b.winner))
    });
    out.dedup();
    Ok(out)
}

/// The directory a layer contributes to hierarchy `h`, resolved inside `root` as the overlay
/// lower will be; `None` when absent, not a directory, or (for extensions) empty, since the
/// merge leaves such layers out of that hierarchy.
fn hierarchy_dir(root: &Path, h: &Path, skip_empty: bool) -> Result<Option<PathBuf>> {
    let p = match crate::chase::chase(root, h) {
        Ok(r) => r.host,
        Err(crate::chase::ChaseError::Io { path, source }) => {
            return Err(source).with_context(|| format!("resolving {}", path.display()))
        }
        // Missing, dangling or blocked by a non-directory: the layer has nothing here.
        Err(_) => return Ok(None),
    };
    let ctx = || format!("reading directory {}", p.display());
    if !std::fs::metadata(&p).with_context(ctx)?.is_dir() {
        return Ok(None);
    }
    if skip_empty && std::fs::read_dir(&p).with_context(ctx)?.next().is_none() {
        return Ok(None);
    }
    Ok(Some(p))
}

/// The entry at `path`, or `None` when there is none (or it vanished since readdir).
fn entry(layer: usize, path: PathBuf) -> Result<Option<Entry>> {
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
    };
    let node = classify(layer, &path, &meta)?;
    Ok(Some(Entry {
        layer,
        path,
        meta,
        node,
    }))
}

fn classify(layer: usize, path: &Path, meta: &Metadata) -> Result<Node> {
    let ft = meta.file_type();
    if ft.is_dir() {
        // The base is the bottom layer: an opaque flag there hides nothing.
        let opaque = if layer == BASE_LAYER {
            None
        } else {
            first_xattr(path, &OPAQUE_XATTRS, |v| v == b"y")?
        };
        return Ok(Node::Dir { opaque });
    }
    if layer == BASE_LAYER {
        return Ok(Node::Other);
    }
    if ft.is_char_device() && meta.rdev() == 0 {
        return Ok(Node::Whiteout {
            how: "0:0 character device",
        });
    }
    // Only empty files can be xattr whiteouts; skipping the others saves a syscall per file.
    if ft.is_file() && meta.len() == 0 {
        if let Some(x) = first_xattr(path, &WHITEOUT_XATTRS, |_| true)? {
            return Ok(Node::Whiteout { how: x });
        }
    }
    Ok(Node::Other)
}

/// The first of `names` present on `path` (not followed) whose value satisfies `accept`.
fn first_xattr(
    path: &Path,
    names: &[&'static str],
    accept: impl Fn(&[u8]) -> bool,
) -> Result<Option<&'static str>> {
    use rustix::io::Errno;
    for name in names {
        let mut buf = [0u8; 16];
        match rustix::fs::lgetxattr(path, *name, &mut buf[..]) {
            Ok(n) if accept(&buf[..n]) => return Ok(Some(name)),
            // Absent, unsupported by the file system, hidden from us (trusted.* without
            // CAP_SYS_ADMIN) or longer than any value we accept: not this xattr.
            Ok(_)
            | Err(Errno::NODATA)
            | Err(Errno::OPNOTSUPP)
            | Err(Errno::RANGE)
            | Err(Errno::ACCESS)
            | Err(Errno::PERM) => {}
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("reading xattr {name} of {}", path.display()))
            }
        }
    }
    Ok(None)
}

/// Walk one hierarchy over all layers at once, depth first.
fn walk_hierarchy(
    names: &[String],
    h: &Path,
    roots: Vec<Entry>,
    out: &mut Vec<Conflict>,
) -> Result<()> {
    let mut stack: Vec<(PathBuf, Vec<Entry>)> = vec![(PathBuf::new(), roots)];
    while let Some((rel, entries)) = stack.pop() {
        let shown = if rel.as_os_str().is_empty() {
            h.display().to_string()
        } else {
            h.join(&rel).display().to_string()
        };
        if RELEASE_PREFIXES.iter().any(|p| shown.starts_with(p)) {
            continue;
        }
        let visible = judge(names, &shown, &entries, out);
        // Below a path only the base has, no extension can conflict.
        if !visible.iter().any(|&i| entries[i].layer != BASE_LAYER) {
            continue;
        }
        let mut children: BTreeMap<OsString, Vec<Entry>> = BTreeMap::new();
        for dir in visible.iter().map(|&i| &entries[i]) {
            // The base can be huge (all of /usr): it is only looked up by the extensions' names.
            if dir.layer == BASE_LAYER {
                continue;
            }
            let ctx = || format!("reading directory {}", dir.path.display());
            let rd = match std::fs::read_dir(&dir.path) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    tracing::warn!("Not checking {} for conflicts: {e}", dir.path.display());
                    continue;
                }
                Err(e) => return Err(e).with_context(ctx),
            };
            for de in rd {
                let name = de.with_context(ctx)?.file_name();
                if let Some(child) = entry(dir.layer, dir.path.join(&name))? {
                    children.entry(name).or_default().push(child);
                }
            }
        }
        let base = visible.first().map(|&i| &entries[i]);
        for (name, mut ents) in children {
            if let Some(b) = base.filter(|b| b.layer == BASE_LAYER) {
                // The base is the bottom layer: its entry goes first.
                match entry(BASE_LAYER, b.path.join(&name)) {
                    Ok(Some(e)) => ents.insert(0, e),
                    Ok(None) => {}
                    // E.g. an unsearchable base directory when not running as root.
                    Err(e) => tracing::warn!("Not comparing with the base OS: {e:#}"),
                }
            }
            stack.push((rel.join(name), ents));
        }
    }
    Ok(())
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

/// Report the conflicts at one path (entries bottom first) and return the indices of the
/// directories overlayfs merges there (what the walk descends into).
fn judge(names: &[String], path: &str, entries: &[Entry], out: &mut Vec<Conflict>) -> Vec<usize> {
    let mut at = At { names, path, out };
    // Overlayfs lookup, top down: directories merge until an opaque one (inclusive) or a
    // non-directory (exclusive); a non-directory or whiteout on top hides everything below.
    let mut visible = Vec::new();
    for (i, e) in entries.iter().enumerate().rev() {
        let Node::Dir { opaque } = e.node else { break };
        visible.push(i);
        if opaque.is_some() {
            break;
        }
    }
    visible.reverse();

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

    let present: Vec<&Entry> = entries.iter().filter(|e| !e.is_whiteout()).collect();
    let Some(&top) = present.last() else {
        return visible;
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
    visible
}

/// `identical content` when every entry has the same type, mode and bytes (or link target,
/// or device number), so users can tell harmless duplicates.
fn content_word(es: &[&Entry]) -> &'static str {
    if es.windows(2).all(|w| same_content(w[0], w[1])) {
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
    let ft = e.meta.file_type();
    let words = [
        (ft.is_dir(), "directory"),
        (ft.is_symlink(), "symbolic link"),
        (ft.is_file(), "regular file"),
        (ft.is_char_device(), "character device"),
        (ft.is_block_device(), "block device"),
        (ft.is_fifo(), "FIFO"),
    ];
    words
        .iter()
        .find(|(is, _)| *is)
        .map_or("socket", |(_, w)| w)
}

/// `a symbolic link to bin`, `a regular file`, `a character device 1:3`, …
fn describe(e: &Entry) -> String {
    let (ft, word, rdev) = (e.meta.file_type(), type_word(e), e.meta.rdev());
    if ft.is_symlink() {
        let target = std::fs::read_link(&e.path).map(|t| format!(" to {}", t.display()));
        format!("a {word}{}", target.unwrap_or_default())
    } else if ft.is_char_device() || ft.is_block_device() {
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        format!("a {word} {major}:{minor}")
    } else {
        format!("a {word}")
    }
}

fn same_content(a: &Entry, b: &Entry) -> bool {
    if a.meta.mode() != b.meta.mode() {
        return false;
    }
    let ft = a.meta.file_type();
    if ft.is_symlink() {
        matches!((std::fs::read_link(&a.path), std::fs::read_link(&b.path)), (Ok(x), Ok(y)) if x == y)
    } else if ft.is_char_device() || ft.is_block_device() {
        a.meta.rdev() == b.meta.rdev()
    } else if ft.is_file() {
        // An unreadable file cannot be shown to be a harmless duplicate.
        a.meta.len() == b.meta.len() && files_equal(&a.path, &b.path).unwrap_or(false)
    } else {
        true
    }
}

fn files_equal(a: &Path, b: &Path) -> io::Result<bool> {
    let mut ra = BufReader::with_capacity(64 * 1024, File::open(a)?);
    let mut rb = BufReader::with_capacity(64 * 1024, File::open(b)?);
    loop {
        let (ba, bb) = (ra.fill_buf()?, rb.fill_buf()?);
        if ba.is_empty() || bb.is_empty() {
            return Ok(ba.is_empty() && bb.is_empty());
        }
        let n = ba.len().min(bb.len());
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        ra.consume(n);
        rb.consume(n);
    }
}

/// The extensions the refuse policy drops for these conflicts, with the reason for each.
///
/// Layer by layer, an extension is dropped when it conflicts with the base OS or with an
/// extension below it that is kept, so the later (winning) side always goes. `ShadowsBase`
/// never drops. Same-file conflicts are judged between every pair; type changes, opaque
/// directories and whiteouts between their winner and everything below it. Dropping can
/// uncover conflicts that were hidden (e.g. below an opaque directory), so use [`refuse`] to
/// iterate until the set is clean.
pub fn to_drop(conflicts: &[Conflict]) -> Vec<(String, String)> {
    // later extension -> (earlier provider it must not coexist with, or None: always; reason)
    let mut edges: HashMap<&str, Vec<(Option<&str>, String)>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for c in conflicts {
        let p = &c.providers;
        let pairs: Vec<(&str, &str)> = match c.kind {
            ConflictKind::ShadowsBase => Vec::new(),
            ConflictKind::SameFile => (0..p.len())
                .flat_map(|j| p[..j].iter().map(move |e| (p[j].as_str(), e.as_str())))
                .filter(|(l, e)| *e != BASE && l != e)
                .collect(),
            _ => {
                if p.iter().all(|e| *e == c.winner) {
                    // Hides nothing yet, but would hide future base content: refuse it too.
                    let r = format!("{} conflict on {}: {}", c.kind, c.path, c.detail);
                    edges.entry(&c.winner).or_default().push((None, r));
                }
                p.iter()
                    .filter(|e| **e != c.winner)
                    .map(|e| (c.winner.as_str(), e.as_str()))
                    .collect()
            }
        };
        for (later, earlier) in pairs.into_iter().filter(|(l, _)| *l != BASE) {
            let r = format!(
                "{} conflict with {} on {}: {}",
                c.kind,
                who(earlier),
                c.path,
                c.detail
            );
            edges.entry(later).or_default().push((Some(earlier), r));
        }
        for n in p.iter().map(String::as_str) {
            if n != BASE && !order.contains(&n) {
                order.push(n);
            }
        }
    }
    let mut memo = HashMap::new();
    order
        .into_iter()
        .filter_map(|n| drop_reason(n, &edges, &mut memo).map(|r| (n.to_string(), r)))
        .collect()
}

/// Why `n` is dropped (None: kept): it conflicts with the base or with a kept lower layer.
/// Edges only point to lower layers, so the recursion ends.
fn drop_reason<'a>(
    n: &'a str,
    edges: &HashMap<&'a str, Vec<(Option<&'a str>, String)>>,
    memo: &mut HashMap<&'a str, Option<String>>,
) -> Option<String> {
    if let Some(r) = memo.get(n) {
        return r.clone();
    }
    // Provisionally kept: breaks cycles that only malformed input could contain.
    memo.insert(n, None);
    let reason = edges.get(n).and_then(|es| {
        es.iter()
            .find(|(earlier, _)| match earlier {
                None => true,
                Some(e) => *e == BASE || drop_reason(e, edges, memo).is_none(),
            })
            .map(|(_, r)| r.clone())
    });
    memo.insert(n, reason.clone());
    reason
}

/// What the refuse policy decided for one layer set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusal {
    /// The conflicts of the full layer set (what to report).
    pub conflicts: Vec<Conflict>,
    /// The dropped extensions in drop order, with the reason for each.
    pub dropped: Vec<(String, String)>,
}

/// Apply the refuse policy: scan, drop, rescan the remaining layers until nothing is dropped.
pub fn refuse(
    layers: &[(String, PathBuf)],
    base: Option<&Path>,
    hierarchies: &[PathBuf],
) -> Result<Refusal> {
    refuse_with(layers, |l| scan(l, base, hierarchies))
}

/// [`refuse`] with a caller-supplied scan (e.g. different bases per hierarchy).
pub fn refuse_with(
    layers: &[(String, PathBuf)],
    mut scan_fn: impl FnMut(&[(String, PathBuf)]) -> Result<Vec<Conflict>>,
) -> Result<Refusal> {
    let first = scan_fn(layers)?;
    let mut dropped: Vec<(String, String)> = Vec::new();
    let mut conflicts = first.clone();
    let mut kept: Vec<(String, PathBuf)> = layers.to_vec();
    // Every round drops at least one layer, so this ends after at most len + 1 rounds.
    for _ in 0..=layers.len() {
        let round = to_drop(&conflicts);
        if round.is_empty() {
            break;
        }
        kept.retain(|(n, _)| !round.iter().any(|(d, _)| d == n));
        dropped.extend(round);
        conflicts = scan_fn(&kept)?;
    }
    Ok(Refusal {
        conflicts: first,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{makedev, mknodat, FileType, Mode, XattrFlags, CWD};
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// A temp dir with one subtree per layer (`base`, `a`, `b`, …).
    struct Trees {
        t: tempfile::TempDir,
    }

    impl Trees {
        fn new() -> Trees {
            Trees {
                t: tempfile::tempdir().unwrap(),
            }
        }
        fn p(&self, rel: &str) -> PathBuf {
            self.t.path().join(rel)
        }
        fn file(&self, rel: &str, text: &str) -> &Self {
            let p = self.p(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            self
        }
        fn dir(&self, rel: &str) -> &Self {
            std::fs::create_dir_all(self.p(rel)).unwrap();
            self
        }
        fn link(&self, rel: &str, target: &str) -> &Self {
            let p = self.p(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, &p).unwrap();
            self
        }
        /// Needs root (CI is root): character devices, also the 0:0 whiteout.
        fn chardev(&self, rel: &str, major: u32, minor: u32) -> &Self {
            let p = self.p(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            mknodat(
                CWD,
                &p,
                FileType::CharacterDevice,
                Mode::from_raw_mode(0o600),
                makedev(major, minor),
            )
            .unwrap_or_else(|e| panic!("mknod {} (needs root): {e}", p.display()));
            self
        }
        /// `trusted.*` needs root.
        fn xattr(&self, rel: &str, name: &str, value: &[u8]) -> &Self {
            rustix::fs::lsetxattr(self.p(rel), name, value, XattrFlags::empty())
                .unwrap_or_else(|e| panic!("setxattr {name} on {rel}: {e}"));
            self
        }
        fn layers(&self, names: &[&str]) -> Vec<(String, PathBuf)> {
            names.iter().map(|n| (n.to_string(), self.p(n))).collect()
        }
        fn scan(&self, names: &[&str], hierarchies: &[&str]) -> Vec<Conflict> {
            let base = self.p("base");
            let base = base.exists().then_some(base);
            let hs: Vec<PathBuf> = hierarchies.iter().map(PathBuf::from).collect();
            scan(&self.layers(names), base.as_deref(), &hs).unwrap()
        }
        fn usr(&self, names: &[&str]) -> Vec<Conflict> {
            self.scan(names, &["/usr"])
        }
    }

    fn kinds(cs: &[Conflict]) -> Vec<(ConflictKind, &str)> {
        cs.iter().map(|c| (c.kind, c.path.as_str())).collect()
    }

    fn one(cs: &[Conflict]) -> &Conflict {
        assert_eq!(cs.len(), 1, "{cs:#?}");
        &cs[0]
    }

    #[test]
    fn same_regular_file_in_three_extensions_top_wins() {
        let t = Trees::new();
        t.file("a/usr/bin/foo", "a").file("b/usr/bin/foo", "b");
        t.file("c/usr/bin/foo", "c").file("c/usr/bin/only-c", "c");
        let cs = t.usr(&["a", "b", "c"]);
        let c = one(&cs);
        assert_eq!(c.kind, ConflictKind::SameFile);
        assert_eq!(c.path, "/usr/bin/foo");
        assert_eq!(c.providers, ["a", "b", "c"]);
        assert_eq!(c.winner, "c");
        assert!(c.detail.contains("different content"), "{}", c.detail);
    }

    #[test]
    fn identical_duplicates_are_reported_as_identical() {
        let t = Trees::new();
        t.file("a/usr/bin/foo", "same")
            .file("b/usr/bin/foo", "same");
        let c = one(&t.usr(&["a", "b"])).clone();
        assert_eq!(c.kind, ConflictKind::SameFile);
        assert!(c.detail.contains("identical content"), "{}", c.detail);

        // Same bytes, different mode: not identical.
        std::fs::set_permissions(t.p("b/usr/bin/foo"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let c = one(&t.usr(&["a", "b"])).clone();
        assert!(c.detail.contains("different content"), "{}", c.detail);
    }

    #[test]
    fn large_files_differing_after_the_first_chunk_are_different() {
        let t = Trees::new();
        let mut big = "x".repeat(200_000);
        t.file("a/usr/lib/big", &big);
        big.push('y');
        big.remove(0);
        t.file("b/usr/lib/big", &big);
        assert!(one(&t.usr(&["a", "b"]))
            .detail
            .contains("different content"));
    }

    #[test]
    fn same_symlink_in_two_extensions() {
        let t = Trees::new();
        t.link("a/usr/bin/x", "foo").link("b/usr/bin/x", "bar");
        let c = one(&t.usr(&["a", "b"])).clone();
        assert_eq!((c.kind, c.winner.as_str()), (ConflictKind::SameFile, "b"));
        assert!(c.detail.contains("symbolic link to bar"), "{}", c.detail);
        assert!(c.detail.contains("different content"));

        let t = Trees::new();
        t.link("a/usr/bin/x", "foo").link("b/usr/bin/x", "foo");
        assert!(one(&t.usr(&["a", "b"]))
            .detail
            .contains("identical content"));
    }

    #[test]
    fn same_device_in_two_extensions() {
        let t = Trees::new();
        t.chardev("a/usr/share/dev/null", 1, 3);
        t.chardev("b/usr/share/dev/null", 1, 3);
        let c = one(&t.usr(&["a", "b"])).clone();
        assert_eq!(c.kind, ConflictKind::SameFile);
        assert!(c.detail.contains("character device 1:3"), "{}", c.detail);
        assert!(c.detail.contains("identical content"));

        let t = Trees::new();
        t.chardev("a/usr/share/dev/null", 1, 3);
        t.chardev("b/usr/share/dev/null", 1, 5);
        assert!(one(&t.usr(&["a", "b"]))
            .detail
            .contains("different content"));
    }

    #[test]
    fn extension_file_over_base_file_shadows_base() {
        let t = Trees::new();
        t.file("base/usr/bin/tool", "host")
            .file("base/usr/bin/other", "host");
        t.file("a/usr/bin/tool", "ext");
        let c = one(&t.usr(&["a"])).clone();
        assert_eq!(c.kind, ConflictKind::ShadowsBase);
        assert_eq!(c.providers, [BASE, "a"]);
        assert_eq!(c.winner, "a");
        assert!(c.detail.contains("different content"));

        // Two extensions and the base: one same-file conflict that names the base too.
        t.file("b/usr/bin/tool", "ext");
        let c = one(&t.usr(&["a", "b"])).clone();
        assert_eq!(c.kind, ConflictKind::SameFile);
        assert_eq!(c.providers, [BASE, "a", "b"]);
        assert_eq!(c.winner, "b");
        assert!(c.detail.contains("identical content") && c.detail.contains("base OS"));
    }

    #[test]
    fn without_base_nothing_shadows() {
        let t = Trees::new();
        t.file("a/usr/bin/tool", "ext");
        let hs = [PathBuf::from("/usr")];
        assert!(scan(&t.layers(&["a"]), None, &hs).unwrap().is_empty());
    }

    #[test]
    fn usr_sbin_symlink_replaced_by_directory() {
        // Flatcar's /usr/sbin -> bin, hidden by an extension's real usr/sbin (sysext-bakery#131).
        let t = Trees::new();
        t.link("base/usr/sbin", "bin").file("base/usr/bin/ls", "ls");
        t.file("a/usr/sbin/tool", "tool").file("a/usr/bin/ls", "ls");
        let cs = t.usr(&["a"]);
        assert_eq!(
            kinds(&cs),
            [
                (ConflictKind::ShadowsBase, "/usr/bin/ls"),
                (ConflictKind::TypeChange, "/usr/sbin")
            ]
        );
        let c = &cs[1];
        assert_eq!(c.providers, [BASE, "a"]);
        assert_eq!(c.winner, "a");
        assert!(c.detail.contains("symbolic link to bin"), "{}", c.detail);
        assert!(
            c.detail.contains("base OS's entry disappears"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn directory_replaced_by_symlink_is_not_descended() {
        let t = Trees::new();
        t.file("base/usr/lib64/libc.so", "c");
        t.file("a/usr/lib64/libc.so", "a")
            .file("b/usr/lib64/libc.so", "b");
        t.link("c/usr/lib64", "lib");
        let cs = t.usr(&["a", "b", "c"]);
        let c = one(&cs);
        assert_eq!(
            (c.kind, c.path.as_str()),
            (ConflictKind::TypeChange, "/usr/lib64")
        );
        assert_eq!(c.providers, [BASE, "a", "b", "c"]);
        assert_eq!(c.winner, "c");
    }

    #[test]
    fn directory_above_a_non_directory_hides_the_lower_directory() {
        let t = Trees::new();
        t.file("a/usr/share/x/f", "a");
        t.file("b/usr/share/x", "b");
        t.file("c/usr/share/x/f", "c");
        let cs = t.usr(&["a", "b", "c"]);
        // a's x/f is hidden by b's file, so it does not collide with c's.
        let c = one(&cs);
        assert_eq!((c.kind, c.winner.as_str()), (ConflictKind::TypeChange, "c"));
        assert_eq!(c.providers, ["a", "b", "c"]);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let t = Trees::new();
        // A link to a directory outside the layer, and a loop: neither is walked.
        t.file("outside/secret", "s");
        t.link("a/usr/share/out", t.p("outside").to_str().unwrap());
        t.link("a/usr/share/loop", ".");
        t.file("b/usr/share/out/secret", "b");
        let cs = t.usr(&["a", "b"]);
        let c = one(&cs);
        assert_eq!(
            (c.kind, c.path.as_str()),
            (ConflictKind::TypeChange, "/usr/share/out")
        );
    }

    #[test]
    fn trusted_opaque_directory_hides_lower_content() {
        let t = Trees::new();
        t.file("base/usr/share/doc/readme", "host");
        t.file("a/usr/share/doc/a.txt", "a");
        t.file("b/usr/share/doc/readme", "b");
        t.xattr("b/usr/share/doc", "trusted.overlay.opaque", b"y");
        let cs = t.usr(&["a", "b"]);
        // readme below the opaque dir does not shadow the (hidden) base file.
        let c = one(&cs);
        assert_eq!(
            (c.kind, c.path.as_str()),
            (ConflictKind::OpaqueDir, "/usr/share/doc")
        );
        assert_eq!(c.providers, [BASE, "a", "b"]);
        assert_eq!(c.winner, "b");
        assert!(
            c.detail.contains("trusted.overlay.opaque=y"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn user_opaque_directory_and_opaque_hierarchy_root() {
        let t = Trees::new();
        t.file("base/usr/bin/sh", "sh");
        t.file("a/usr/lib/x", "a");
        t.xattr("a/usr", "user.overlay.opaque", b"y");
        let c = one(&t.usr(&["a"])).clone();
        assert_eq!((c.kind, c.path.as_str()), (ConflictKind::OpaqueDir, "/usr"));
        assert!(c.detail.contains("user.overlay.opaque"));

        // "x" means "has xattr whiteouts", not opaque.
        let t = Trees::new();
        t.file("a/usr/lib/x", "a");
        t.xattr("a/usr/lib", "trusted.overlay.opaque", b"x");
        assert!(t.usr(&["a"]).is_empty());
    }

    #[test]
    fn opaque_directory_hiding_nothing_is_still_reported() {
        let t = Trees::new();
        t.file("a/usr/share/new/f", "a");
        t.xattr("a/usr/share/new", "trusted.overlay.opaque", b"y");
        let c = one(&t.usr(&["a"])).clone();
        assert_eq!(c.providers, ["a"]);
        assert!(c.detail.contains("hides nothing today"));
    }

    #[test]
    fn whiteout_char_device_deletes_lower_file() {
        let t = Trees::new();
        t.file("base/usr/bin/old", "host");
        t.file("a/usr/bin/old", "a");
        t.chardev("b/usr/bin/old", 0, 0);
        let cs = t.usr(&["a", "b"]);
        assert_eq!(
            kinds(&cs),
            [
                (ConflictKind::ShadowsBase, "/usr/bin/old"),
                (ConflictKind::Whiteout, "/usr/bin/old")
            ]
        );
        let w = &cs[1];
        assert_eq!(w.providers, [BASE, "a", "b"]);
        assert_eq!(w.winner, "b");
        assert!(w.detail.contains("0:0 character device"), "{}", w.detail);
    }

    #[test]
    fn xattr_whiteout_and_whiteout_of_nothing() {
        let t = Trees::new();
        t.file("base/usr/lib/gone", "host");
        t.file("a/usr/lib/gone", "");
        t.xattr("a/usr/lib/gone", "trusted.overlay.whiteout", b"");
        t.chardev("a/usr/lib/never-was", 0, 0);
        let cs = t.usr(&["a"]);
        assert_eq!(
            kinds(&cs),
            [
                (ConflictKind::Whiteout, "/usr/lib/gone"),
                (ConflictKind::Whiteout, "/usr/lib/never-was")
            ]
        );
        assert_eq!(cs[0].providers, [BASE, "a"]);
        assert!(cs[0].detail.contains("trusted.overlay.whiteout"));
        assert_eq!(cs[1].providers, ["a"]);
        assert!(cs[1].detail.contains("hides nothing today"));
    }

    #[test]
    fn extension_release_files_and_shared_directories_are_not_conflicts() {
        let t = Trees::new();
        for n in ["a", "b"] {
            t.file(
                &format!("{n}/usr/lib/extension-release.d/extension-release.{n}"),
                "ID=_any\n",
            );
            t.file(
                &format!("{n}/usr/lib/extension-release.d/extension-release.shared"),
                "ID=_any\n",
            );
            t.file(
                &format!("{n}/etc/extension-release.d/extension-release.{n}"),
                "ID=_any\n",
            );
            t.file(&format!("{n}/usr/share/{n}/file"), n);
            t.dir(&format!("{n}/opt/common/empty"));
        }
        t.dir("base/usr/share").dir("base/etc");
        assert!(t.scan(&["a", "b"], &["/usr", "/opt", "/etc"]).is_empty());
    }

    #[test]
    fn every_hierarchy_is_scanned_and_output_is_sorted() {
        let t = Trees::new();
        for n in ["a", "b"] {
            t.file(&format!("{n}/opt/z"), n)
                .file(&format!("{n}/opt/b"), n);
            t.file(&format!("{n}/usr/a"), n);
        }
        t.file("a/etc/not-scanned", "a")
            .file("b/etc/not-scanned", "b");
        let cs = t.scan(&["a", "b"], &["/usr", "/opt"]);
        let paths: Vec<&str> = cs.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/opt/b", "/opt/z", "/usr/a"]);
    }

    fn conflict(kind: ConflictKind, providers: &[&str]) -> Conflict {
        Conflict {
            kind,
            path: "/usr/x".into(),
            providers: providers.iter().map(|s| s.to_string()).collect(),
            winner: providers.last().unwrap().to_string(),
            detail: "d".into(),
        }
    }

    fn dropped(cs: &[Conflict]) -> Vec<String> {
        to_drop(cs).into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn refuse_drops_the_later_extension() {
        use ConflictKind::*;
        assert_eq!(dropped(&[conflict(SameFile, &["a", "b"])]), ["b"]);
        assert_eq!(
            dropped(&[conflict(SameFile, &[BASE, "a", "b", "c"])]),
            ["b", "c"]
        );
        // b goes for its conflict with a; then c no longer conflicts with anything kept.
        assert_eq!(
            dropped(&[
                conflict(SameFile, &["a", "b"]),
                conflict(SameFile, &["b", "c"])
            ]),
            ["b"]
        );
        assert_eq!(dropped(&[conflict(TypeChange, &[BASE, "a"])]), ["a"]);
        assert_eq!(dropped(&[conflict(TypeChange, &["a", "b", "c"])]), ["c"]);
        assert_eq!(dropped(&[conflict(OpaqueDir, &[BASE, "a", "b"])]), ["b"]);
        assert_eq!(dropped(&[conflict(OpaqueDir, &["a"])]), ["a"]);
        assert_eq!(dropped(&[conflict(Whiteout, &[BASE, "a"])]), ["a"]);
        let reasons = to_drop(&[conflict(SameFile, &["a", "b"])]);
        assert!(
            reasons[0]
                .1
                .contains("same-file conflict with 'a' on /usr/x"),
            "{reasons:?}"
        );
    }

    #[test]
    fn refuse_never_drops_for_base_shadowing_alone() {
        use ConflictKind::*;
        assert!(to_drop(&[conflict(ShadowsBase, &[BASE, "a"])]).is_empty());
        assert!(to_drop(&[]).is_empty());
    }

    #[test]
    fn refuse_rescans_what_a_dropped_layer_hid() {
        let t = Trees::new();
        t.file("a/usr/share/x/f", "a").file("b/usr/share/x/f", "b");
        t.file("c/usr/share/x/g", "c");
        t.xattr("c/usr/share/x", "trusted.overlay.opaque", b"y");
        let hs = [PathBuf::from("/usr")];
        let Refusal {
            conflicts: found,
            dropped: drops,
        } = refuse(&t.layers(&["a", "b", "c"]), None, &hs).unwrap();
        // Only the opaque dir is visible at first; a/b's same file shows once c is gone.
        assert_eq!(kinds(&found), [(ConflictKind::OpaqueDir, "/usr/share/x")]);
        let names: Vec<&str> = drops.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["c", "b"]);
    }

    #[test]
    fn policy_and_kind_spellings() {
        for p in [
            ConflictPolicy::Refuse,
            ConflictPolicy::Warn,
            ConflictPolicy::Off,
        ] {
            assert_eq!(p.as_str().parse::<ConflictPolicy>(), Ok(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(ConflictPolicy::default(), ConflictPolicy::Warn);
        assert!("yes"
            .parse::<ConflictPolicy>()
            .unwrap_err()
            .contains("refuse, warn or off"));
        let v = serde_json::to_value(conflict(ConflictKind::ShadowsBase, &[BASE, "a"])).unwrap();
        assert_eq!(v["kind"], "shadows-base");
        assert_eq!(v["winner"], "a");
        assert_eq!(v["providers"], serde_json::json!(["base", "a"]));
    }
}
