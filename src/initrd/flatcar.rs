//! Flatcar's extension selection, as `initrd-setup-root-after-ignition` does it (flatcar/bootengine
//! `dracut/99setup-root`, PR 115 @e9a7ee2, unchanged in the latest stored version @63f5497):
//! `enabled-sysext.conf` → `/etc/extensions/flatcar-NAME.raw` links, the OEM sysext A/B selection
//! and the one-time OEM migration.
//!
//! Functional core, imperative shell: [`gather`] reads the root into [`Inputs`], [`plan`] decides
//! (pure, printable for `--dry-run`), [`apply`] performs the [`Action`]s inside the root.
//!
//! Left to the shell: downloads. Flatcar fetches a missing image over the network and verifies
//! it as a signed update payload (ue-rs `download_sysext`); the binary has no network, so a
//! missing image becomes [`Action::Missing`], reported by [`missing`] (where to place it, and
//! the policy that fails the boot or goes on). A downloader runs between the report and the
//! selection (docs/initrd.md, "Missing images").
//!
//! Deliberate differences from the script (all fail-safe): `-NAME` matches after comments and
//! surrounding whitespace are removed (the script's `grep -v -x -f` needs byte-equal lines, so
//! `zfs # note` could not be disabled); `flatcar-NAME.raw` symlinks into `/etc/flatcar/sysext/`
//! whose NAME is no longer enabled are removed (the script leaves them, so a disabled extension
//! stayed merged until the next update); `/dev/null` links and non-symlinks are never replaced
//! (`ln -fs` would); the previous OEM image is only moved off the OEM partition if it is a
//! regular file under `/oem/` (the script moves whatever the link points at); unusable names and
//! unsafe migration entries are skipped with a reason; a missing `/usr/share/flatcar/oems/ID`
//! while `migrate-oem-ID` exists is logged and the flag kept (the script fails the boot).

use crate::kernel::root::Root;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

const EXTENSIONS: &str = "/etc/extensions";
const FLATCAR_SYSEXT: &str = "/etc/flatcar/sysext";
const OEM_SYSEXT: &str = "/oem/sysext";
const ROOT_OEM_SYSEXT: &str = "/etc/flatcar/oem-sysext";
const USER_CONF: &str = "/etc/flatcar/enabled-sysext.conf";
const VENDOR_CONF: &str = "/usr/share/flatcar/enabled-sysext.conf";
const OEM_RELEASE: &str = "/oem/oem-release";
const OS_RELEASE: &str = "/usr/lib/os-release";
const OEM_LISTS: &str = "/usr/share/flatcar/oems";
const CLOUDINIT_WANTS: &str = "/etc/systemd/system/multi-user.target.wants/oem-cloudinit.service";
const CLOUDINIT_UNIT: &str = "/usr/lib/systemd/system/oem-cloudinit.service";
const DEV_NULL: &str = "/dev/null";
const RELEASE_SERVER: &str = "https://update.release.flatcar-linux.net";

/// What one word of an `enabled-sysext.conf` line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfWord {
    /// `NAME`: enable `flatcar-NAME`.
    Enable(String),
    /// `-NAME`: remove NAME (a vendor default, or an earlier /etc line).
    Remove(String),
}

/// A line (or one word of it) of `enabled-sysext.conf` that is skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// Why it is skipped.
    pub reason: String,
}

/// Parse `enabled-sysext.conf`: the usable words with their line numbers, and the lines (or
/// words) that are skipped. Comments (`#` to the end of the line) and blank lines are ignored,
/// whitespace separates names (the script's `for NAME in $(…)`).
///
/// One bad line is one bad line: bytes that are not UTF-8 or a name that cannot be part of a
/// file name skip that line or word only; every other line still counts.
pub fn parse_enabled_lines(text: &[u8]) -> (Vec<(usize, ConfWord)>, Vec<BadLine>) {
    let (mut words, mut bad) = (Vec::new(), Vec::new());
    let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    if text.ends_with(b"\n") || text.is_empty() {
        lines.pop();
    }
    for (idx, raw) in lines.into_iter().enumerate() {
        let line = idx + 1;
        let Ok(raw) = std::str::from_utf8(raw) else {
            let reason = "not valid UTF-8".to_owned();
            bad.push(BadLine { line, reason });
            continue;
        };
        // `grep -o '^[^#]*'`: a comment may follow a name on the same line.
        let body = raw.split('#').next().unwrap_or_default().trim();
        let (names, remove) = match body.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (body, false),
        };
        if remove && names.trim().is_empty() {
            let reason = "'-' without a name removes nothing".to_owned();
            bad.push(BadLine { line, reason });
        }
        for name in names.split_whitespace() {
            if let Some(why) = bad_name(name) {
                let reason = format!("{name:?} {why}");
                bad.push(BadLine { line, reason });
            } else if remove {
                words.push((line, ConfWord::Remove(name.to_owned())));
            } else {
                words.push((line, ConfWord::Enable(name.to_owned())));
            }
        }
    }
    (words, bad)
}

/// Parsed `enabled-sysext.conf` lines: names to enable, `-NAME` removals (bad lines dropped,
/// see [`parse_enabled_lines`]).
pub fn parse_enabled(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut names, mut removals) = (Vec::new(), Vec::new());
    for (_, word) in parse_enabled_lines(text.as_bytes()).0 {
        match word {
            ConfWord::Enable(n) => names.push(n),
            ConfWord::Remove(n) => removals.push(n),
        }
    }
    (names, removals)
}

/// Union of /usr/share/flatcar/enabled-sysext.conf (vendor defaults) and /etc/flatcar/enabled-sysext.conf, minus `-NAME` from /etc; pure.
///
/// Order as the script iterates (`grep -h /etc/… /usr/…`): /etc names first, then vendor
/// names; duplicates collapse to the first. `-NAME` removals come only from /etc (the vendor
/// file's `-` lines are dropped, not applied) and remove the name from both files.
pub fn enabled_set(vendor: &str, user: &str) -> Vec<String> {
    enabled(vendor.as_bytes(), user.as_bytes()).0
}

/// [`enabled_set`] over the raw files, with one [`Action::BadLine`] per skipped line or word.
pub fn enabled(vendor: &[u8], user: &[u8]) -> (Vec<String>, Vec<Action>) {
    let (user_words, user_bad) = parse_enabled_lines(user);
    let (vendor_words, vendor_bad) = parse_enabled_lines(vendor);
    let mut skipped: Vec<Action> = Vec::new();
    let mut bad_line = |file: &str, b: BadLine| {
        skipped.push(Action::BadLine {
            file: PathBuf::from(file),
            line: b.line,
            reason: b.reason,
        })
    };
    user_bad.into_iter().for_each(|b| bad_line(USER_CONF, b));
    vendor_bad
        .into_iter()
        .for_each(|b| bad_line(VENDOR_CONF, b));
    let mut removals = Vec::new();
    let mut names = Vec::new();
    for (_, word) in user_words {
        match word {
            ConfWord::Enable(n) => names.push(n),
            ConfWord::Remove(n) => removals.push(n),
        }
    }
    for (line, word) in vendor_words {
        match word {
            ConfWord::Enable(n) => names.push(n),
            ConfWord::Remove(n) => bad_line(
                VENDOR_CONF,
                BadLine {
                    line,
                    reason: format!("-{n}: removals only count in {USER_CONF}"),
                },
            ),
        }
    }
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if !removals.contains(&name) && !out.contains(&name) {
            out.push(name);
        }
    }
    (out, skipped)
}

/// The OEM ID as the script extracts it: `grep -m 1 -o "^ID=.*" | cut -d = -f 2` (no unquoting).
pub fn oem_id(oem_release: &str) -> Option<String> {
    let value = oem_release.lines().find_map(|l| l.strip_prefix("ID="))?;
    let id = value.split('=').next().unwrap_or_default();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Why `name` cannot be part of a file name, if it cannot.
fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." {
        Some("is not a usable name")
    } else if name.contains('/') {
        Some("contains '/'")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or control characters")
    } else if name.contains(char::REPLACEMENT_CHARACTER) {
        // What a lossy decoding left of bytes that are not UTF-8: it cannot name the real file.
        Some("contains bytes that are not valid UTF-8")
    } else {
        None
    }
}

fn ext_link(ext: &str) -> PathBuf {
    PathBuf::from(format!("{EXTENSIONS}/{ext}.raw"))
}

fn flatcar_image(name: &str, version: &str) -> PathBuf {
    PathBuf::from(format!("{FLATCAR_SYSEXT}/flatcar-{name}-{version}.raw"))
}

/// The OEM image on the OEM partition (preferred) and its fallback on the root partition.
fn oem_images(id: &str, version: &str) -> [PathBuf; 2] {
    let file = format!("oem-{id}-{version}.raw");
    [
        Path::new(OEM_SYSEXT).join(&file),
        Path::new(ROOT_OEM_SYSEXT).join(&file),
    ]
}

fn oem_flag(kind: &str, id: &str) -> PathBuf {
    PathBuf::from(format!("{OEM_SYSEXT}/{kind}-oem-{id}"))
}

/// An entry of `/etc/extensions` that the selection may manage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Entry {
    /// A symlink: its text, and the in-root path it resolves to if that is an existing regular file.
    Symlink {
        target: PathBuf,
        resolved_file: Option<PathBuf>,
    },
    /// Anything else (regular file, directory, device): never replaced.
    Other,
}

/// Inputs gathered from the root, so [`plan`] is pure and unit-testable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Inputs {
    /// `VERSION=` of /usr/lib/os-release: Flatcar names images by it (`VERSION_ID` if absent).
    pub version: String,
    /// `FLATCAR_BOARD=` of /usr/lib/os-release, for the download hint.
    pub board: Option<String>,
    /// /usr/share/flatcar/enabled-sysext.conf, as read (empty when absent).
    pub vendor_conf: Vec<u8>,
    /// /etc/flatcar/enabled-sysext.conf, as read (empty when absent).
    pub user_conf: Vec<u8>,
    /// `ID` of /oem/oem-release, see [`oem_id`].
    pub oem_id: Option<String>,
    /// /oem/sysext/active-oem-ID exists.
    pub oem_active: bool,
    /// /oem/sysext/migrate-oem-ID exists.
    pub oem_migrate: bool,
    /// /usr/share/flatcar/oems/ID (the migration's deletion list), if read and present.
    pub oem_migrate_list: Option<String>,
    /// Target of the oem-cloudinit.service wants link, if that is a symlink (migration special case).
    pub cloudinit_wants: Option<PathBuf>,
    /// Candidate images (in-root paths) that exist, resolved inside the root.
    pub present: BTreeSet<PathBuf>,
    /// `flatcar-*.raw` and `oem-*.raw` entries of /etc/extensions, by file name.
    pub links: BTreeMap<String, Entry>,
}

impl Inputs {
    fn exists(&self, path: &Path) -> bool {
        self.present.contains(path)
    }

    fn link(&self, ext: &str) -> Option<&Entry> {
        self.links.get(&format!("{ext}.raw"))
    }
}

/// One action the selection wants, pure data, so it can be printed as a plan (`--dry-run`) and tested.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Create or re-point the symlink `link` to `target` (both in-root paths; the link text is `target`).
    Link { link: PathBuf, target: PathBuf },
    /// Remove the symlink `link`.
    RemoveLink { link: PathBuf, reason: String },
    /// Move an OEM image; failure is tolerated. With `link`, point it at wherever the image ends up.
    MoveOem {
        from: PathBuf,
        to: PathBuf,
        link: Option<PathBuf>,
    },
    /// `rm -rf` of an in-root path (OEM migration); failure is tolerated, as in the script.
    Delete { path: PathBuf, reason: String },
    /// A required image is absent: place it at one of `expected` (first preferred).
    Missing {
        name: String,
        kind: ImageKind,
        expected: Vec<PathBuf>,
        /// Where Flatcar would download it from (a signed update payload, not the raw image).
        url: Option<String>,
    },
    /// A decision not to touch something, with the reason (logged, changes nothing).
    Skip { name: String, reason: String },
    /// A line (or word) of an `enabled-sysext.conf` that is skipped; the rest still applies.
    BadLine {
        file: PathBuf,
        line: usize,
        reason: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Link { link, target } => write!(f, "link {} -> {}", show(link), show(target)),
            Action::RemoveLink { link, reason } => {
                write!(f, "remove link {} ({reason})", show(link))
            }
            Action::MoveOem { from, to, link } => {
                write!(f, "move {} to {}", show(from), show(to))?;
                match link {
                    Some(l) => write!(
                        f,
                        ", then link {} to it (or to the source if the move fails)",
                        show(l)
                    ),
                    None => Ok(()),
                }
            }
            Action::Delete { path, reason } => write!(f, "delete {} ({reason})", show(path)),
            Action::Missing { name, expected, .. } => {
                write!(f, "missing {name}: place it at {}", join_paths(expected))
            }
            Action::Skip { name, reason } => write!(f, "skip {name}: {reason}"),
            Action::BadLine { file, line, reason } => {
                write!(f, "ignore {} line {line}: {reason}", show(file))
            }
        }
    }
}

fn show(p: &Path) -> std::path::Display<'_> {
    p.display()
}

fn join_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(" (preferred) or ")
}

/// What [`plan`] must leave alone at a link name, and why.
fn untouchable(link: &Path, entry: Option<&Entry>) -> Option<String> {
    let why = match entry {
        Some(Entry::Other) => "is not a symlink; it is left alone (extmerge never replaces a file)",
        Some(Entry::Symlink { target, .. }) if target == Path::new(DEV_NULL) => {
            "is masked by a link to /dev/null; left alone"
        }
        _ => return None,
    };
    Some(format!("{} {why}", show(link)))
}

/// Push a [`Action::Link`] unless the link already has exactly that text.
fn link_to(out: &mut Vec<Action>, link: PathBuf, current: Option<&Path>, target: PathBuf) {
    if current != Some(target.as_path()) {
        out.push(Action::Link { link, target });
    }
}

fn link_text(entry: Option<&Entry>) -> Option<&Path> {
    match entry {
        Some(Entry::Symlink { target, .. }) => Some(target),
        _ => None,
    }
}

/// A missing image: report it, and drop the link (the script's `rm -f` branch; a link to
/// another version would not match this OS anyway).
fn missing(inputs: &Inputs, out: &mut Vec<Action>, ext: &str, kind: ImageKind, at: Vec<PathBuf>) {
    let url = inputs
        .board
        .as_deref()
        .map(|board| format!("{RELEASE_SERVER}/{board}/{}/{ext}.gz", inputs.version));
    out.push(Action::Missing {
        name: ext.to_owned(),
        kind,
        expected: at,
        url,
    });
    if link_text(inputs.link(ext)).is_some() {
        let reason = format!("no {ext} image for version {}", inputs.version);
        out.push(Action::RemoveLink {
            link: ext_link(ext),
            reason,
        });
    }
}

/// The whole selection, in the script's order: OEM image, OEM migration, Flatcar extensions; then stale links.
pub fn plan(inputs: &Inputs) -> Vec<Action> {
    let mut out = Vec::new();
    plan_oem(inputs, &mut out);
    let (enabled, skipped) = enabled(&inputs.vendor_conf, &inputs.user_conf);
    out.extend(skipped);
    for name in &enabled {
        plan_flatcar(inputs, name, &mut out);
    }
    plan_stale(inputs, &enabled, &mut out);
    out
}

fn plan_oem(inputs: &Inputs, out: &mut Vec<Action>) {
    let Some(id) = inputs.oem_id.as_deref() else {
        return;
    };
    let ext = format!("oem-{id}");
    if let Some(why) = bad_name(id) {
        let reason = format!("OEM ID {id:?} in {OEM_RELEASE} {why}");
        return out.push(Action::Skip { name: ext, reason });
    }
    // The flag is written by update-engine's postinst once both /usr partitions carry an OEM sysext.
    if !inputs.oem_active {
        return;
    }
    let (link, entry) = (ext_link(&ext), inputs.link(&ext));
    let [on_oem, on_root] = oem_images(id, &inputs.version);
    if let Some(reason) = untouchable(&link, entry) {
        out.push(Action::Skip { name: ext, reason });
    } else if inputs.exists(&on_oem) {
        link_to(out, link, link_text(entry), on_oem);
    } else if inputs.exists(&on_root) {
        // Free the OEM partition first: the previously linked image moves to the root partition.
        if let Some(Entry::Symlink {
            resolved_file: Some(prev),
            ..
        }) = entry
        {
            if let (true, Some(file)) = (prev.starts_with("/oem"), prev.file_name()) {
                let to = Path::new(ROOT_OEM_SYSEXT).join(file);
                out.push(Action::MoveOem {
                    from: prev.clone(),
                    to,
                    link: None,
                });
            }
        }
        // Keeping the active image on the OEM partition lets the root partition be reset.
        out.push(Action::MoveOem {
            from: on_root,
            to: on_oem,
            link: Some(link),
        });
    } else {
        missing(inputs, out, &ext, ImageKind::Oem, vec![on_oem, on_root]);
    }
    plan_migration(inputs, id, out);
}

fn plan_migration(inputs: &Inputs, id: &str, out: &mut Vec<Action>) {
    if !inputs.oem_migrate {
        return;
    }
    let (name, flag) = (format!("oem-{id}"), oem_flag("migrate", id));
    let list_path = Path::new(OEM_LISTS).join(id);
    let Some(list) = &inputs.oem_migrate_list else {
        let (f, l) = (show(&flag), show(&list_path));
        let reason = format!("{f} exists but {l} does not; keeping the flag, no migration");
        return out.push(Action::Skip { name, reason });
    };
    // `while IFS="" read -r entry`: whole lines, whitespace kept.
    for entry in list.lines().filter(|e| !e.is_empty()) {
        if let (CLOUDINIT_WANTS, Some(current)) = (entry, &inputs.cloudinit_wants) {
            // The script re-points this wants link at the unit in /usr instead of deleting it.
            let (link, target) = (
                PathBuf::from(CLOUDINIT_WANTS),
                PathBuf::from(CLOUDINIT_UNIT),
            );
            link_to(out, link, Some(current), target);
            continue;
        }
        out.push(match deletable(entry) {
            Ok(path) => Action::Delete {
                path,
                reason: format!("OEM migration list {}", show(&list_path)),
            },
            Err(why) => Action::Skip {
                name: name.clone(),
                reason: format!("not deleting {entry:?} from {}: {why}", show(&list_path)),
            },
        });
    }
    out.push(Action::Delete {
        path: flag,
        reason: "OEM migration done".to_owned(),
    });
}

/// A migration entry as an in-root path, refusing anything that could wipe a whole tree.
fn deletable(entry: &str) -> Result<PathBuf, &'static str> {
    let path = Path::new(entry);
    if !path.is_absolute() {
        return Err("not an absolute path");
    }
    if entry.contains(char::REPLACEMENT_CHARACTER) {
        return Err("contains bytes that are not valid UTF-8");
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return Err("contains '..'"),
        }
    }
    if out.components().count() < 3 {
        return Err("names a top-level directory");
    }
    Ok(out)
}

/// One enabled name (already checked by [`parse_enabled_lines`]).
fn plan_flatcar(inputs: &Inputs, name: &str, out: &mut Vec<Action>) {
    let ext = format!("flatcar-{name}");
    let (link, entry) = (ext_link(&ext), inputs.link(&ext));
    let target = flatcar_image(name, &inputs.version);
    if let Some(reason) = untouchable(&link, entry) {
        out.push(Action::Skip { name: ext, reason });
    } else if inputs.exists(&target) {
        link_to(out, link, link_text(entry), target);
    } else {
        missing(inputs, out, &ext, ImageKind::Official, vec![target]);
    }
}

/// `flatcar-NAME.raw` symlinks into /etc/flatcar/sysext/ whose NAME is no longer enabled.
fn plan_stale(inputs: &Inputs, enabled: &[String], out: &mut Vec<Action>) {
    for (file, entry) in &inputs.links {
        let name = file
            .strip_prefix("flatcar-")
            .and_then(|n| n.strip_suffix(".raw"));
        let (Some(name), Some(target)) = (name, link_text(Some(entry))) else {
            continue;
        };
        if !enabled.iter().any(|e| e == name) && lexical(target).starts_with(FLATCAR_SYSEXT) {
            let reason = format!("flatcar-{name} is not enabled in enabled-sysext.conf");
            out.push(Action::RemoveLink {
                link: Path::new(EXTENSIONS).join(file),
                reason,
            });
        }
    }
}

/// A link text in /etc/extensions as an in-root path, without following anything.
fn lexical(target: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(EXTENSIONS).join(target).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => drop(out.pop()),
            _ => {}
        }
    }
    out
}

/// True when `root` is a Flatcar tree (it has `/usr/share/flatcar`): the selection applies only
/// there. False when the root cannot be opened; see [`is_flatcar`].
pub fn is_flatcar_root(root: &Path) -> bool {
    Root::open(root).is_ok_and(|r| is_flatcar(&r).unwrap_or(false))
}

/// Whether the tree has a `/usr/share/flatcar` directory, looked up inside the root.
pub fn is_flatcar(root: &Root) -> anyhow::Result<bool> {
    let p = Path::new("/usr/share/flatcar");
    match root.resolve_optional(p) {
        Ok(found) => Ok(found.is_some_and(|f| f.is_dir())),
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

pub mod missing;
mod shell;
pub use missing::{ImageKind, MissingImage, MissingPolicy};
pub use shell::{apply, gather, gather_for, gather_version, image_version};

#[cfg(test)]
mod tests;
