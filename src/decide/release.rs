//! os-release / extension-release handling: the extension-release lookup
//! (`open_extension_release_at`) and the compatibility decision (`extension_release_validate`).

pub use crate::ondisk::envfile::{
    parse_env, parse_env_bytes, parse_env_strict, ParseWarning, ReleaseData,
};

use crate::class::ImageClass;
use crate::decide::reject::{Mismatch, Reject};
use crate::ondisk::envfile::systemd_utf8;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The file name prefix of extension-release files.
pub const RELEASE_PREFIX: &str = "extension-release.";

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
    /// The os-release file that was read (as shown in messages).
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
    /// The extension is left out, for the stated reason.
    Reject(Reject),
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
        Err(m) => Verdict::Reject(Reject::Release(m)),
    }
}

/// What [`judge`] needs to know about one extension tree (read by `gather::release`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFacts {
    /// The extension-release file used and its contents; `Err` says why none can be used.
    pub release: Result<Option<ReleaseData>, String>,
    /// Where the release file was looked for (for the "none found" sentence).
    pub release_dir: String,
    /// What `usr/lib/os-release` is in the tree (`None`: absent); `Err`: it cannot be checked.
    pub os_release: Result<Option<String>, String>,
    /// The meta directory the tree ships at a hierarchy, if any (`usr/.systemd-sysext`).
    pub ships_meta: Option<String>,
    /// The tree is an empty directory.
    pub empty: bool,
}

/// Whether one extension tree is usable on `host`: forbidden content, meta directories,
/// extension-release lookup and validation, in systemd's order. `host` is `Err` when the host's
/// os-release cannot be used; then nothing can be accepted (except under `--force`).
pub fn judge(
    host: Result<&HostInfo, &str>,
    class: ImageClass,
    name: &str,
    is_dir: bool,
    tree: &TreeFacts,
    force: bool,
) -> Verdict {
    if let Some(path) = &tree.ships_meta {
        return Verdict::Reject(Reject::ShipsMeta { path: path.clone() });
    }
    // systemd refuses directory sysexts with usr/lib/os-release even under --force; images only without it.
    if class == ImageClass::Sysext && (is_dir || !force) {
        match &tree.os_release {
            Ok(Some(what)) => {
                return Verdict::Reject(Reject::ForbiddenContent { what: what.clone() })
            }
            Ok(None) => {}
            Err(e) => {
                return Verdict::Reject(Reject::Unreadable(format!(
                    "cannot check it for usr/lib/os-release: {e}"
                )))
            }
        }
    }
    if force {
        return Verdict::Accept;
    }
    let host = match host {
        Ok(h) => h,
        Err(e) => {
            return Verdict::Reject(Reject::NoRelease(format!(
                "the host's os-release cannot be used: {e}"
            )))
        }
    };
    match &tree.release {
        Ok(Some(data)) => validate(host, class, name, Some(data)),
        Ok(None) if is_dir && tree.empty => Verdict::Reject(Reject::EmptyMask {
            name: name.to_string(),
        }),
        Ok(None) => Verdict::Reject(Reject::NoRelease(format!(
            "no {}/extension-release.{name} (or an accepted fallback) in the image",
            tree.release_dir
        ))),
        Err(e) => Verdict::Reject(Reject::NoRelease(e.clone())),
    }
}

/// A release value as it may appear in a log line: control characters (a quoted value may span
/// lines) are escaped, so a hostile extension-release cannot forge or split log lines.
fn shown(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.chars().any(char::is_control) {
        return v.into();
    }
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// systemd's `extension_release_validate()`, rule by rule in its order: scope, architecture,
/// ID (with `_any` and `ID_LIKE`), then the level or `VERSION_ID`.
fn check(
    host: &HostInfo,
    class: ImageClass,
    name: &str,
    ext: Option<&ReleaseData>,
) -> Result<(), Mismatch> {
    let Some(ext) = ext.filter(|e| !e.is_empty()) else {
        return Err(Mismatch::NoData {
            name: name.to_string(),
        });
    };
    check_scope(host, class, ext)?;
    check_architecture(host, ext)?;
    if check_id(host, ext)? == IdMatch::Any {
        return Ok(());
    }
    check_version(host, class, ext)
}

fn check_scope(host: &HostInfo, class: ImageClass, ext: &ReleaseData) -> Result<(), Mismatch> {
    let (scope_key, hs) = (class.scope_key(), host.scope.as_str());
    match ext.get(scope_key) {
        None if hs != "system" && hs != "portable" => Err(Mismatch::Scope(format!(
            "{scope_key} is not set, which means \"system portable\", so it is not meant for the host scope \"{hs}\""
        ))),
        Some(v) if words(v).next().is_none() => Err(Mismatch::Scope(format!(
            "{scope_key} is set but empty, which matches no scope, not even the host scope \"{hs}\""
        ))),
        Some(v) if !words(v).any(|w| w == hs) => Err(Mismatch::Scope(format!(
            "{scope_key}={} does not include the host scope \"{hs}\"",
            shown(v)
        ))),
        _ => Ok(()),
    }
}

fn check_architecture(host: &HostInfo, ext: &ReleaseData) -> Result<(), Mismatch> {
    match non_empty(ext, "ARCHITECTURE").filter(|a| *a != "_any" && *a != host.architecture) {
        Some(arch) => Err(Mismatch::Architecture(format!(
            "ARCHITECTURE={} does not match the host architecture {} (ARCHITECTURE=_any fits all)",
            shown(arch),
            host.architecture
        ))),
        None => Ok(()),
    }
}

/// How an extension's `ID` matched the host's.
#[derive(PartialEq, Eq)]
enum IdMatch {
    /// `ID=_any`: accepted without looking at versions.
    Any,
    /// The host's `ID` or a word of its `ID_LIKE`.
    Host,
}

fn check_id(host: &HostInfo, ext: &ReleaseData) -> Result<IdMatch, Mismatch> {
    let Some(id) = non_empty(ext, "ID") else {
        return Err(Mismatch::NoId(format!(
            "ID is not set; it must be the host's ID={}, a word of its ID_LIKE, or _any",
            host.id
        )));
    };
    if id == "_any" {
        return Ok(IdMatch::Any);
    }
    if id != host.id && !host.id_like.iter().any(|l| l == id) {
        let like = if host.id_like.is_empty() {
            "(the host sets no ID_LIKE)".to_owned()
        } else {
            format!("nor any word of its ID_LIKE=\"{}\"", host.id_like.join(" "))
        };
        return Err(Mismatch::Id(format!(
            "ID={} matches neither the host's ID={} {like}",
            shown(id),
            host.id
        )));
    }
    Ok(IdMatch::Host)
}

fn check_version(host: &HostInfo, class: ImageClass, ext: &ReleaseData) -> Result<(), Mismatch> {
    let level_key = class.level_key();
    let (host_level, ext_level) = (host.level(class), non_empty(ext, level_key));
    if host.version_id.is_none() && host_level.is_none() {
        return Ok(()); // rule 6: a rolling release without version information
    }
    if let (Some(h), Some(e)) = (host_level, ext_level) {
        if h != e {
            return Err(Mismatch::Level(format!(
                "{level_key}={} does not match the host's {level_key}={h}",
                shown(e)
            )));
        }
        return Ok(());
    }
    let Some(hv) = host.version_id.as_deref() else {
        return Ok(()); // rule 9 [QUIRK]: a host with a LEVEL but no VERSION_ID accepts an extension with neither
    };
    let why = match host_level {
        Some(h) => format!(
            "and no common {level_key}: the extension declares none, the host has {level_key}={h}"
        ),
        None => format!("and no common {level_key}: the host declares none"),
    };
    match non_empty(ext, "VERSION_ID") {
        None => Err(Mismatch::VersionId {
            why: format!("VERSION_ID is not set, but the host has VERSION_ID={hv} ({why})"),
        }),
        Some(ev) if ev != hv => Err(Mismatch::VersionId {
            why: format!(
                "VERSION_ID={} does not match the host's VERSION_ID={hv} ({why})",
                shown(ev)
            ),
        }),
        Some(_) => Ok(()),
    }
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
pub fn image_name_is_valid(s: &str) -> bool {
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
pub fn release_suffix(file_name: &str) -> Option<&str> {
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
    pick_release_file_as(name, exact_exists, candidates, false)
}

/// The same in systemd's relaxed mode, which only the service-manager reload uses
/// (`relax_extension_release_check`): every fallback candidate qualifies, whatever its name or
/// xattr. In a merged tree, whose directory holds the files of every merged extension, that
/// finds one only when it is the only candidate.
pub fn pick_release_file_relaxed(
    name: &str,
    exact_exists: bool,
    candidates: &[ReleaseCandidate],
) -> Result<Option<String>, String> {
    pick_release_file_as(name, exact_exists, candidates, true)
}

fn pick_release_file_as(
    name: &str,
    exact_exists: bool,
    candidates: &[ReleaseCandidate],
    relax: bool,
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
            release_suffix(&c.file_name)
                .is_some_and(|x| relax || x == stem || c.strict == Some(false))
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

#[cfg(test)]
mod tests;
