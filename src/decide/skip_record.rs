//! Which refresh-skip ("origin") record the root's systemd reads, decided from what
//! [`crate::gather::systemd`] found in the root's files. Three generations are in the field
//! (Flatcar facts sheet §1, §4): no skip logic at all (systemd ≤ 257, upstream 258/259: Flatcar
//! Stable's 257.9), Flatcar's 258 backport (integer `mode`: the 4628/4669/4694 builds) and
//! upstream's 260+ record (string `mode`, `mountOptions`).
//!
//! The rule (facts sheet §4.1): the binary that will run decides. Its skip-log message says
//! whether it reads a record at all, the `libsystemd-shared-<major>.so` it links says which
//! generation. Only what the binary does not tell is taken from the library directories or
//! from Flatcar's build number, which custom builds break.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The record formats systemd's generations read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkipRecord {
    /// No skip logic (systemd ≤ 257, upstream 258 and 259): no record is written, as those
    /// versions write none.
    #[serde(rename = "none")]
    NoSkipLogic,
    /// Flatcar's backport to 258: the mutable mode as an integer, no `mountOptions`.
    #[serde(rename = "systemd-258")]
    Systemd258,
    /// Upstream since 260: the mutable mode as a string, `mountOptions` when set.
    #[serde(rename = "systemd-260")]
    Systemd260,
}

impl SkipRecord {
    /// The name `status --json` and the journal use.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipRecord::NoSkipLogic => "none",
            SkipRecord::Systemd258 => "systemd-258",
            SkipRecord::Systemd260 => "systemd-260",
        }
    }

    /// What the record looks like, for the log.
    pub fn describe(self) -> &'static str {
        match self {
            SkipRecord::NoSkipLogic => "no refresh-skip record",
            SkipRecord::Systemd258 => {
                "the systemd 258 refresh-skip record (Flatcar's backport: integer mutable mode)"
            }
            SkipRecord::Systemd260 => {
                "the systemd 260+ refresh-skip record (string mutable mode, mountOptions)"
            }
        }
    }
}

/// The format chosen and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// The format written.
    #[serde(rename = "format")]
    pub record: SkipRecord,
    /// Why, in one sentence naming the files it was read from.
    pub reason: String,
}

impl Choice {
    fn new(record: SkipRecord, reason: String) -> Choice {
        Choice { record, reason }
    }

    /// What a state record written before the format was chosen stands for: extmerge always
    /// wrote systemd 262's record then.
    pub fn legacy() -> Choice {
        Choice::new(
            SkipRecord::Systemd260,
            "written by an extmerge that always wrote systemd 262's record".into(),
        )
    }
}

/// What the root's `systemd-sysext` binary says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binary {
    /// It is not there.
    Missing,
    /// It is there but could not be read (why).
    Unreadable(String),
    /// It was read.
    Read {
        /// It holds systemd's "Skipping extension refresh because no change was found" message.
        skip_logic: bool,
        /// The `libsystemd-shared-*.so` it names (its `DT_NEEDED`), when exactly one.
        shared_lib: Option<String>,
    },
}

/// What the root's files say about its systemd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemdFacts {
    /// Where the binary was looked for, inside the root.
    pub binary_path: PathBuf,
    /// What it says.
    pub binary: Binary,
    /// The `libsystemd-shared-*.so` files in the root's systemd library directories.
    pub shared_libs: Vec<PathBuf>,
    /// os-release `ID=`, when readable.
    pub os_id: Option<String>,
    /// os-release `VERSION_ID=`, when set.
    pub version_id: Option<String>,
}

/// The systemd major version in a `libsystemd-shared-<tag>.so` name: meson's `shared-lib-tag`
/// defaults to the major version, and distributions that set it (Fedora's `257.3-1.fc42`)
/// start it with the version.
pub fn major_of_shared_lib(name: &str) -> Option<u32> {
    let tag = name
        .strip_prefix("libsystemd-shared-")?
        .strip_suffix(".so")?;
    let digits = tag.bytes().take_while(u8::is_ascii_digit).count();
    tag[..digits].parse().ok()
}

/// The one systemd major the library directories hold, with the file that says so.
fn library_major(f: &SystemdFacts) -> Option<(u32, String)> {
    let mut found: Vec<(u32, String)> = Vec::new();
    for p in &f.shared_libs {
        let name = p.file_name()?.to_str()?;
        if let Some(m) = major_of_shared_lib(name) {
            if !found.iter().any(|(seen, _)| *seen == m) {
                found.push((m, p.display().to_string()));
            }
        }
    }
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Flatcar's build number (`VERSION_ID=4694.1.1` → 4694), on Flatcar only.
fn flatcar_build(f: &SystemdFacts) -> Option<u32> {
    if f.os_id.as_deref() != Some("flatcar") {
        return None;
    }
    f.version_id.as_deref()?.split('.').next()?.parse().ok()
}

/// The record official Flatcar builds read (facts sheet §1.2, §4.1 rule 3); `None` for build
/// numbers no release branch had.
fn flatcar_generation(build: u32) -> Option<SkipRecord> {
    match build {
        ..=4593 => Some(SkipRecord::NoSkipLogic),
        4628 | 4669 | 4694 => Some(SkipRecord::Systemd258),
        4722.. => Some(SkipRecord::Systemd260),
        _ => None,
    }
}

/// Decide which record the root's systemd reads (facts sheet §4.1).
pub fn choose(f: &SystemdFacts) -> Choice {
    let bin = f.binary_path.display();
    match &f.binary {
        Binary::Read {
            skip_logic: false, ..
        } => Choice::new(
            SkipRecord::NoSkipLogic,
            format!("{bin} has no refresh-skip logic (systemd 257 or older, or upstream 258/259)"),
        ),
        Binary::Read {
            skip_logic: true,
            shared_lib,
        } => with_skip_logic(f, shared_lib.as_deref()),
        Binary::Missing => without_binary(f, format!("{bin} is not in the root")),
        Binary::Unreadable(why) => without_binary(f, format!("{bin} cannot be read ({why})")),
    }
}

/// The binary reads a record: its systemd major tells which.
fn with_skip_logic(f: &SystemdFacts, linked: Option<&str>) -> Choice {
    let bin = f.binary_path.display();
    let major = match linked.and_then(|l| Some((major_of_shared_lib(l)?, l.to_string()))) {
        Some((m, lib)) => Some((m, format!("links {lib}"))),
        None => library_major(f).map(|(m, lib)| (m, format!("the root holds {lib}"))),
    };
    match major {
        Some((258, from)) => Choice::new(
            SkipRecord::Systemd258,
            format!("{bin} has refresh-skip logic and {from}: systemd 258 has it only as Flatcar's backport, which reads the mutable mode as an integer"),
        ),
        Some((m, from)) if m >= 259 => Choice::new(
            SkipRecord::Systemd260,
            format!("{bin} has refresh-skip logic and {from}: systemd {m} reads upstream's record"),
        ),
        Some((m, from)) => Choice::new(
            SkipRecord::Systemd260,
            format!("{bin} has refresh-skip logic and {from}, but no systemd {m} is known to have it: writing upstream's record"),
        ),
        None => match flatcar_build(f) {
            Some(b) if flatcar_generation(b) == Some(SkipRecord::Systemd258) => Choice::new(
                SkipRecord::Systemd258,
                format!("{bin} has refresh-skip logic, its systemd version is not in the root's files, and Flatcar build {b} ships the 258 backport (integer mutable mode)"),
            ),
            _ => Choice::new(
                SkipRecord::Systemd260,
                format!("{bin} has refresh-skip logic and its systemd version is not in the root's files: writing upstream's record"),
            ),
        },
    }
}

/// Without the binary: Flatcar's build number, then the library's major, else upstream's
/// record (what every systemd with the logic, except Flatcar's 258 builds, reads).
fn without_binary(f: &SystemdFacts, why: String) -> Choice {
    if let Some((b, record)) = flatcar_build(f).and_then(|b| Some((b, flatcar_generation(b)?))) {
        let version = f.version_id.as_deref().unwrap_or_default();
        return Choice::new(
            record,
            format!(
                "{why}; Flatcar {version} (build {b}) ships {}",
                record.describe()
            ),
        );
    }
    match library_major(f) {
        Some((m, lib)) if m >= 260 => Choice::new(
            SkipRecord::Systemd260,
            format!("{why}; {lib} is systemd {m}, which reads upstream's record"),
        ),
        Some((m, lib)) if m <= 257 => Choice::new(
            SkipRecord::NoSkipLogic,
            format!("{why}; {lib} is systemd {m}, which has no refresh-skip logic"),
        ),
        _ => Choice::new(
            SkipRecord::Systemd260,
            format!(
                "{why} and no other file tells its systemd generation: writing upstream's record"
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
