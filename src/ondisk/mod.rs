//! Byte formats, parsed from bytes handed in (a `read_at`-style seam where the format is large):
//! nothing here opens a file by name. Every parser is fuzzed (fuzz/).

pub mod bytes;
pub mod cescape;
pub mod envfile;
pub mod fstab;
pub mod gpt;
pub mod mountinfo;
pub mod signature;
pub mod superblock;
pub mod unitfile;
pub mod verity;
pub mod version;
