//! Mutable modes: whether and where a merged hierarchy accepts writes.

use anyhow::Context;
use rustix::mount::MountFlags;
use serde::Serialize;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// systemd's `--mutable=` modes; booleans map to `yes`/`no` as upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MutableMode {
    /// Read-only overlay (the default).
    #[default]
    No,
    /// Writable; the mutable directory is created when missing.
    Yes,
    /// Writable only if the mutable directory already exists.
    Auto,
    /// Read-only; the mutable directory is added as a lower layer.
    Import,
    /// Writable into a tmpfs that vanishes on unmerge.
    Ephemeral,
    /// Like `ephemeral`, with the mutable directory imported as a lower layer.
    EphemeralImport,
}

impl MutableMode {
    /// All modes in systemd's table order (the order `--mutable=help` prints).
    pub const ALL: [MutableMode; 6] = [
        MutableMode::No,
        MutableMode::Yes,
        MutableMode::Auto,
        MutableMode::Import,
        MutableMode::Ephemeral,
        MutableMode::EphemeralImport,
    ];

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MutableMode::No => "no",
            MutableMode::Yes => "yes",
            MutableMode::Auto => "auto",
            MutableMode::Import => "import",
            MutableMode::Ephemeral => "ephemeral",
            MutableMode::EphemeralImport => "ephemeral-import",
        }
    }

    /// True when the merged hierarchy is writable.
    pub fn is_writable_mode(self) -> bool {
        !matches!(self, MutableMode::No | MutableMode::Import)
    }
}

impl fmt::Display for MutableMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse a boolean the way systemd's `parse_boolean()` does.
pub fn parse_boolean(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

impl FromStr for MutableMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(m) = MutableMode::ALL.iter().find(|m| m.as_str() == s) {
            return Ok(*m);
        }
        match parse_boolean(s) {
            Some(true) => Ok(MutableMode::Yes),
            Some(false) => Ok(MutableMode::No),
            None => Err(format!(
                "invalid mutable mode '{s}': expected one of no, yes, auto, import, ephemeral, ephemeral-import (or a boolean)"
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-hierarchy decision: systemd's resolve_mutable_directory / overlayfs_paths_new /
// determine_{top,middle,bottom}_lower_dirs / determine_upper_dir / determine_work_dir, split into
// fact gathering (I/O, `gather_facts`) and a pure decision (`plan`).
// ---------------------------------------------------------------------------------------------

/// systemd's `MUTABLE_EXTENSIONS_BASE_DIR`, inside the root; shared by sysext and confext.
pub const MUTABLE_BASE_DIR: &str = "/var/lib/extensions.mutable";

/// systemd's `MUTABLE_EXTENSIONS_MOUNT_OPTIONS`, used for writable overlays unless the env replaces it.
pub const DEFAULT_MUTABLE_OPTIONS: &str = "redirect_dir=on,noatime,metacopy=off,index=off";

/// `/usr` -> "usr", `/foo/bar` -> "foo.bar" (systemd hierarchy_as_single_path_component).
pub fn hierarchy_component(hierarchy: &Path) -> String {
    let b = hierarchy.as_os_str().as_bytes();
    let start = b.iter().take_while(|c| **c == b'/').count();
    let end = b.len() - b[start..].iter().rev().take_while(|c| **c == b'/').count();
    let replaced: Vec<u8> = b[start..end]
        .iter()
        .map(|c| if *c == b'/' { b'.' } else { *c })
        .collect();
    String::from_utf8_lossy(&replaced).into_owned()
}

/// In-root mutable dir: /var/lib/extensions.mutable/<component> (shared by both classes).
pub fn mutable_dir_for(hierarchy: &Path) -> PathBuf {
    Path::new(MUTABLE_BASE_DIR).join(hierarchy_component(hierarchy))
}

/// Name of the workdir systemd puts next to an upper dir: `.systemd-<component>-workdir`.
pub fn work_dir_name(hierarchy: &Path) -> String {
    format!(".systemd-{}-workdir", hierarchy_component(hierarchy))
}

/// Facts about one hierarchy and its mutable dir, gathered by `gather_facts` (I/O) and consumed by `plan` (pure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HierarchyFacts {
    /// The hierarchy as configured, in-root (e.g. `/etc`); names the workdir and meta paths.
    pub hierarchy: PathBuf,
    /// In-root resolved hierarchy path (the would-be path when it does not exist).
    pub resolved: PathBuf,
    /// Whether the hierarchy exists.
    pub exists: bool,
    /// `dir_is_empty()` with hidden files counting as content; false when missing.
    pub is_empty: bool,
    /// `st_mode & 0o777` (systemd masks with 0777, dropping suid/sgid/sticky), 0o755 if missing.
    pub mode: u32,
    /// The hierarchy is on a read-only mount (informational; the upper's own flag decides EROFS).
    pub read_only_fs: bool,
    /// None when mode==No/Ephemeral or the dir is absent / a dangling symlink.
    pub mutable_dir: Option<MutableDirFacts>,
}

/// Facts about the resolved in-root mutable dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutableDirFacts {
    /// In-root resolved path (symlinks followed inside the root).
    pub resolved: PathBuf,
    /// `st_mode & 0o777` of the resolved directory.
    pub mode: u32,
    /// Same path or same (st_dev, st_ino) as the resolved hierarchy (`path_equal_or_inode_same`).
    pub same_inode_as_hierarchy: bool,
    /// `path_is_read_only_fs()`: statvfs ST_RDONLY, or access(W_OK) failing with EROFS.
    pub on_read_only_fs: bool,
    /// st_dev(upper) == st_dev(parent of upper); false when the upper has no parent.
    pub parent_same_fs: bool,
}

/// Where the upper/work dirs live: persistent mutable dir, or the ephemeral tmpfs workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpperDir {
    /// In-root paths: upper = resolved mutable dir, work = `<parent of upper>/.systemd-<c>-workdir`.
    Persistent { upper: PathBuf, work: PathBuf },
    /// Mounter creates `<ws>/<c>` (parents 0755, chmod to the hierarchy's mode) and uses
    /// `<ws>/.systemd-<c>-workdir` on its private tmpfs; nothing is written inside the root.
    Ephemeral,
}

/// One lower layer, top first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The synthesized meta dir (`<ws>/meta/<hierarchy>`), always on top.
    Meta,
    /// In-root mutable dir imported read-only (`import`, `ephemeral-import`).
    Import(PathBuf),
    /// An extension's tree for this hierarchy, by image name.
    Extension(String),
    /// The in-root resolved host hierarchy, at the bottom.
    Host(PathBuf),
}

/// The complete overlay decision for one hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HierarchyPlan {
    /// The hierarchy as configured (in-root).
    pub hierarchy: PathBuf,
    /// Lower layers, top first.
    pub lowers: Vec<Layer>,
    /// Upper/work location; `None` for a read-only overlay.
    pub upper: Option<UpperDir>,
    /// True when there is no upper: systemd remounts the whole overlay read-only; with an upper
    /// it bind-mounts only the meta dir read-only.
    pub read_only: bool,
    /// Overlay data options (flag words removed), e.g. `["redirect_dir=on","metacopy=off","index=off"]`.
    pub options: Vec<String>,
    /// Convenience: the flag words leave `MS_NOATIME` set.
    pub noatime: bool,
    /// Mount-flag words split out of the option string, in order (`noatime`, `relatime`, `ro`, …);
    /// apply with [`HierarchyPlan::mount_flags`].
    pub flag_words: Vec<String>,
    /// The hierarchy serves as its own upperdir (Flatcar's `extensions.mutable/etc -> /etc`).
    pub self_upper: bool,
    /// chmod of the top layer (upper if mutable, else meta) so the merged root keeps the hierarchy's mode.
    pub top_mode: u32,
    /// The host hierarchy is the bottom lower (then its block device is recorded as `backing`).
    pub host_is_lower: bool,
}

/// Why a hierarchy cannot be merged; each maps to the errno systemd fails with.
#[derive(Debug)]
pub enum PlanError {
    /// EINVAL: an existing mutable dir's mode differs from the hierarchy's (`yes`/`auto`).
    ModeMismatch { dir: PathBuf, have: u32, want: u32 },
    /// EROFS: the upper dir is on a read-only file system.
    ReadOnlyUpper { dir: PathBuf },
    /// EXDEV: the upper's parent (where the workdir goes) is on another file system.
    CrossDevice { upper: PathBuf, hierarchy: PathBuf },
    /// ELOOP: `import`/`ephemeral-import` with a mutable dir that is the hierarchy itself.
    Loop { dir: PathBuf, hierarchy: PathBuf },
    /// EINVAL (from the kernel): one lower and no upper is not a valid overlay.
    TooFewLayers { hierarchy: PathBuf },
    /// EINVAL (`mount_option_mangle`): unbalanced quotes or a trailing backslash in the options.
    InvalidOptions { options: String },
}

impl PlanError {
    /// The errno systemd-sysext fails with in the same situation.
    pub fn errno(&self) -> rustix::io::Errno {
        match self {
            PlanError::ModeMismatch { .. }
            | PlanError::TooFewLayers { .. }
            | PlanError::InvalidOptions { .. } => rustix::io::Errno::INVAL,
            PlanError::ReadOnlyUpper { .. } => rustix::io::Errno::ROFS,
            PlanError::CrossDevice { .. } => rustix::io::Errno::XDEV,
            PlanError::Loop { .. } => rustix::io::Errno::LOOP,
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::ModeMismatch { dir, have, want } => write!(
                f,
                "Mutable directory '{}' has mode {have:04o}, ought to have mode {want:04o} (the mode of its hierarchy).",
                dir.display()
            ),
            PlanError::ReadOnlyUpper { dir } => {
                write!(f, "Can't use '{}' as an upperdir as it is on a read-only file system.", dir.display())
            }
            PlanError::CrossDevice { upper, hierarchy } => write!(
                f,
                "Unable to find a suitable workdir location for upperdir '{}' for host hierarchy '{}': the parent directory of the upperdir is on a different file system.",
                upper.display(),
                hierarchy.display()
            ),
            PlanError::Loop { dir, hierarchy } => write!(
                f,
                "Not importing mutable directory '{}' for hierarchy '{}' as a lower dir, because it points to the hierarchy itself.",
                dir.display(),
                hierarchy.display()
            ),
            PlanError::TooFewLayers { hierarchy } => write!(
                f,
                "Hierarchy '{}' would be an overlay with a single lower layer and no upper layer, which the kernel refuses (no extension populates it, the host hierarchy is missing or empty, and there is no mutable directory).",
                hierarchy.display()
            ),
            PlanError::InvalidOptions { options } => write!(
                f,
                "Failed to parse overlayfs mount options '{options}': unbalanced quotes or trailing backslash."
            ),
        }
    }
}

impl std::error::Error for PlanError {}

// Linux MS_* bits that have no rustix MountFlags constant.
const MS_REMOUNT: u32 = 32;
const MS_UNBINDABLE: u32 = 1 << 17;
const MS_PRIVATE: u32 = 1 << 18;
const MS_SLAVE: u32 = 1 << 19;
const MS_SHARED: u32 = 1 << 20;
const MS_I_VERSION: u32 = 1 << 23;

/// libmount's `MNT_LINUX_MAP` (util-linux `libmount/src/optmap.c`): word, MS_* bits, inverted.
/// systemd's `mount_option_mangle()` turns exactly these words into mount flags.
const LINUX_FLAG_MAP: &[(&str, u32, bool)] = &[
    ("ro", MountFlags::RDONLY.bits(), false),
    ("rw", MountFlags::RDONLY.bits(), true),
    ("exec", MountFlags::NOEXEC.bits(), true),
    ("noexec", MountFlags::NOEXEC.bits(), false),
    ("suid", MountFlags::NOSUID.bits(), true),
    ("nosuid", MountFlags::NOSUID.bits(), false),
    ("dev", MountFlags::NODEV.bits(), true),
    ("nodev", MountFlags::NODEV.bits(), false),
    ("sync", MountFlags::SYNCHRONOUS.bits(), false),
    ("async", MountFlags::SYNCHRONOUS.bits(), true),
    ("dirsync", MountFlags::DIRSYNC.bits(), false),
    ("remount", MS_REMOUNT, false),
    ("bind", MountFlags::BIND.bits(), false),
    (
        "rbind",
        MountFlags::BIND.bits() | MountFlags::REC.bits(),
        false,
    ),
    ("silent", MountFlags::SILENT.bits(), false),
    ("loud", MountFlags::SILENT.bits(), true),
    (
        "mand",
        MountFlags::PERMIT_MANDATORY_FILE_LOCKING.bits(),
        false,
    ),
    (
        "nomand",
        MountFlags::PERMIT_MANDATORY_FILE_LOCKING.bits(),
        true,
    ),
    ("atime", MountFlags::NOATIME.bits(), true),
    ("noatime", MountFlags::NOATIME.bits(), false),
    ("iversion", MS_I_VERSION, false),
    ("noiversion", MS_I_VERSION, true),
    ("diratime", MountFlags::NODIRATIME.bits(), true),
    ("nodiratime", MountFlags::NODIRATIME.bits(), false),
    ("relatime", MountFlags::RELATIME.bits(), false),
    ("norelatime", MountFlags::RELATIME.bits(), true),
    ("strictatime", MountFlags::STRICTATIME.bits(), false),
    ("nostrictatime", MountFlags::STRICTATIME.bits(), true),
    ("lazytime", MountFlags::LAZYTIME.bits(), false),
    ("nolazytime", MountFlags::LAZYTIME.bits(), true),
    ("unbindable", MS_UNBINDABLE, false),
    ("runbindable", MS_UNBINDABLE | MountFlags::REC.bits(), false),
    ("private", MS_PRIVATE, false),
    ("rprivate", MS_PRIVATE | MountFlags::REC.bits(), false),
    ("slave", MS_SLAVE, false),
    ("rslave", MS_SLAVE | MountFlags::REC.bits(), false),
    ("shared", MS_SHARED, false),
    ("rshared", MS_SHARED | MountFlags::REC.bits(), false),
    ("symfollow", MountFlags::NOSYMFOLLOW.bits(), true),
    ("nosymfollow", MountFlags::NOSYMFOLLOW.bits(), false),
];

/// True when `word` is a libmount Linux flag word (becomes an MS_* flag, not overlay data).
pub fn is_mount_flag_word(word: &str) -> bool {
    LINUX_FLAG_MAP.iter().any(|(w, _, _)| *w == word)
}

/// Apply flag words to `flags` in order, as `mount_option_mangle()` does (inverted words clear bits).
pub fn apply_flag_words(flags: MountFlags, words: &[String]) -> MountFlags {
    let mut bits = flags.bits();
    for word in words {
        if let Some((_, id, invert)) = LINUX_FLAG_MAP.iter().find(|(w, _, _)| w == word) {
            if *invert {
                bits &= !id;
            } else {
                bits |= id;
            }
        }
    }
    MountFlags::from_bits_retain(bits)
}

/// Split an option string like `extract_first_word(",", EXTRACT_KEEP_QUOTE)`: empty words are
/// skipped, quotes are kept and protect commas, a backslash makes the next character literal
/// (and is dropped). Unbalanced quotes or a trailing backslash are errors (EINVAL upstream).
fn split_options(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek() == Some(&',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => word.push(chars.next()?),
                (c, Some(q)) => {
                    word.push(c);
                    if c == q {
                        quote = None;
                    }
                }
                ('\'' | '"', None) => {
                    quote = Some(c);
                    word.push(c);
                }
                (',', None) => break,
                (c, None) => word.push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        words.push(word);
    }
    Some(words)
}

impl HierarchyPlan {
    /// Final MS_* flags, in systemd's order: class default, `--noexec=` override, clear
    /// `MS_RDONLY` when writable, then the flag words (so `ro` in the env makes it read-only again).
    pub fn mount_flags(&self, class_default: MountFlags, noexec: Option<bool>) -> MountFlags {
        let mut f = class_default;
        if let Some(n) = noexec {
            f.set(MountFlags::NOEXEC, n);
        }
        if !self.read_only {
            f.remove(MountFlags::RDONLY);
        }
        apply_flag_words(f, &self.flag_words)
    }
}

/// Pure: systemd's per-hierarchy decision. `extensions` = names of accepted extensions that
/// populate this hierarchy, top first. Returns Ok(None) when the hierarchy must not be touched
/// (no extension populates it and mode == No). `overlay_options_env` is the raw
/// `SYSTEMD_{SYSEXT,CONFEXT}_OVERLAYFS_MOUNT_OPTIONS` value; `Some("")` removes the defaults.
pub fn plan(
    mode: MutableMode,
    facts: &HierarchyFacts,
    extensions: &[String],
    overlay_options_env: Option<&str>,
) -> Result<Option<HierarchyPlan>, PlanError> {
    use MutableMode::*;

    if extensions.is_empty() && mode == No {
        tracing::debug!(
            "No extension populates '{}', leaving it alone.",
            facts.hierarchy.display()
        );
        return Ok(None);
    }

    // The ephemeral modes' mutable dir is the tmpfs workspace, never the in-root one.
    let persistent = match mode {
        Yes | Auto | Import => facts.mutable_dir.as_ref(),
        No | Ephemeral | EphemeralImport => None,
    };

    // resolve_mutable_directory(): the mode check runs before anything else (EINVAL).
    if matches!(mode, Yes | Auto) {
        if let Some(m) = persistent {
            if m.mode != facts.mode {
                return Err(PlanError::ModeMismatch {
                    dir: mutable_dir_for(&facts.hierarchy),
                    have: m.mode,
                    want: facts.mode,
                });
            }
        }
    }

    // determine_top_lower_dirs(): meta, then the import layer.
    let mut lowers = vec![Layer::Meta];
    let import = match mode {
        Import => persistent,
        EphemeralImport => facts.mutable_dir.as_ref(),
        _ => None,
    };
    if let Some(m) = import {
        if m.same_inode_as_hierarchy {
            return Err(PlanError::Loop {
                dir: m.resolved.clone(),
                hierarchy: facts.hierarchy.clone(),
            });
        }
        lowers.push(Layer::Import(m.resolved.clone()));
    }

    // determine_middle_lower_dirs(): extensions as given, top first.
    lowers.extend(extensions.iter().cloned().map(Layer::Extension));

    // hierarchy_as_lower_dir().
    let self_upper =
        matches!(mode, Yes | Auto) && persistent.is_some_and(|m| m.same_inode_as_hierarchy);
    let host_is_lower = facts.exists && !facts.is_empty && !self_upper;
    if self_upper {
        tracing::debug!(
            "Host hierarchy '{}' will serve as upperdir.",
            facts.resolved.display()
        );
    }
    if host_is_lower {
        lowers.push(Layer::Host(facts.resolved.clone()));
    }

    // determine_upper_dir() / determine_work_dir().
    let upper = match mode {
        No | Import => None,
        Ephemeral | EphemeralImport => Some(UpperDir::Ephemeral),
        Yes | Auto => match persistent {
            None => None,
            Some(m) => {
                if m.on_read_only_fs {
                    return Err(PlanError::ReadOnlyUpper {
                        dir: m.resolved.clone(),
                    });
                }
                let parent = m
                    .resolved
                    .parent()
                    .filter(|_| m.parent_same_fs)
                    .ok_or_else(|| PlanError::CrossDevice {
                        upper: m.resolved.clone(),
                        hierarchy: facts.hierarchy.clone(),
                    })?;
                Some(UpperDir::Persistent {
                    upper: m.resolved.clone(),
                    work: parent.join(work_dir_name(&facts.hierarchy)),
                })
            }
        },
    };

    if upper.is_none() && lowers.len() < 2 {
        return Err(PlanError::TooFewLayers {
            hierarchy: facts.hierarchy.clone(),
        });
    }

    // mount_overlayfs(): the env replaces the defaults for writable overlays and is the only
    // source of options for read-only ones; mount_option_mangle() then splits out flag words.
    let read_only = upper.is_none();
    let source = match overlay_options_env {
        Some(env) => Some(env),
        None if !read_only => Some(DEFAULT_MUTABLE_OPTIONS),
        None => None,
    };
    let mut options = Vec::new();
    let mut flag_words = Vec::new();
    if let Some(src) = source {
        let words = split_options(src).ok_or_else(|| PlanError::InvalidOptions {
            options: src.to_string(),
        })?;
        for w in words {
            if is_mount_flag_word(&w) {
                flag_words.push(w);
            } else if w.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-")) {
                // Newer mount_option_mangle() drops userspace-only x-* options.
                continue;
            } else {
                options.push(w);
            }
        }
    }
    let noatime = apply_flag_words(MountFlags::empty(), &flag_words).contains(MountFlags::NOATIME);

    Ok(Some(HierarchyPlan {
        hierarchy: facts.hierarchy.clone(),
        lowers,
        upper,
        read_only,
        options,
        noatime,
        flag_words,
        self_upper,
        top_mode: facts.mode,
        host_is_lower,
    }))
}

/// systemd `path_is_read_only_fs()`: the mount is read-only, or writing would fail with EROFS.
fn path_is_read_only_fs(path: &Path) -> anyhow::Result<bool> {
    let st = rustix::fs::statvfs(path).with_context(|| {
        format!(
            "Failed to determine if '{}' is on a read-only file system",
            path.display()
        )
    })?;
    if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Ok(true);
    }
    // statvfs can miss read-only network shares; access(W_OK) catches those.
    Ok(rustix::fs::access(path, rustix::fs::Access::WRITE_OK) == Err(rustix::io::Errno::ROFS))
}

/// stat (following symlinks) with the path in the error.
fn stat(path: &Path) -> anyhow::Result<std::fs::Metadata> {
    std::fs::metadata(path).with_context(|| format!("Failed to stat '{}'", path.display()))
}

/// Create `path` and its missing parents with mode 0755, like `CHASE_MKDIR_0755`.
fn mkdir_p_0755(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .with_context(|| format!("Failed to create directory '{}'", path.display()))
}

/// I/O: stat the hierarchy inside root and resolve `<root>/var/lib/extensions.mutable/<c>`.
///
/// `yes` creates a missing mutable dir (parents 0755, following a dangling final symlink to its
/// target like `CHASE_MKDIR_0755`, then chmod to the hierarchy's mode); an existing dir is only
/// chmod'ed when its mode already matches, so `plan` still reports the EINVAL systemd gives.
/// `auto`, `import`, `ephemeral-import` only look; `no` and `ephemeral` ignore it (systemd's
/// ephemeral dirs live on its tmpfs workspace, never in the root). Call it for every configured
/// hierarchy, as systemd does, so `yes` creates the dir even where no extension contributes.
pub fn gather_facts(
    root: &Path,
    hierarchy: &Path,
    mode: MutableMode,
) -> anyhow::Result<HierarchyFacts> {
    let root = std::fs::canonicalize(root)
        .with_context(|| format!("Failed to resolve root '{}'", root.display()))?;

    let (hres, exists) = crate::chase::chase_allow_missing(&root, hierarchy)
        .with_context(|| format!("Failed to resolve hierarchy '{}'", hierarchy.display()))?;
    let (hmode, is_empty, read_only_fs, hmeta) = if exists {
        let m = stat(&hres.host)?;
        if !m.is_dir() {
            anyhow::bail!(
                "Hierarchy '{}' ('{}') is not a directory",
                hierarchy.display(),
                hres.host.display()
            );
        }
        let mut entries = std::fs::read_dir(&hres.host).with_context(|| {
            format!(
                "Failed to check if host hierarchy '{}' is empty",
                hres.host.display()
            )
        })?;
        let empty = match entries.next() {
            None => true,
            Some(Ok(_)) => false,
            Some(Err(e)) => {
                return Err(e).with_context(|| {
                    format!("Failed to read host hierarchy '{}'", hres.host.display())
                })
            }
        };
        (
            m.mode() & 0o777,
            empty,
            path_is_read_only_fs(&hres.host)?,
            Some(m),
        )
    } else {
        (0o755, false, false, None)
    };

    let md = mutable_dir_for(hierarchy);
    let mutable_dir = match mode {
        MutableMode::No | MutableMode::Ephemeral => None,
        MutableMode::Yes
        | MutableMode::Auto
        | MutableMode::Import
        | MutableMode::EphemeralImport => {
            if mode == MutableMode::Yes {
                ensure_mutable_dir(&root, &md, hmode)?;
            }
            match crate::chase::chase(&root, &md) {
                Err(e) if e.is_not_found() => {
                    tracing::debug!("Mutable directory '{}' does not exist.", md.display());
                    None
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("Failed to resolve mutable directory '{}'", md.display())
                    })
                }
                Ok(r) => {
                    let m = stat(&r.host)?;
                    if !m.is_dir() {
                        anyhow::bail!(
                            "Mutable directory '{}' ('{}') is not a directory",
                            md.display(),
                            r.host.display()
                        );
                    }
                    let same = r.in_root == hres.in_root
                        || hmeta
                            .as_ref()
                            .is_some_and(|h| h.dev() == m.dev() && h.ino() == m.ino());
                    let parent_same_fs = match r.host.parent() {
                        Some(p) => stat(p)?.dev() == m.dev(),
                        None => false,
                    };
                    Some(MutableDirFacts {
                        resolved: r.in_root,
                        mode: m.mode() & 0o777,
                        same_inode_as_hierarchy: same,
                        on_read_only_fs: path_is_read_only_fs(&r.host)?,
                        parent_same_fs,
                    })
                }
            }
        }
    };

    Ok(HierarchyFacts {
        hierarchy: hierarchy.to_path_buf(),
        resolved: hres.in_root,
        exists,
        is_empty,
        mode: hmode,
        read_only_fs,
        mutable_dir,
    })
}

/// `--mutable=yes`: create the mutable dir when missing and give it the hierarchy's mode.
fn ensure_mutable_dir(root: &Path, md: &Path, hmode: u32) -> anyhow::Result<()> {
    let (target, exists) = crate::chase::chase_allow_missing(root, md)
        .with_context(|| format!("Failed to chase/create base directory '{}'", md.display()))?;
    if exists {
        match std::fs::metadata(&target.host) {
            // Leave a mismatching dir alone: systemd fails with EINVAL before touching it.
            Ok(m) if m.is_dir() && m.mode() & 0o777 != hmode => return Ok(()),
            Ok(m) if !m.is_dir() => {
                anyhow::bail!(
                    "Mutable directory '{}' ('{}') is not a directory",
                    md.display(),
                    target.host.display()
                )
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("Failed to stat '{}'", target.host.display()))
            }
        }
    } else {
        mkdir_p_0755(&target.host)?;
    }
    std::fs::set_permissions(&target.host, std::fs::Permissions::from_mode(hmode)).with_context(
        || {
            format!(
                "Failed to chmod directory '{}' to {hmode:04o}",
                target.host.display()
            )
        },
    )?;
    tracing::debug!(
        "Mutable directory '{}' is ready ({:04o}).",
        target.in_root.display(),
        hmode
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_and_booleans_map_like_systemd() {
        for m in MutableMode::ALL {
            assert_eq!(m.as_str().parse::<MutableMode>(), Ok(m));
        }
        assert_eq!("true".parse::<MutableMode>(), Ok(MutableMode::Yes));
        assert_eq!("off".parse::<MutableMode>(), Ok(MutableMode::No));
        assert_eq!("1".parse::<MutableMode>(), Ok(MutableMode::Yes));
        assert!("maybe".parse::<MutableMode>().is_err());
        assert!("Auto".parse::<MutableMode>().is_err());
    }

    // ---- plan(): pure, facts built by hand ----

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn ext(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Existing, non-empty, writable hierarchy without a mutable dir.
    fn host(h: &str) -> HierarchyFacts {
        HierarchyFacts {
            hierarchy: p(h),
            resolved: p(h),
            exists: true,
            is_empty: false,
            mode: 0o755,
            read_only_fs: false,
            mutable_dir: None,
        }
    }

    /// A separate, writable mutable dir with the hierarchy's mode.
    fn separate_mutable(h: &str) -> MutableDirFacts {
        MutableDirFacts {
            resolved: mutable_dir_for(Path::new(h)),
            mode: 0o755,
            same_inode_as_hierarchy: false,
            on_read_only_fs: false,
            parent_same_fs: true,
        }
    }

    /// Flatcar: /var/lib/extensions.mutable/etc -> /etc.
    fn self_linked(h: &str) -> MutableDirFacts {
        MutableDirFacts {
            resolved: p(h),
            mode: 0o755,
            same_inode_as_hierarchy: true,
            on_read_only_fs: false,
            parent_same_fs: true,
        }
    }

    fn with_mutable(h: &str, m: MutableDirFacts) -> HierarchyFacts {
        HierarchyFacts {
            mutable_dir: Some(m),
            ..host(h)
        }
    }

    fn must_plan(
        mode: MutableMode,
        f: &HierarchyFacts,
        e: &[String],
        env: Option<&str>,
    ) -> HierarchyPlan {
        plan(mode, f, e, env).unwrap().unwrap()
    }

    fn defaults() -> Vec<String> {
        ext(&["redirect_dir=on", "metacopy=off", "index=off"])
    }

    #[test]
    fn hierarchy_component_strips_slashes_and_joins_with_dots() {
        assert_eq!(hierarchy_component(Path::new("/usr")), "usr");
        assert_eq!(hierarchy_component(Path::new("/foo/bar")), "foo.bar");
        assert_eq!(
            hierarchy_component(Path::new("//foo/bar/baz//")),
            "foo.bar.baz"
        );
        assert_eq!(
            mutable_dir_for(Path::new("/etc")),
            p("/var/lib/extensions.mutable/etc")
        );
        assert_eq!(
            mutable_dir_for(Path::new("/foo/bar")),
            p("/var/lib/extensions.mutable/foo.bar")
        );
        assert_eq!(work_dir_name(Path::new("/opt")), ".systemd-opt-workdir");
    }

    #[test]
    fn t50_12_mutable_symlink_to_hierarchy_is_self_upper() {
        for mode in [MutableMode::Auto, MutableMode::Yes] {
            let f = with_mutable("/etc", self_linked("/etc"));
            let pl = must_plan(mode, &f, &ext(&["docker", "00-flatcar-default"]), None);
            assert_eq!(
                pl.upper,
                Some(UpperDir::Persistent {
                    upper: p("/etc"),
                    work: p("/.systemd-etc-workdir")
                })
            );
            assert!(pl.self_upper);
            assert!(!pl.host_is_lower);
            assert_eq!(
                pl.lowers,
                vec![
                    Layer::Meta,
                    Layer::Extension("docker".into()),
                    Layer::Extension("00-flatcar-default".into())
                ]
            );
            assert_eq!(pl.options, defaults());
            assert!(pl.noatime);
            assert_eq!(pl.flag_words, ext(&["noatime"]));
            assert!(!pl.read_only);
            assert_eq!(pl.top_mode, 0o755);
        }
    }

    #[test]
    fn t50_7_auto_with_mutable_dir_is_writable_over_host() {
        let f = with_mutable("/opt", separate_mutable("/opt"));
        let pl = must_plan(MutableMode::Auto, &f, &ext(&["test-extension"]), None);
        assert_eq!(
            pl.upper,
            Some(UpperDir::Persistent {
                upper: p("/var/lib/extensions.mutable/opt"),
                work: p("/var/lib/extensions.mutable/.systemd-opt-workdir"),
            })
        );
        assert_eq!(
            pl.lowers,
            vec![
                Layer::Meta,
                Layer::Extension("test-extension".into()),
                Layer::Host(p("/opt"))
            ]
        );
        assert!(pl.host_is_lower && !pl.self_upper && !pl.read_only);
    }

    #[test]
    fn t50_8_default_mutable_options_and_env_options_replace_defaults() {
        let f = with_mutable("/opt", separate_mutable("/opt"));
        let e = ext(&["test-extension"]);
        let pl = must_plan(MutableMode::Auto, &f, &e, None);
        assert_eq!(pl.options, defaults());
        assert!(pl.noatime);
        let pl = must_plan(MutableMode::Auto, &f, &e, Some("relatime,metacopy=on"));
        assert_eq!(pl.options, ext(&["metacopy=on"]));
        assert_eq!(pl.flag_words, ext(&["relatime"]));
        assert!(!pl.noatime);
        assert!(!pl
            .options
            .iter()
            .any(|o| o == "index=off" || o == "redirect_dir=on"));
    }

    #[test]
    fn empty_env_options_remove_the_mutable_defaults() {
        let f = with_mutable("/opt", separate_mutable("/opt"));
        let pl = must_plan(MutableMode::Yes, &f, &ext(&["a"]), Some(""));
        assert!(pl.options.is_empty() && pl.flag_words.is_empty() && !pl.noatime);
    }

    #[test]
    fn t50_1_read_only_merge_has_no_default_options() {
        let pl = must_plan(
            MutableMode::No,
            &host("/opt"),
            &ext(&["test-extension"]),
            None,
        );
        assert!(pl.read_only && pl.upper.is_none());
        assert!(pl.options.is_empty() && pl.flag_words.is_empty() && !pl.noatime);
        assert_eq!(
            pl.lowers,
            vec![
                Layer::Meta,
                Layer::Extension("test-extension".into()),
                Layer::Host(p("/opt"))
            ]
        );
        assert!(pl.host_is_lower);
    }

    #[test]
    fn t50_2_read_only_env_options_are_appended() {
        let pl = must_plan(
            MutableMode::No,
            &host("/opt"),
            &ext(&["e"]),
            Some("metacopy=off,noatime"),
        );
        assert!(pl.read_only);
        assert_eq!(pl.options, ext(&["metacopy=off"]));
        assert!(pl.noatime);
    }

    #[test]
    fn env_flag_words_are_mount_flags_not_data_options() {
        let f = with_mutable("/opt", separate_mutable("/opt"));
        let pl = must_plan(
            MutableMode::Yes,
            &f,
            &ext(&["e"]),
            Some("ro,,nodev,lowerdir+=x,'a,b',x-foo,X-Bar,defaults"),
        );
        assert_eq!(pl.flag_words, ext(&["ro", "nodev"]));
        // Quotes are kept (EXTRACT_KEEP_QUOTE); x-* are dropped; "defaults" is not a Linux flag word.
        assert_eq!(pl.options, ext(&["lowerdir+=x", "'a,b'", "defaults"]));
        // "ro" re-sets MS_RDONLY after the writable overlay cleared it, exactly like systemd.
        let flags = pl.mount_flags(MountFlags::RDONLY | MountFlags::NODEV, None);
        assert!(flags.contains(MountFlags::RDONLY | MountFlags::NODEV));
    }

    #[test]
    fn backslash_escapes_and_unbalanced_quotes_follow_extract_first_word() {
        assert_eq!(split_options("a\\,b,c"), Some(ext(&["a,b", "c"])));
        assert_eq!(split_options(",,a,,"), Some(ext(&["a"])));
        assert_eq!(split_options("\"x,y\"z"), Some(ext(&["\"x,y\"z"])));
        assert_eq!(split_options(""), Some(vec![]));
        assert_eq!(split_options("a\\"), None);
        assert_eq!(split_options("'a"), None);
        let f = with_mutable("/opt", separate_mutable("/opt"));
        let err = plan(MutableMode::Yes, &f, &ext(&["e"]), Some("metacopy='on")).unwrap_err();
        assert!(matches!(err, PlanError::InvalidOptions { .. }));
        assert_eq!(err.errno(), rustix::io::Errno::INVAL);
    }

    #[test]
    fn mount_flags_clear_rdonly_for_writable_and_honour_noexec_and_words() {
        let confext_default =
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC;
        let f = with_mutable("/etc", self_linked("/etc"));
        let pl = must_plan(MutableMode::Auto, &f, &ext(&["a"]), None);
        let flags = pl.mount_flags(confext_default, None);
        assert!(!flags.contains(MountFlags::RDONLY));
        assert!(flags.contains(
            MountFlags::NOATIME | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC
        ));
        assert!(!pl
            .mount_flags(confext_default, Some(false))
            .contains(MountFlags::NOEXEC));
        let ro = must_plan(
            MutableMode::No,
            &host("/usr"),
            &ext(&["a"]),
            Some("rw,exec"),
        );
        let flags = ro.mount_flags(MountFlags::RDONLY | MountFlags::NODEV, Some(true));
        assert!(!flags.contains(MountFlags::RDONLY) && !flags.contains(MountFlags::NOEXEC));
        assert_eq!(
            apply_flag_words(MountFlags::empty(), &ext(&["noatime", "atime", "relatime"])),
            MountFlags::RELATIME
        );
    }

    #[test]
    fn t50_29_ephemeral_import_self_link_is_eloop() {
        let f = with_mutable("/opt", self_linked("/opt"));
        let err = plan(MutableMode::EphemeralImport, &f, &ext(&["e"]), None).unwrap_err();
        assert!(matches!(err, PlanError::Loop { .. }));
        assert_eq!(err.errno(), rustix::io::Errno::LOOP);
        assert!(err.to_string().contains("/opt"));
    }

    #[test]
    fn t50_30_import_self_link_is_eloop() {
        let f = with_mutable("/opt", self_linked("/opt"));
        let err = plan(MutableMode::Import, &f, &ext(&["e"]), None).unwrap_err();
        assert!(matches!(err, PlanError::Loop { .. }));
    }

    #[test]
    fn t50_13_self_upper_on_read_only_fs_is_erofs() {
        let mut m = self_linked("/opt");
        m.on_read_only_fs = true;
        let f = HierarchyFacts {
            read_only_fs: true,
            ..with_mutable("/opt", m)
        };
        let err = plan(MutableMode::Auto, &f, &ext(&["e"]), None).unwrap_err();
        assert!(matches!(err, PlanError::ReadOnlyUpper { ref dir } if dir == Path::new("/opt")));
        assert_eq!(err.errno(), rustix::io::Errno::ROFS);
    }

    #[test]
    fn t50_36_mode_mismatch_is_einval() {
        for mode in [MutableMode::Yes, MutableMode::Auto] {
            let mut m = separate_mutable("/opt");
            m.mode = 0o700;
            let err = plan(mode, &with_mutable("/opt", m), &ext(&["e"]), None).unwrap_err();
            assert!(matches!(
                err,
                PlanError::ModeMismatch {
                    have: 0o700,
                    want: 0o755,
                    ..
                }
            ));
            assert_eq!(err.errno(), rustix::io::Errno::INVAL);
            assert!(err.to_string().contains("/var/lib/extensions.mutable/opt"));
            assert!(err.to_string().contains("0700") && err.to_string().contains("0755"));
        }
    }

    #[test]
    fn mode_mismatch_is_not_checked_for_import() {
        let mut m = separate_mutable("/opt");
        m.mode = 0o700;
        let pl = must_plan(
            MutableMode::Import,
            &with_mutable("/opt", m),
            &ext(&["e"]),
            None,
        );
        assert!(pl.read_only);
    }

    #[test]
    fn t50_14_dangling_symlink_means_read_only() {
        // gather_facts reports a dangling mutable symlink as no mutable dir.
        let pl = must_plan(MutableMode::Auto, &host("/opt"), &ext(&["e"]), None);
        assert!(pl.read_only && pl.upper.is_none() && pl.options.is_empty());
        assert_eq!(
            pl.lowers,
            vec![
                Layer::Meta,
                Layer::Extension("e".into()),
                Layer::Host(p("/opt"))
            ]
        );
    }

    #[test]
    fn t50_18_auto_without_mutable_dir_is_read_only() {
        let pl = must_plan(MutableMode::Auto, &host("/opt"), &ext(&["e"]), None);
        assert!(pl.read_only);
    }

    #[test]
    fn t50_6_t50_15_mode_no_ignores_an_existing_mutable_dir() {
        let f = with_mutable("/opt", separate_mutable("/opt"));
        let pl = must_plan(MutableMode::No, &f, &ext(&["e"]), None);
        assert!(pl.read_only && pl.upper.is_none());
        assert!(!pl.lowers.iter().any(|l| matches!(l, Layer::Import(_))));
    }

    #[test]
    fn t50_4_missing_hierarchy_is_not_a_lower() {
        let f = HierarchyFacts {
            exists: false,
            ..host("/opt")
        };
        let pl = must_plan(MutableMode::No, &f, &ext(&["e"]), None);
        assert_eq!(pl.lowers, vec![Layer::Meta, Layer::Extension("e".into())]);
        assert!(!pl.host_is_lower);
    }

    #[test]
    fn t50_5_empty_hierarchy_is_not_a_lower() {
        let f = HierarchyFacts {
            is_empty: true,
            ..host("/opt")
        };
        let pl = must_plan(MutableMode::No, &f, &ext(&["e"]), None);
        assert_eq!(pl.lowers, vec![Layer::Meta, Layer::Extension("e".into())]);
    }

    #[test]
    fn t50_9_t50_10_auto_with_missing_or_empty_hierarchy_is_writable_without_host() {
        for f in [
            HierarchyFacts {
                exists: false,
                ..with_mutable("/opt", separate_mutable("/opt"))
            },
            HierarchyFacts {
                is_empty: true,
                ..with_mutable("/opt", separate_mutable("/opt"))
            },
        ] {
            let pl = must_plan(MutableMode::Auto, &f, &ext(&["e"]), None);
            assert!(!pl.read_only && !pl.host_is_lower);
            assert_eq!(pl.lowers, vec![Layer::Meta, Layer::Extension("e".into())]);
        }
    }

    #[test]
    fn t50_16_import_adds_mutable_dir_just_below_meta_read_only() {
        let f = with_mutable("/opt", separate_mutable("/opt"));
        let pl = must_plan(MutableMode::Import, &f, &ext(&["e"]), None);
        assert_eq!(
            pl.lowers,
            vec![
                Layer::Meta,
                Layer::Import(p("/var/lib/extensions.mutable/opt")),
                Layer::Extension("e".into()),
                Layer::Host(p("/opt")),
            ]
        );
        assert!(pl.read_only && pl.upper.is_none() && pl.options.is_empty());
    }

    #[test]
    fn t50_25_ephemeral_is_writable_on_tmpfs_with_host_lower() {
        // Even a self-linked mutable dir is irrelevant: ephemeral never looks inside the root.
        let f = with_mutable("/opt", self_linked("/opt"));
        let pl = must_plan(MutableMode::Ephemeral, &f, &ext(&["e"]), None);
        assert_eq!(pl.upper, Some(UpperDir::Ephemeral));
        assert_eq!(
            pl.lowers,
            vec![
                Layer::Meta,
                Layer::Extension("e".into()),
                Layer::Host(p("/opt"))
            ]
        );
        assert!(!pl.read_only && !pl.self_upper);
        assert_eq!(pl.options, defaults());
    }

    #[test]
    fn t50_27_ephemeral_import_imports_mutable_dir_and_keeps_host() {
        let f = with_mutable("/opt", separate_mutable("/opt"));
        let pl = must_plan(MutableMode::EphemeralImport, &f, &ext(&["e"]), None);
        assert_eq!(
            pl.lowers,
            vec![
                Layer::Meta,
                Layer::Import(p("/var/lib/extensions.mutable/opt")),
                Layer::Extension("e".into()),
                Layer::Host(p("/opt")),
            ]
        );
        assert_eq!(pl.upper, Some(UpperDir::Ephemeral));
        let pl = must_plan(
            MutableMode::EphemeralImport,
            &host("/opt"),
            &ext(&["e"]),
            None,
        );
        assert_eq!(
            pl.lowers,
            vec![
                Layer::Meta,
                Layer::Extension("e".into()),
                Layer::Host(p("/opt"))
            ]
        );
    }

    #[test]
    fn s4_7_no_extensions_with_mode_no_leaves_hierarchy_alone() {
        assert!(plan(MutableMode::No, &host("/usr"), &[], None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn s4_7_auto_without_extensions_or_mutable_dir_is_read_only_meta_over_host() {
        let pl = must_plan(MutableMode::Auto, &host("/usr"), &[], None);
        assert!(pl.read_only);
        assert_eq!(pl.lowers, vec![Layer::Meta, Layer::Host(p("/usr"))]);
    }

    #[test]
    fn s4_7_mutable_without_extensions_and_without_host_is_too_few_layers() {
        for f in [
            HierarchyFacts {
                exists: false,
                ..host("/opt")
            },
            HierarchyFacts {
                is_empty: true,
                ..host("/opt")
            },
        ] {
            let err = plan(MutableMode::Auto, &f, &[], None).unwrap_err();
            assert!(matches!(err, PlanError::TooFewLayers { .. }));
            assert_eq!(err.errno(), rustix::io::Errno::INVAL);
        }
    }

    #[test]
    fn s4_7_yes_without_extensions_over_empty_hierarchy_is_a_valid_overlay() {
        let f = HierarchyFacts {
            is_empty: true,
            ..with_mutable("/opt", separate_mutable("/opt"))
        };
        let pl = must_plan(MutableMode::Yes, &f, &[], None);
        assert_eq!(pl.lowers, vec![Layer::Meta]);
        assert!(pl.upper.is_some());
    }

    #[test]
    fn workdir_parent_on_another_fs_is_exdev() {
        let mut m = separate_mutable("/opt");
        m.parent_same_fs = false;
        let err = plan(
            MutableMode::Auto,
            &with_mutable("/opt", m),
            &ext(&["e"]),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::CrossDevice { .. }));
        assert_eq!(err.errno(), rustix::io::Errno::XDEV);
    }

    #[test]
    fn extensions_keep_the_callers_top_first_order() {
        let pl = must_plan(MutableMode::No, &host("/usr"), &ext(&["c", "b", "a"]), None);
        let names: Vec<&str> = pl
            .lowers
            .iter()
            .filter_map(|l| match l {
                Layer::Extension(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["c", "b", "a"]);
    }

    #[test]
    fn t50_31_top_mode_is_the_hierarchy_mode() {
        let f = HierarchyFacts {
            mode: 0o750,
            ..host("/opt")
        };
        assert_eq!(
            must_plan(MutableMode::No, &f, &ext(&["e"]), None).top_mode,
            0o750
        );
        let mut m = separate_mutable("/opt");
        m.mode = 0o750;
        let f = HierarchyFacts {
            mode: 0o750,
            ..with_mutable("/opt", m)
        };
        assert_eq!(
            must_plan(MutableMode::Yes, &f, &ext(&["e"]), None).top_mode,
            0o750
        );
    }

    // ---- gather_facts(): tempdir trees ----

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("opt")).unwrap();
        std::fs::write(t.path().join("opt/host-file"), "h").unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/hostname"), "h").unwrap();
        t
    }

    #[test]
    fn gather_yes_creates_mutable_dir_with_parents_0755_and_hierarchy_mode() {
        // Parents are created 0755 minus umask, like systemd; pin the umask to make that visible.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        let t = tree();
        std::fs::set_permissions(t.path().join("opt"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        let f = gather_facts(t.path(), Path::new("/opt"), MutableMode::Yes).unwrap();
        let md = t.path().join("var/lib/extensions.mutable/opt");
        assert!(md.is_dir());
        assert_eq!(mode_of(&md), 0o750);
        for parent in ["var", "var/lib", "var/lib/extensions.mutable"] {
            assert_eq!(mode_of(&t.path().join(parent)), 0o755, "{parent}");
        }
        assert_eq!(f.mode, 0o750);
        let m = f.mutable_dir.clone().unwrap();
        assert_eq!(m.resolved, p("/var/lib/extensions.mutable/opt"));
        assert_eq!(m.mode, 0o750);
        assert!(!m.same_inode_as_hierarchy && m.parent_same_fs);
        let pl = must_plan(MutableMode::Yes, &f, &ext(&["e"]), None);
        assert!(!pl.read_only && pl.host_is_lower);
    }

    #[test]
    fn gather_yes_creates_dirs_even_for_a_missing_hierarchy() {
        let t = tree();
        let f = gather_facts(t.path(), Path::new("/usr"), MutableMode::Yes).unwrap();
        assert!(!f.exists && f.mode == 0o755);
        assert!(t.path().join("var/lib/extensions.mutable/usr").is_dir());
        assert_eq!(f.resolved, p("/usr"));
    }

    #[test]
    fn gather_auto_import_and_ephemeral_modes_never_create() {
        for mode in [
            MutableMode::Auto,
            MutableMode::Import,
            MutableMode::Ephemeral,
            MutableMode::EphemeralImport,
            MutableMode::No,
        ] {
            let t = tree();
            let f = gather_facts(t.path(), Path::new("/opt"), mode).unwrap();
            assert!(f.mutable_dir.is_none(), "{mode}");
            assert!(
                !t.path().join("var").exists(),
                "{mode} created the mutable dir"
            );
        }
    }

    #[test]
    fn gather_mode_no_and_ephemeral_ignore_an_existing_mutable_dir() {
        let t = tree();
        std::fs::create_dir_all(t.path().join("var/lib/extensions.mutable/opt")).unwrap();
        for mode in [MutableMode::No, MutableMode::Ephemeral] {
            assert!(gather_facts(t.path(), Path::new("/opt"), mode)
                .unwrap()
                .mutable_dir
                .is_none());
        }
        for mode in [
            MutableMode::Auto,
            MutableMode::Import,
            MutableMode::EphemeralImport,
        ] {
            assert!(gather_facts(t.path(), Path::new("/opt"), mode)
                .unwrap()
                .mutable_dir
                .is_some());
        }
    }

    #[test]
    fn gather_symlink_to_hierarchy_is_same_inode_and_plans_like_flatcar() {
        let t = tree();
        std::fs::create_dir_all(t.path().join("var/lib/extensions.mutable")).unwrap();
        // Absolute target, resolved inside the root exactly like Flatcar's initrd link.
        std::os::unix::fs::symlink("/etc", t.path().join("var/lib/extensions.mutable/etc"))
            .unwrap();
        for mode in [MutableMode::Auto, MutableMode::Yes] {
            let f = gather_facts(t.path(), Path::new("/etc"), mode).unwrap();
            let m = f.mutable_dir.clone().unwrap();
            assert_eq!(m.resolved, p("/etc"));
            assert!(m.same_inode_as_hierarchy && m.parent_same_fs);
            let pl = must_plan(mode, &f, &ext(&["00-flatcar-default"]), None);
            assert_eq!(
                pl.upper,
                Some(UpperDir::Persistent {
                    upper: p("/etc"),
                    work: p("/.systemd-etc-workdir")
                })
            );
            assert!(pl.self_upper && !pl.host_is_lower);
            assert_eq!(pl.options, defaults());
            assert!(pl.noatime);
        }
        let f = gather_facts(t.path(), Path::new("/etc"), MutableMode::Import).unwrap();
        assert!(matches!(
            plan(MutableMode::Import, &f, &ext(&["a"]), None),
            Err(PlanError::Loop { .. })
        ));
    }

    #[test]
    fn gather_dangling_symlink_is_no_mutable_dir_for_auto() {
        let t = tree();
        std::fs::create_dir_all(t.path().join("var/lib/extensions.mutable")).unwrap();
        std::os::unix::fs::symlink(
            "/nonexistent",
            t.path().join("var/lib/extensions.mutable/opt"),
        )
        .unwrap();
        let f = gather_facts(t.path(), Path::new("/opt"), MutableMode::Auto).unwrap();
        assert!(f.mutable_dir.is_none());
        assert!(!t.path().join("nonexistent").exists());
        assert!(must_plan(MutableMode::Auto, &f, &ext(&["e"]), None).read_only);
    }

    #[test]
    fn gather_yes_follows_a_dangling_symlink_and_creates_its_target() {
        // CHASE_MKDIR_0755 follows the final symlink, so systemd creates the link target.
        let t = tree();
        std::fs::create_dir_all(t.path().join("var/lib/extensions.mutable")).unwrap();
        std::os::unix::fs::symlink("/upperdir", t.path().join("var/lib/extensions.mutable/opt"))
            .unwrap();
        let f = gather_facts(t.path(), Path::new("/opt"), MutableMode::Yes).unwrap();
        assert!(t.path().join("upperdir").is_dir());
        assert_eq!(f.mutable_dir.unwrap().resolved, p("/upperdir"));
    }

    #[test]
    fn gather_yes_leaves_a_mismatching_existing_dir_alone_and_plan_fails() {
        let t = tree();
        let md = t.path().join("var/lib/extensions.mutable/opt");
        std::fs::create_dir_all(&md).unwrap();
        std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o700)).unwrap();
        let f = gather_facts(t.path(), Path::new("/opt"), MutableMode::Yes).unwrap();
        assert_eq!(mode_of(&md), 0o700);
        assert!(matches!(
            plan(MutableMode::Yes, &f, &ext(&["e"]), None),
            Err(PlanError::ModeMismatch {
                have: 0o700,
                want: 0o755,
                ..
            })
        ));
    }

    #[test]
    fn gather_reports_missing_and_empty_hierarchies() {
        let t = tree();
        let f = gather_facts(t.path(), Path::new("/usr"), MutableMode::No).unwrap();
        assert!(!f.exists && !f.is_empty && f.mode == 0o755);
        std::fs::create_dir(t.path().join("empty")).unwrap();
        assert!(
            gather_facts(t.path(), Path::new("/empty"), MutableMode::No)
                .unwrap()
                .is_empty
        );
        // Hidden files count as content (dir_is_empty(…, ignore_hidden_or_backup=false)).
        std::fs::write(t.path().join("empty/.hidden"), "").unwrap();
        assert!(
            !gather_facts(t.path(), Path::new("/empty"), MutableMode::No)
                .unwrap()
                .is_empty
        );
    }

    #[test]
    fn gather_rejects_a_hierarchy_that_is_not_a_directory() {
        let t = tree();
        std::fs::write(t.path().join("file"), "").unwrap();
        let err = gather_facts(t.path(), Path::new("/file"), MutableMode::No).unwrap_err();
        assert!(format!("{err:#}").contains("not a directory"));
    }
}
