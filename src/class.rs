//! The two extension classes and every per-class constant systemd uses for them.

use serde::Serialize;
use std::fmt;

/// Which kind of extension: system extensions (`/usr`, `/opt`) or configuration extensions (`/etc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageClass {
    /// System extension: merged onto `/usr` and `/opt`.
    Sysext,
    /// Configuration extension: merged onto `/etc`.
    Confext,
}

impl ImageClass {
    /// Classes in the order they are merged: confext first, so a confext may configure sysext.
    pub const MERGE_ORDER: [ImageClass; 2] = [ImageClass::Confext, ImageClass::Sysext];

    /// The other class.
    pub fn other(self) -> ImageClass {
        match self {
            ImageClass::Sysext => ImageClass::Confext,
            ImageClass::Confext => ImageClass::Sysext,
        }
    }

    /// What systemd's "No … found." line calls this class's images.
    pub fn nothing_found(self) -> &'static str {
        match self {
            ImageClass::Sysext => "extensions",
            ImageClass::Confext => "confexts",
        }
    }

    /// Short name as used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            ImageClass::Sysext => "sysext",
            ImageClass::Confext => "confext",
        }
    }

    /// Meta directory placed on top of a merged hierarchy.
    pub fn meta_dir_name(self) -> &'static str {
        match self {
            ImageClass::Sysext => ".systemd-sysext",
            ImageClass::Confext => ".systemd-confext",
        }
    }

    /// Name of the file in the meta directory listing the merged extensions.
    pub fn list_file_name(self) -> &'static str {
        match self {
            ImageClass::Sysext => "extensions",
            ImageClass::Confext => "confexts",
        }
    }

    /// os-release key carrying the API level for this class.
    pub fn level_key(self) -> &'static str {
        match self {
            ImageClass::Sysext => "SYSEXT_LEVEL",
            ImageClass::Confext => "CONFEXT_LEVEL",
        }
    }

    /// extension-release key listing the scopes an extension is meant for.
    pub fn scope_key(self) -> &'static str {
        match self {
            ImageClass::Sysext => "SYSEXT_SCOPE",
            ImageClass::Confext => "CONFEXT_SCOPE",
        }
    }

    /// Environment variable overriding the hierarchies (colon-separated absolute paths).
    pub fn hierarchies_env(self) -> &'static str {
        match self {
            ImageClass::Sysext => "SYSTEMD_SYSEXT_HIERARCHIES",
            ImageClass::Confext => "SYSTEMD_CONFEXT_HIERARCHIES",
        }
    }

    /// Environment variable selecting the mutable mode.
    pub fn mutable_env(self) -> &'static str {
        match self {
            ImageClass::Sysext => "SYSTEMD_SYSEXT_MUTABLE_MODE",
            ImageClass::Confext => "SYSTEMD_CONFEXT_MUTABLE_MODE",
        }
    }

    /// Environment variable with extra overlayfs mount options.
    pub fn overlay_options_env(self) -> &'static str {
        match self {
            ImageClass::Sysext => "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS",
            ImageClass::Confext => "SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS",
        }
    }

    /// Hierarchies merged when the environment does not say otherwise.
    pub fn default_hierarchies(self) -> &'static [&'static str] {
        match self {
            ImageClass::Sysext => &["/usr", "/opt"],
            ImageClass::Confext => &["/etc"],
        }
    }

    /// Directory inside an extension that holds its `extension-release.NAME` file.
    pub fn release_dir(self) -> &'static str {
        match self {
            ImageClass::Sysext => "usr/lib/extension-release.d",
            ImageClass::Confext => "etc/extension-release.d",
        }
    }

    /// Optional suffix stripped from image names (`foo.sysext.raw` is image `foo`).
    pub fn name_suffix(self) -> &'static str {
        match self {
            ImageClass::Sysext => ".sysext",
            ImageClass::Confext => ".confext",
        }
    }

    /// Base name of the configuration file (`<dir>/systemd/<base>.conf`).
    pub fn config_base(self) -> &'static str {
        self.name()
    }

    /// Section read from the configuration file.
    pub fn config_section(self) -> &'static str {
        match self {
            ImageClass::Sysext => "SysExt",
            ImageClass::Confext => "ConfExt",
        }
    }

    /// Source name of the overlay mount, as systemd sets it.
    pub fn overlay_source(self) -> &'static str {
        self.name()
    }

    /// Search directories, first listed wins; `initrd` selects systemd's initrd list.
    pub fn search_dirs(self, initrd: bool) -> &'static [&'static str] {
        match (self, initrd) {
            (ImageClass::Sysext, false) => {
                &["/etc/extensions", "/run/extensions", "/var/lib/extensions"]
            }
            (ImageClass::Sysext, true) => &[
                "/etc/extensions",
                "/run/extensions",
                "/var/lib/extensions",
                "/.extra/sysext",
                "/.extra/global_sysext",
            ],
            (ImageClass::Confext, false) => &[
                "/run/confexts",
                "/var/lib/confexts",
                "/usr/local/lib/confexts",
                "/usr/lib/confexts",
            ],
            (ImageClass::Confext, true) => &[
                "/run/confexts",
                "/var/lib/confexts",
                "/usr/local/lib/confexts",
                "/.extra/confext",
                "/.extra/global_confext",
            ],
        }
    }
}

impl fmt::Display for ImageClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initrd_confext_list_replaces_usr_lib_confexts() {
        let host = ImageClass::Confext.search_dirs(false);
        let initrd = ImageClass::Confext.search_dirs(true);
        assert!(host.contains(&"/usr/lib/confexts"));
        assert!(!initrd.contains(&"/usr/lib/confexts"));
        assert!(initrd.contains(&"/.extra/global_confext"));
    }

    #[test]
    fn sysext_never_searches_usr() {
        for initrd in [false, true] {
            assert!(ImageClass::Sysext
                .search_dirs(initrd)
                .iter()
                .all(|d| !d.starts_with("/usr")));
        }
    }
}
