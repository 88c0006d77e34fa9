//! Why an extension is left out of a merge, as a type: callers decide on the kind (log level,
//! "error" versus "ignored", the update pre-flight) without reading the sentence.

use std::fmt;

/// Why an extension is not merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Its extension-release does not match the host (systemd's `extension_release_validate`).
    Release(Mismatch),
    /// It has no usable extension-release file.
    NoRelease(String),
    /// An empty directory: a mask for lower-precedence images of the same name.
    EmptyMask {
        /// The image name it masks.
        name: String,
    },
    /// It ships `usr/lib/os-release` (a sysext must not replace the OS identity).
    ForbiddenContent {
        /// What was found there (`a regular file`, `a symbolic link`, …).
        what: String,
    },
    /// It ships the meta directory a merge writes (`usr/.systemd-sysext`, …).
    ShipsMeta {
        /// The path inside the extension.
        path: String,
    },
    /// The image policy does not allow how it is protected.
    Policy(String),
    /// It cannot be opened, read or verified.
    Unreadable(String),
    /// `--check-conflicts=refuse` dropped it.
    Conflict(String),
    /// Overlayfs cannot stack more layers; higher-priority extensions took them.
    LayerLimit {
        /// The limit that was reached.
        limit: usize,
    },
}

impl Reject {
    /// An error (something is broken) rather than an extension that is simply not for this host.
    pub fn is_error(&self) -> bool {
        matches!(self, Reject::Unreadable(_) | Reject::ShipsMeta { .. })
    }

    /// Pinned to another OS version: after an A/B update this is the image that silently stopped
    /// working, so it is logged as a warning.
    pub fn is_version_mismatch(&self) -> bool {
        matches!(self, Reject::Release(Mismatch::VersionId { .. }))
    }

    /// A stable one-word kind for JSON and journal fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Reject::Release(m) => m.kind(),
            Reject::NoRelease(_) => "no-release",
            Reject::EmptyMask { .. } => "mask",
            Reject::ForbiddenContent { .. } => "forbidden-content",
            Reject::ShipsMeta { .. } => "ships-meta",
            Reject::Policy(_) => "policy",
            Reject::Unreadable(_) => "unreadable",
            Reject::Conflict(_) => "conflict",
            Reject::LayerLimit { .. } => "layer-limit",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Release(m) => m.fmt(f),
            Reject::NoRelease(why) => f.write_str(why),
            Reject::EmptyMask { name } => write!(
                f,
                "empty directory: it carries no extension-release data and masks any lower-precedence image named '{name}'"
            ),
            Reject::ForbiddenContent { what } => write!(
                f,
                "it contains usr/lib/os-release ({what}), which an extension must not ship (it would replace the OS identity)"
            ),
            Reject::ShipsMeta { path } => write!(
                f,
                "it ships {path}, the meta directory a merge writes: a merged tree could not tell its own state from the extension's"
            ),
            Reject::Policy(why) => f.write_str(why),
            Reject::Unreadable(why) => write!(f, "cannot open image: {why}"),
            Reject::Conflict(why) => write!(f, "refused (--check-conflicts=refuse): {why}"),
            Reject::LayerLimit { limit } => write!(
                f,
                "overlayfs stacks at most {limit} layers per hierarchy and extensions of higher priority take them all"
            ),
        }
    }
}

/// How an extension-release fails to match the host, one variant per rule of systemd's
/// `extension_release_validate()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// No release data at all.
    NoData {
        /// The image name.
        name: String,
    },
    /// `<CLASS>_SCOPE=` does not include the host's scope.
    Scope(String),
    /// `ARCHITECTURE=` is not the host's.
    Architecture(String),
    /// `ID=` is missing.
    NoId(String),
    /// `ID=` is neither the host's ID nor in its `ID_LIKE`.
    Id(String),
    /// `<CLASS>_LEVEL=` differs.
    Level(String),
    /// `VERSION_ID=` is missing or differs.
    VersionId {
        /// The sentence.
        why: String,
    },
}

impl Mismatch {
    fn kind(&self) -> &'static str {
        match self {
            Mismatch::NoData { .. } => "no-release-data",
            Mismatch::Scope(_) => "scope",
            Mismatch::Architecture(_) => "architecture",
            Mismatch::NoId(_) | Mismatch::Id(_) => "id",
            Mismatch::Level(_) => "level",
            Mismatch::VersionId { .. } => "version",
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::NoData { name } => write!(
                f,
                "extension '{name}' carries no release data (no extension-release file, or an empty one)"
            ),
            Mismatch::Scope(s)
            | Mismatch::Architecture(s)
            | Mismatch::NoId(s)
            | Mismatch::Id(s)
            | Mismatch::Level(s) => f.write_str(s),
            Mismatch::VersionId { why } => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_classification() {
        let v = Reject::Release(Mismatch::VersionId {
            why: "VERSION_ID=1 does not match".into(),
        });
        assert!(v.is_version_mismatch() && !v.is_error());
        assert_eq!(v.kind(), "version");
        assert!(Reject::Unreadable("x".into()).is_error());
        assert_eq!(
            Reject::Unreadable("bad magic".into()).to_string(),
            "cannot open image: bad magic"
        );
        assert!(!Reject::Policy("no".into()).is_error());
    }
}
