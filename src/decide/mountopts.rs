//! Mount option words as systemd's `mount_option_mangle()` treats them: libmount's Linux flag
//! words become MS_* flags, everything else stays overlay data.

use std::ops::BitOr;

/// Per-mount flags as `mount(2)`'s MS_* bits (the kernel ABI, `<linux/mount.h>`), as plain data:
/// the kernel layer turns them into mount attributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MountFlags(u32);

impl MountFlags {
    /// `MS_RDONLY`.
    pub const RDONLY: MountFlags = MountFlags(1);
    /// `MS_NOSUID`.
    pub const NOSUID: MountFlags = MountFlags(2);
    /// `MS_NODEV`.
    pub const NODEV: MountFlags = MountFlags(4);
    /// `MS_NOEXEC`.
    pub const NOEXEC: MountFlags = MountFlags(8);
    /// `MS_SYNCHRONOUS`.
    pub const SYNCHRONOUS: MountFlags = MountFlags(16);
    /// `MS_MANDLOCK`.
    pub const PERMIT_MANDATORY_FILE_LOCKING: MountFlags = MountFlags(64);
    /// `MS_DIRSYNC`.
    pub const DIRSYNC: MountFlags = MountFlags(128);
    /// `MS_NOSYMFOLLOW`.
    pub const NOSYMFOLLOW: MountFlags = MountFlags(256);
    /// `MS_NOATIME`.
    pub const NOATIME: MountFlags = MountFlags(1024);
    /// `MS_NODIRATIME`.
    pub const NODIRATIME: MountFlags = MountFlags(2048);
    /// `MS_BIND`.
    pub const BIND: MountFlags = MountFlags(4096);
    /// `MS_REC`.
    pub const REC: MountFlags = MountFlags(16384);
    /// `MS_SILENT`.
    pub const SILENT: MountFlags = MountFlags(32768);
    /// `MS_RELATIME`.
    pub const RELATIME: MountFlags = MountFlags(1 << 21);
    /// `MS_STRICTATIME`.
    pub const STRICTATIME: MountFlags = MountFlags(1 << 24);
    /// `MS_LAZYTIME`.
    pub const LAZYTIME: MountFlags = MountFlags(1 << 25);

    /// No flag.
    pub const fn empty() -> MountFlags {
        MountFlags(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from raw bits, unknown ones kept.
    pub const fn from_bits_retain(bits: u32) -> MountFlags {
        MountFlags(bits)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: MountFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Set or clear the flags of `other`.
    pub fn set(&mut self, other: MountFlags, on: bool) {
        if on {
            self.0 |= other.0;
        } else {
            self.0 &= !other.0;
        }
    }

    /// Clear the flags of `other`.
    pub fn remove(&mut self, other: MountFlags) {
        self.set(other, false);
    }
}

impl BitOr for MountFlags {
    type Output = MountFlags;
    fn bitor(self, o: MountFlags) -> MountFlags {
        MountFlags(self.0 | o.0)
    }
}

// Linux MS_* bits that have no MountFlags constant (only their words are recognised).
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
pub fn split_options(s: &str) -> Option<Vec<String>> {
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
