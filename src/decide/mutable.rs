//! Mutable modes: whether and where a merged hierarchy accepts writes.

use crate::decide::mountopts::MountFlags;
use crate::decide::mountopts::{apply_flag_words, is_mount_flag_word, split_options};
use serde::Serialize;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
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
    /// EINVAL (`mount_option_mangle`): unbalanced quotes or a trailing backslash in the options.
    InvalidOptions { options: String },
}

impl PlanError {
    /// The errno systemd-sysext fails with in the same situation.
    pub fn errno(&self) -> &'static str {
        match self {
            PlanError::ModeMismatch { .. } | PlanError::InvalidOptions { .. } => "EINVAL",
            PlanError::ReadOnlyUpper { .. } => "EROFS",
            PlanError::CrossDevice { .. } => "EXDEV",
            PlanError::Loop { .. } => "ELOOP",
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
            PlanError::InvalidOptions { options } => write!(
                f,
                "Failed to parse overlayfs mount options '{options}': unbalanced quotes or trailing backslash."
            ),
        }
    }
}

impl std::error::Error for PlanError {}

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
    check_mutable_mode(mode, facts, persistent)?;
    let lowers = lower_dirs(mode, facts, persistent, extensions)?;
    let upper = upper_dir(mode, facts, persistent)?;

    // Nothing to merge here (no extension, no upper, no import, an empty or missing host):
    // systemd fails the whole class ("at least 2 lowerdir are needed"); this hierarchy is left
    // alone instead and the others merge (README, differences).
    if upper.is_none() && lowers.layers.len() < 2 {
        return Ok(None);
    }

    let read_only = upper.is_none();
    let opts = mount_options(overlay_options_env, read_only)?;
    Ok(Some(HierarchyPlan {
        hierarchy: facts.hierarchy.clone(),
        lowers: lowers.layers,
        upper,
        read_only,
        options: opts.options,
        noatime: opts.noatime,
        flag_words: opts.flag_words,
        self_upper: lowers.self_upper,
        top_mode: facts.mode,
        host_is_lower: lowers.host_is_lower,
    }))
}

/// resolve_mutable_directory(): the mode check runs before anything else (EINVAL).
fn check_mutable_mode(
    mode: MutableMode,
    facts: &HierarchyFacts,
    persistent: Option<&MutableDirFacts>,
) -> Result<(), PlanError> {
    match persistent {
        Some(m) if matches!(mode, MutableMode::Yes | MutableMode::Auto) && m.mode != facts.mode => {
            Err(PlanError::ModeMismatch {
                dir: mutable_dir_for(&facts.hierarchy),
                have: m.mode,
                want: facts.mode,
            })
        }
        _ => Ok(()),
    }
}

/// The lower layers, top first, and what the host hierarchy is in the overlay.
struct Lowers {
    layers: Vec<Layer>,
    /// The mutable dir is the hierarchy itself: it is the upper, not a lower.
    self_upper: bool,
    host_is_lower: bool,
}

/// determine_top_lower_dirs() (meta, then the import layer), determine_middle_lower_dirs()
/// (the extensions, top first) and hierarchy_as_lower_dir().
fn lower_dirs(
    mode: MutableMode,
    facts: &HierarchyFacts,
    persistent: Option<&MutableDirFacts>,
    extensions: &[String],
) -> Result<Lowers, PlanError> {
    use MutableMode::*;
    let mut layers = vec![Layer::Meta];
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
        layers.push(Layer::Import(m.resolved.clone()));
    }
    layers.extend(extensions.iter().cloned().map(Layer::Extension));
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
        layers.push(Layer::Host(facts.resolved.clone()));
    }
    Ok(Lowers {
        layers,
        self_upper,
        host_is_lower,
    })
}

/// determine_upper_dir() / determine_work_dir().
fn upper_dir(
    mode: MutableMode,
    facts: &HierarchyFacts,
    persistent: Option<&MutableDirFacts>,
) -> Result<Option<UpperDir>, PlanError> {
    use MutableMode::*;
    let m = match (mode, persistent) {
        (No | Import, _) | (Yes | Auto, None) => return Ok(None),
        (Ephemeral | EphemeralImport, _) => return Ok(Some(UpperDir::Ephemeral)),
        (Yes | Auto, Some(m)) => m,
    };
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
    Ok(Some(UpperDir::Persistent {
        upper: m.resolved.clone(),
        work: parent.join(work_dir_name(&facts.hierarchy)),
    }))
}

/// The overlay's options, split as mount_option_mangle() splits them.
struct OverlayOptions {
    options: Vec<String>,
    flag_words: Vec<String>,
    noatime: bool,
}

/// mount_overlayfs(): the env replaces the defaults for writable overlays and is the only
/// source of options for read-only ones; mount_option_mangle() then splits out flag words.
fn mount_options(env: Option<&str>, read_only: bool) -> Result<OverlayOptions, PlanError> {
    let source = match env {
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
    Ok(OverlayOptions {
        options,
        flag_words,
        noatime,
    })
}

#[cfg(test)]
pub(crate) mod tests;
