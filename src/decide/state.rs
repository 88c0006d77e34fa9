//! What a merge was built from: our state record (content identities, and which of systemd's
//! refresh-skip records was written, [`crate::decide::origin`]), plus the pure comparison
//! behind `refresh`.

use crate::decide::skip_record::Choice;
use crate::gather::identity::Strong;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Version of our state record format.
pub const STATE_VERSION: u32 = 2;

/// Name of our state file inside the meta dir (systemd ignores files it does not know).
pub const STATE_FILE: &str = "extmerge-state.json";

/// One discovered image in our state record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// Image name.
    pub name: String,
    /// `directory`, `raw` or `block`.
    pub kind: String,
    /// Resolved path inside the root.
    pub path: PathBuf,
    /// Content identity; `None` when the extension could not be read (it is then left out).
    pub identity: Option<Strong>,
    /// sha256 of its root-hash signature (sidecar `.p7s` or signature partition), if it has one:
    /// a new signature can change whether the image is trusted, though the content is the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// `dev:ino` of the file or directory merged, unless a verity root hash identifies it: a
    /// copy put in its place is not what the merge's overlay holds (systemd re-merges too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<String>,
}

/// Everything a merge depends on. Equal records mean an identical merge: `refresh` skips.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Record format version; a record from another version never compares equal.
    pub version: u32,
    /// `sysext` or `confext`.
    pub class: String,
    /// sha256 of the host's os-release values (canonical form), which decide compatibility.
    pub os_release: String,
    /// Host scope (`system`/`initrd`).
    pub scope: String,
    /// Host architecture.
    pub architecture: String,
    /// Mutable mode in force (never silently dropped by a later refresh).
    pub mutable: String,
    /// Hierarchy → resolved mutable dir, when one exists.
    pub mutable_dirs: BTreeMap<String, Option<String>>,
    /// Hierarchies merged.
    pub hierarchies: Vec<PathBuf>,
    /// Overlay option override.
    pub overlay_options: Option<String>,
    /// `--noexec=` override.
    pub noexec: Option<bool>,
    /// `--force`.
    pub force: bool,
    /// Image policy.
    pub image_policy: Option<String>,
    /// `--check-conflicts=` in force (`refuse` can leave extensions out).
    pub check_conflicts: String,
    /// sha256 over the trusted certificates (names and contents) that signatures are checked with.
    pub certificates: String,
    /// Every discovered candidate in layer order (acceptance is derived from these and the host).
    pub images: Vec<ImageRecord>,
    /// Which refresh-skip record the root's systemd reads, and why (a record from before the
    /// choice existed stands for systemd 262's, the only one written then).
    #[serde(default = "Choice::legacy")]
    pub skip_record: Choice,
}

/// Our state file as stored in each merged hierarchy's meta dir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// What the merge was built from.
    pub state: State,
    /// Hierarchies that got an overlay (in-root).
    pub merged: Vec<PathBuf>,
}

/// Human-readable differences between an old and a new record; empty means unchanged.
pub fn differences(old: &State, new: &State) -> Vec<String> {
    if old.version != new.version {
        return vec![format!("state format {} → {}", old.version, new.version)];
    }
    let mut d = setting_differences(old, new);
    if old.certificates != new.certificates {
        d.push("the trusted certificates changed".to_string());
    }
    d.extend(image_differences(&old.images, &new.images));
    d
}

/// The host and settings fields that differ, one line each.
fn setting_differences(old: &State, new: &State) -> Vec<String> {
    let dbg = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let fields = [
        ("os-release", old.os_release.clone(), new.os_release.clone()),
        ("scope", old.scope.clone(), new.scope.clone()),
        (
            "architecture",
            old.architecture.clone(),
            new.architecture.clone(),
        ),
        ("mutable mode", old.mutable.clone(), new.mutable.clone()),
        (
            "mutable dirs",
            dbg(&old.mutable_dirs),
            dbg(&new.mutable_dirs),
        ),
        ("hierarchies", dbg(&old.hierarchies), dbg(&new.hierarchies)),
        (
            "overlay options",
            dbg(&old.overlay_options),
            dbg(&new.overlay_options),
        ),
        ("noexec", dbg(&old.noexec), dbg(&new.noexec)),
        ("force", old.force.to_string(), new.force.to_string()),
        (
            "image policy",
            dbg(&old.image_policy),
            dbg(&new.image_policy),
        ),
        (
            "conflict policy",
            old.check_conflicts.clone(),
            new.check_conflicts.clone(),
        ),
        (
            "systemd's refresh-skip record format",
            old.skip_record.record.as_str().to_string(),
            new.skip_record.record.as_str().to_string(),
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, a, b)| format!("{name} changed ({a} → {b})"))
        .collect()
}

/// The extensions added, moved, changed, re-signed, replaced or removed, one line each.
fn image_differences(old: &[ImageRecord], new: &[ImageRecord]) -> Vec<String> {
    let by_name = |v: &[ImageRecord]| -> BTreeMap<String, ImageRecord> {
        v.iter().map(|i| (i.name.clone(), i.clone())).collect()
    };
    let (o, n) = (by_name(old), by_name(new));
    let mut d = Vec::new();
    for (name, img) in &n {
        match o.get(name) {
            None => d.push(format!("extension '{name}' added ({})", img.path.display())),
            Some(prev) if prev.path != img.path => d.push(format!(
                "extension '{name}' now at {} (was {})",
                img.path.display(),
                prev.path.display()
            )),
            Some(prev) if prev.identity != img.identity || prev.kind != img.kind => {
                d.push(format!(
                    "extension '{name}' content changed ({})",
                    img.path.display()
                ))
            }
            Some(prev) if prev.signature != img.signature => d.push(format!(
                "extension '{name}' has another signature ({})",
                img.path.display()
            )),
            Some(prev) if prev.inode != img.inode => d.push(format!(
                "extension '{name}' was replaced by another file or directory ({})",
                img.path.display()
            )),
            Some(_) => {}
        }
    }
    for name in o.keys().filter(|k| !n.contains_key(*k)) {
        d.push(format!("extension '{name}' removed"));
    }
    d
}

/// What the hierarchies of a class carry now, as a refresh finds them.
#[derive(Clone, Debug, Default)]
pub struct Current {
    /// Hierarchies merged by us or by systemd now (in-root).
    pub merged: Vec<PathBuf>,
    /// The state record of each, in the same order: `Ok(None)` without one, `Err` unusable.
    pub records: Vec<Result<Option<StateFile>, String>>,
}

/// What `refresh` does with a class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is merged: merge.
    Fresh,
    /// What is merged is exactly what would be merged now: touch nothing.
    Skip,
    /// Replace the merge, for these reasons (one log line each).
    Rebuild(Vec<String>),
}

/// Decide a refresh from what is merged and the state gathered now.
pub fn decide_refresh(current: &Current, new: &State, always: bool) -> Decision {
    let Some(first) = current.records.first() else {
        return Decision::Fresh;
    };
    let old = match first {
        Err(e) => {
            return Decision::Rebuild(vec![format!(
                "the state record of the current merge is unusable ({e}); re-merging"
            )])
        }
        Ok(None) => {
            return Decision::Rebuild(vec!["the current merge carries no extmerge state".into()])
        }
        Ok(Some(old)) => old,
    };
    let mut reasons = differences(&old.state, new);
    if !old.merged.iter().all(|h| current.merged.contains(h)) {
        reasons.push("a merged hierarchy is no longer ours".into());
    }
    // A run that failed or was killed between hierarchies leaves some new and some old.
    let coherent = current
        .merged
        .iter()
        .zip(&current.records)
        .all(|(h, r)| old.merged.contains(h) && matches!(r, Ok(Some(sf)) if sf == old));
    if !coherent {
        reasons.push("the merged hierarchies do not carry the same state".into());
    }
    if reasons.is_empty() && always {
        reasons.push("--always-refresh=yes".into());
    }
    if reasons.is_empty() {
        Decision::Skip
    } else {
        Decision::Rebuild(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            version: STATE_VERSION,
            class: "sysext".into(),
            os_release: "aa".into(),
            scope: "system".into(),
            architecture: "x86-64".into(),
            mutable: "no".into(),
            mutable_dirs: BTreeMap::new(),
            hierarchies: vec!["/usr".into()],
            overlay_options: None,
            noexec: None,
            force: false,
            image_policy: None,
            check_conflicts: "warn".into(),
            certificates: "00".into(),
            images: vec![ImageRecord {
                name: "a".into(),
                kind: "raw".into(),
                path: "/var/lib/extensions/a.raw".into(),
                identity: Some(Strong::TreeDigest("11".into())),
                signature: None,
                inode: Some("1:2".into()),
            }],
            skip_record: Choice::legacy(),
        }
    }

    #[test]
    fn differences_name_what_changed_and_equal_states_have_none() {
        let a = state();
        assert!(differences(&a, &a.clone()).is_empty());
        let mut b = a.clone();
        b.images[0].identity = Some(Strong::TreeDigest("22".into()));
        assert_eq!(
            differences(&a, &b),
            ["extension 'a' content changed (/var/lib/extensions/a.raw)"]
        );
        let mut c = a.clone();
        c.images[0].path = "/opt/store/a-2.raw".into();
        assert!(differences(&a, &c)[0].contains("now at /opt/store/a-2.raw"));
        let mut d = a.clone();
        d.images.clear();
        assert_eq!(differences(&a, &d), ["extension 'a' removed"]);
        assert_eq!(
            differences(&d, &a),
            ["extension 'a' added (/var/lib/extensions/a.raw)"]
        );
        let mut e = a.clone();
        e.mutable = "auto".into();
        e.os_release = "bb".into();
        assert_eq!(differences(&a, &e).len(), 2);
        let mut g = a.clone();
        g.check_conflicts = "refuse".into();
        g.certificates = "01".into();
        g.images[0].signature = Some("5e".into());
        assert_eq!(
            differences(&a, &g),
            [
                "conflict policy changed (warn → refuse)",
                "the trusted certificates changed",
                "extension 'a' has another signature (/var/lib/extensions/a.raw)"
            ]
        );
        let mut h = a.clone();
        h.images[0].inode = Some("1:3".into());
        assert_eq!(
            differences(&a, &h),
            ["extension 'a' was replaced by another file or directory (/var/lib/extensions/a.raw)"]
        );
    }

    #[test]
    fn refresh_skips_only_an_unchanged_coherent_merge() {
        let sf = StateFile {
            state: state(),
            merged: vec!["/usr".into()],
        };
        let cur = |records: Vec<Result<Option<StateFile>, String>>, merged: &[&str]| Current {
            merged: merged.iter().map(PathBuf::from).collect(),
            records,
        };
        assert_eq!(
            decide_refresh(&Current::default(), &sf.state, false),
            Decision::Fresh
        );
        let same = cur(vec![Ok(Some(sf.clone()))], &["/usr"]);
        assert_eq!(decide_refresh(&same, &sf.state, false), Decision::Skip);
        assert_eq!(
            decide_refresh(&same, &sf.state, true),
            Decision::Rebuild(vec!["--always-refresh=yes".into()])
        );
        let mut changed = sf.state.clone();
        changed.mutable = "yes".into();
        assert!(
            matches!(decide_refresh(&same, &changed, false), Decision::Rebuild(r) if r == ["mutable mode changed (no → yes)"])
        );
        let none = cur(vec![Ok(None)], &["/usr"]);
        assert!(matches!(
            decide_refresh(&none, &sf.state, false),
            Decision::Rebuild(_)
        ));
        let bad = cur(vec![Err("parse error".into())], &["/usr"]);
        assert!(
            matches!(decide_refresh(&bad, &sf.state, false), Decision::Rebuild(r) if r[0].contains("parse error"))
        );
        // Killed between hierarchies: one new, one without our record.
        let mixed = cur(vec![Ok(Some(sf.clone())), Ok(None)], &["/usr", "/opt"]);
        assert!(
            matches!(decide_refresh(&mixed, &sf.state, false), Decision::Rebuild(r) if r == ["the merged hierarchies do not carry the same state"])
        );
    }

    #[test]
    fn a_new_skip_record_format_rebuilds_and_old_records_stand_for_262s() {
        use crate::decide::skip_record::SkipRecord;
        let a = state();
        let mut b = a.clone();
        b.skip_record = Choice {
            record: SkipRecord::Systemd258,
            reason: "r".into(),
        };
        assert_eq!(
            differences(&a, &b),
            ["systemd's refresh-skip record format changed (systemd-260 → systemd-258)"]
        );
        let mut c = a.clone();
        c.skip_record.reason = "another reason".into();
        assert!(differences(&a, &c).is_empty(), "only the format counts");
        let mut v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v["skipRecord"],
            serde_json::json!({"format": "systemd-258", "reason": "r"})
        );
        v.as_object_mut().unwrap().remove("skipRecord");
        let old: State = serde_json::from_value(v).unwrap();
        assert_eq!(old.skip_record, Choice::legacy());
    }

    #[test]
    fn state_round_trips_through_json_and_other_versions_differ() {
        let a = state();
        let back: State = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a, back);
        let mut f = a.clone();
        f.version = 99;
        assert_eq!(differences(&f, &a).len(), 1);
    }
}
