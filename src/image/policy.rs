//! Image policy (systemd.image-policy(7)) for the partitions an extension can carry: which
//! protection `root` and `usr` may have. The subset extensions need: `unprotected`, `verity`,
//! `signed`, `encrypted`, `encryptedwithintegrity`, `unused`, `absent`, `open`, and the special
//! policies `*`, `-`, `~`.

use crate::class::ImageClass;
use crate::image::ddi::Designator;
use anyhow::{bail, Result};
use std::fmt;

/// How a partition (or a whole single-filesystem image) is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Plain file system.
    Unprotected,
    /// dm-verity with a root hash.
    Verity,
    /// dm-verity with a root hash whose signature was verified.
    Signed,
    /// The partition is not there.
    Absent,
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protection::Unprotected => "unprotected",
            Protection::Verity => "verity",
            Protection::Signed => "signed",
            Protection::Absent => "absent",
        })
    }
}

/// Allowed protections for one designator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Allowed {
    unprotected: bool,
    verity: bool,
    signed: bool,
    absent: bool,
}

impl Allowed {
    const ALL: Allowed = Allowed {
        unprotected: true,
        verity: true,
        signed: true,
        absent: true,
    };
    const ABSENT: Allowed = Allowed {
        unprotected: false,
        verity: false,
        signed: false,
        absent: true,
    };

    fn allows(self, p: Protection) -> bool {
        match p {
            Protection::Unprotected => self.unprotected,
            Protection::Verity => self.verity,
            Protection::Signed => self.signed,
            Protection::Absent => self.absent,
        }
    }
}

/// A parsed image policy, reduced to the `root` and `usr` designators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePolicy {
    root: Allowed,
    usr: Allowed,
    text: String,
}

fn parse_flags(s: &str) -> Result<Allowed> {
    let mut a = Allowed::default();
    for flag in s.split('+').filter(|f| !f.is_empty()) {
        match flag {
            "unprotected" => a.unprotected = true,
            "verity" => a.verity = true,
            "signed" => a.signed = true,
            "absent" => a.absent = true,
            // Extensions are never encrypted; these only widen what is allowed.
            "encrypted" | "encryptedwithintegrity" | "unused" => {}
            "open" => {
                a.unprotected = true;
                a.verity = true;
                a.signed = true;
            }
            "ignore" => return Ok(Allowed::ALL),
            f if f.starts_with("read-only-") || f.starts_with("growfs-") => {}
            f if ["btrfs", "erofs", "ext4", "f2fs", "squashfs", "vfat", "xfs"].contains(&f) => {}
            other => bail!("unknown image policy flag '{other}'"),
        }
    }
    Ok(a)
}

impl ImagePolicy {
    /// systemd's class default: everything allowed for root and usr (other partitions ignored).
    pub fn class_default(class: ImageClass) -> ImagePolicy {
        let text = match class {
            ImageClass::Sysext => "root=verity+signed+encrypted+encryptedwithintegrity+unprotected+absent:usr=verity+signed+encrypted+encryptedwithintegrity+unprotected+absent",
            ImageClass::Confext => "root=verity+signed+encrypted+encryptedwithintegrity+unprotected+absent",
        };
        // confext's default lists root only; usr falls back to "ignore" (anything).
        ImagePolicy {
            root: Allowed::ALL,
            usr: Allowed::ALL,
            text: text.to_string(),
        }
    }

    /// Parse a policy string: `designator=flags:…`, an empty designator sets the default;
    /// `*` allows everything, `-` and `~` allow only absence.
    pub fn parse(text: &str) -> Result<ImagePolicy> {
        let t = text.trim();
        match t {
            "*" => {
                return Ok(ImagePolicy {
                    root: Allowed::ALL,
                    usr: Allowed::ALL,
                    text: t.into(),
                })
            }
            "-" | "~" => {
                return Ok(ImagePolicy {
                    root: Allowed::ABSENT,
                    usr: Allowed::ABSENT,
                    text: t.into(),
                })
            }
            _ => {}
        }
        let mut default = Allowed::ALL;
        let (mut root, mut usr) = (None, None);
        for item in t.split(':').filter(|i| !i.is_empty()) {
            let Some((designator, flags)) = item.split_once('=') else {
                bail!("image policy item '{item}' lacks '=' (expected designator=flags)");
            };
            let allowed = parse_flags(flags)?;
            match designator {
                "" => default = allowed,
                "root" => root = Some(allowed),
                "usr" => usr = Some(allowed),
                "home" | "srv" | "esp" | "xbootldr" | "swap" | "tmp" | "var" | "usr-verity"
                | "root-verity" | "usr-verity-sig" | "root-verity-sig" => {}
                other => bail!("unknown image policy designator '{other}'"),
            }
        }
        Ok(ImagePolicy {
            root: root.unwrap_or(default),
            usr: usr.unwrap_or(default),
            text: t.into(),
        })
    }

    /// The policy for a class: the configured one if any, else the class default.
    pub fn for_class(class: ImageClass, configured: Option<&str>) -> Result<ImagePolicy> {
        match configured {
            Some(t) => ImagePolicy::parse(t),
            None => Ok(ImagePolicy::class_default(class)),
        }
    }

    /// Check an image that provides `designator` with `protection` (the other designator absent).
    /// Err holds a sentence naming the policy and what it would need.
    pub fn check(&self, designator: Designator, protection: Protection) -> Result<(), String> {
        let (mine, other, other_name) = match designator {
            Designator::Root => (self.root, self.usr, "usr"),
            Designator::Usr => (self.usr, self.root, "root"),
        };
        if !mine.allows(protection) {
            return Err(format!(
                "image policy '{}' does not allow a {protection} {designator} partition",
                self.text
            ));
        }
        if !other.allows(Protection::Absent) {
            return Err(format!(
                "image policy '{}' requires a {other_name} partition",
                self.text
            ));
        }
        Ok(())
    }

    /// True when the policy would accept this designator signed but not merely verity-protected:
    /// then a signature that fails to verify is fatal rather than a downgrade.
    pub fn needs_signature(&self, designator: Designator) -> bool {
        let a = match designator {
            Designator::Root => self.root,
            Designator::Usr => self.usr,
        };
        a.signed && !a.verity && !a.unprotected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_defaults_allow_everything() {
        let p = ImagePolicy::class_default(ImageClass::Sysext);
        for prot in [
            Protection::Unprotected,
            Protection::Verity,
            Protection::Signed,
        ] {
            assert!(p.check(Designator::Root, prot).is_ok());
            assert!(p.check(Designator::Usr, prot).is_ok());
        }
    }

    #[test]
    fn signed_policy_from_upstream_test_38_refuses_unsigned() {
        let p = ImagePolicy::parse("root=signed+absent:usr=signed+absent").unwrap();
        let err = p
            .check(Designator::Root, Protection::Unprotected)
            .unwrap_err();
        assert!(err.contains("does not allow a unprotected root"), "{err}");
        assert!(p.check(Designator::Root, Protection::Verity).is_err());
        assert!(p.check(Designator::Root, Protection::Signed).is_ok());
        assert!(p.check(Designator::Usr, Protection::Signed).is_ok());
        assert!(p.needs_signature(Designator::Root));
        assert!(ImagePolicy::parse("*")
            .unwrap()
            .check(Designator::Root, Protection::Unprotected)
            .is_ok());
    }

    #[test]
    fn defaults_specials_and_errors() {
        let p = ImagePolicy::parse("=verity+signed+absent").unwrap();
        assert!(p.check(Designator::Usr, Protection::Verity).is_ok());
        assert!(p.check(Designator::Usr, Protection::Unprotected).is_err());
        let p = ImagePolicy::parse("root=signed").unwrap();
        assert!(
            p.check(Designator::Root, Protection::Signed).is_ok(),
            "usr defaults to anything, absent included"
        );
        let p = ImagePolicy::parse("root=verity+signed+absent:usr=verity+signed").unwrap();
        assert!(p
            .check(Designator::Root, Protection::Verity)
            .unwrap_err()
            .contains("requires a usr partition"));
        assert!(ImagePolicy::parse("~")
            .unwrap()
            .check(Designator::Root, Protection::Signed)
            .is_err());
        assert!(ImagePolicy::parse("root=bogus").is_err());
        assert!(ImagePolicy::parse("frob=signed").is_err());
        assert!(ImagePolicy::parse("root").is_err());
        assert!(ImagePolicy::parse("root=open:home=ignore")
            .unwrap()
            .check(Designator::Root, Protection::Unprotected)
            .is_ok());
    }
}
