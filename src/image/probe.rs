//! Image format detection by superblock magic (never by file name).
//!
//! Twenty lines of offsets are simpler and more predictable than a blkid binding; the
//! table is in `reference/peers-crates-kernel.md` §B5.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::{FileType, Mode, OFlags};

/// Bytes needed to see every magic we know (btrfs ends at 0x10048).
pub const PROBE_LEN: usize = 0x10048;

const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";
const EROFS_SUPER_OFFSET: usize = 1024;
const EROFS_MAGIC: u32 = 0xE0F5_E1E2;
const EXT_MAGIC_OFFSET: usize = 1024 + 0x38;
const EXT_MAGIC: u16 = 0xEF53;
const BTRFS_MAGIC_OFFSET: usize = 0x10040;
const BTRFS_MAGIC: &[u8; 8] = b"_BHRfS_M";
const GPT_MAGIC: &[u8; 8] = b"EFI PART";

/// A filesystem type this crate can mount from an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    /// squashfs (the classic sysext format).
    Squashfs,
    /// erofs (mountable straight from a file on kernels >= 6.12).
    Erofs,
    /// ext2/ext3/ext4, all mounted with the ext4 driver.
    Ext4,
    /// btrfs.
    Btrfs,
}

impl FsType {
    /// The name the kernel knows this filesystem by (for `fsopen`).
    pub fn kernel_name(self) -> &'static str {
        match self {
            FsType::Squashfs => "squashfs",
            FsType::Erofs => "erofs",
            FsType::Ext4 => "ext4",
            FsType::Btrfs => "btrfs",
        }
    }
}

impl std::fmt::Display for FsType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kernel_name())
    }
}

/// What the first bytes of an image say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probed {
    /// A bare filesystem superblock.
    Filesystem(FsType),
    /// A GPT partition table (a DDI), with the sector size its header was found at.
    Gpt {
        /// Logical sector size, 512 or 4096.
        sector_size: u32,
    },
    /// No known signature (or too few bytes to tell).
    Unknown,
}

/// Bytes `[at, at + N)` of `head`, or `None` when `head` is too short.
fn field<const N: usize>(head: &[u8], at: usize) -> Option<[u8; N]> {
    head.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Decide by superblock magic only (never by file name); short input yields `Unknown`.
///
/// Filesystem magics are checked before GPT: a device that carries both (a disk
/// reformatted without wiping its old partition table) is mounted by the kernel as the
/// filesystem, so that is what we report, as blkid-based dissection does.
pub fn probe_bytes(head: &[u8]) -> Probed {
    if field::<4>(head, 0).as_ref() == Some(SQUASHFS_MAGIC) {
        return Probed::Filesystem(FsType::Squashfs);
    }
    if field::<4>(head, EROFS_SUPER_OFFSET).map(u32::from_le_bytes) == Some(EROFS_MAGIC) {
        return Probed::Filesystem(FsType::Erofs);
    }
    if field::<2>(head, EXT_MAGIC_OFFSET).map(u16::from_le_bytes) == Some(EXT_MAGIC) {
        return Probed::Filesystem(FsType::Ext4);
    }
    if field::<8>(head, BTRFS_MAGIC_OFFSET).as_ref() == Some(BTRFS_MAGIC) {
        return Probed::Filesystem(FsType::Btrfs);
    }
    // The GPT header lives in LBA 1, whose byte offset depends on the sector size.
    for sector_size in [512u32, 4096] {
        if field::<8>(head, sector_size as usize).as_ref() == Some(GPT_MAGIC) {
            return Probed::Gpt { sector_size };
        }
    }
    Probed::Unknown
}

/// Read up to [`PROBE_LEN`] bytes from the start of `path` (regular file or block device).
pub fn read_head(path: &Path) -> Result<Vec<u8>> {
    // O_NONBLOCK so that a FIFO planted in an extension directory cannot hang us in
    // open(); it is rejected by the type check right after.
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .with_context(|| format!("opening image {}", path.display()))?;
    let stat = rustix::fs::fstat(&fd).with_context(|| format!("stat of {}", path.display()))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile | FileType::BlockDevice => {}
        other => anyhow::bail!(
            "{} is not a regular file or block device (it is {:?})",
            path.display(),
            other
        ),
    }
    let mut head = Vec::with_capacity(PROBE_LEN);
    File::from(fd)
        .take(PROBE_LEN as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("reading the first bytes of {}", path.display()))?;
    Ok(head)
}

/// Read the first 0x10048 bytes (fewer for short files) of `path` and probe them.
pub fn probe_path(path: &Path) -> Result<Probed> {
    Ok(probe_bytes(&read_head(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_never_panics_on_short_input() {
        assert_eq!(field::<4>(&[], 0), None);
        assert_eq!(field::<4>(&[1, 2, 3], 0), None);
        assert_eq!(field::<2>(&[1, 2, 3], 1), Some([2, 3]));
        assert_eq!(field::<8>(&[0; 16], usize::MAX - 2), None);
    }

    #[test]
    fn gpt_at_4096_is_found_when_512_is_empty() {
        let mut head = vec![0u8; 4200];
        head[4096..4104].copy_from_slice(GPT_MAGIC);
        assert_eq!(probe_bytes(&head), Probed::Gpt { sector_size: 4096 });
    }
}
