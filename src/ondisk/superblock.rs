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
const EXT_SUPER_OFFSET: usize = 1024;
const EXT_MAGIC_OFFSET: usize = EXT_SUPER_OFFSET + 0x38;
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
    /// xfs (systemd mounts xfs extension images too).
    Xfs,
}

impl FsType {
    /// The name the kernel knows this filesystem by (for `fsopen`).
    pub fn kernel_name(self) -> &'static str {
        match self {
            FsType::Squashfs => "squashfs",
            FsType::Erofs => "erofs",
            FsType::Ext4 => "ext4",
            FsType::Btrfs => "btrfs",
            FsType::Xfs => "xfs",
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
    // struct xfs_dsb: sb_magicnum (be32 "XFSB") at 0.
    if field::<4>(head, 0).as_ref() == Some(b"XFSB") {
        return Probed::Filesystem(FsType::Xfs);
    }
    // The GPT header lives in LBA 1, whose byte offset depends on the sector size.
    for sector_size in [512u32, 4096] {
        if field::<8>(head, sector_size as usize).as_ref() == Some(GPT_MAGIC) {
            return Probed::Gpt { sector_size };
        }
    }
    Probed::Unknown
}

/// The size in bytes the superblock in `head` says its file system occupies. Checked against
/// the image size because erofs does not do it: it mounts a truncated image and only later
/// reads fail (`EUCLEAN`), so the image would be merged broken. squashfs and ext4 check it
/// themselves, but fail with a bare EIO/EINVAL; this gives the reason. `None` when unknown
/// or the field is out of reach.
pub fn declared_size(head: &[u8], fstype: FsType) -> Option<u64> {
    match fstype {
        // struct squashfs_super_block: bytes_used (le64) at 40.
        FsType::Squashfs => field::<8>(head, 40).map(u64::from_le_bytes),
        // struct erofs_super_block: blkszbits (u8) at 12, blocks (le32) at 36.
        FsType::Erofs => {
            // erofs block sizes are 512 B to a page; anything above 2^32 is a corrupt field.
            let bits = *head.get(EROFS_SUPER_OFFSET + 12).filter(|b| **b <= 32)?;
            let blocks = field::<4>(head, EROFS_SUPER_OFFSET + 36).map(u32::from_le_bytes)?;
            Some(u64::from(blocks) << bits)
        }
        // ext4 refuses a short device itself, but only says EINVAL ("bad geometry" goes to
        // the kernel log): s_blocks_count_lo (le32) at 4, s_log_block_size (le32) at 24, and
        // with the 64bit incompat feature (0x80 in le32 at 0x60) s_blocks_count_hi at 0x150.
        FsType::Ext4 => {
            let le32 = |at: usize| field::<4>(head, EXT_SUPER_OFFSET + at).map(u32::from_le_bytes);
            let log = le32(24).filter(|l| *l <= 16)?;
            let hi = if le32(0x60)? & 0x80 != 0 {
                le32(0x150)?
            } else {
                0
            };
            let blocks = (u64::from(hi) << 32) | u64::from(le32(4)?);
            blocks.checked_mul(1024u64 << log)
        }
        // btrfs and xfs refuse a short device with a clear kernel message of their own.
        FsType::Btrfs | FsType::Xfs => None,
    }
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
    fn declared_sizes_of_squashfs_and_erofs() {
        let mut sq = vec![0u8; 96];
        sq[..4].copy_from_slice(SQUASHFS_MAGIC);
        sq[40..48].copy_from_slice(&20381u64.to_le_bytes());
        assert_eq!(declared_size(&sq, FsType::Squashfs), Some(20381));
        assert_eq!(declared_size(&sq[..44], FsType::Squashfs), None);
        let mut er = vec![0u8; 2048];
        er[EROFS_SUPER_OFFSET + 12] = 12;
        er[EROFS_SUPER_OFFSET + 36..EROFS_SUPER_OFFSET + 40].copy_from_slice(&6u32.to_le_bytes());
        assert_eq!(declared_size(&er, FsType::Erofs), Some(6 * 4096));
        er[EROFS_SUPER_OFFSET + 12] = 200;
        assert_eq!(declared_size(&er, FsType::Erofs), None, "no overflow panic");
        let mut ext = vec![0u8; 2048];
        ext[EXT_SUPER_OFFSET + 4..EXT_SUPER_OFFSET + 8].copy_from_slice(&1024u32.to_le_bytes());
        ext[EXT_SUPER_OFFSET + 24..EXT_SUPER_OFFSET + 28].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(declared_size(&ext, FsType::Ext4), Some(4 << 20));
        assert_eq!(declared_size(&ext[..1100], FsType::Ext4), None);
        assert_eq!(declared_size(&er, FsType::Btrfs), None);
    }

    /// xfs by its big-endian "XFSB" at byte 0; a GPT behind it does not matter.
    #[test]
    fn xfs_is_recognised_by_its_superblock_magic() {
        let mut head = vec![0u8; 4200];
        head[..4].copy_from_slice(b"XFSB");
        head[512..520].copy_from_slice(GPT_MAGIC);
        assert_eq!(probe_bytes(&head), Probed::Filesystem(FsType::Xfs));
        assert_eq!(FsType::Xfs.kernel_name(), "xfs");
        assert_eq!(declared_size(&head, FsType::Xfs), None);
        assert_eq!(probe_bytes(b"XFS"), Probed::Unknown);
    }

    #[test]
    fn gpt_at_4096_is_found_when_512_is_empty() {
        let mut head = vec![0u8; 4200];
        head[4096..4104].copy_from_slice(GPT_MAGIC);
        assert_eq!(probe_bytes(&head), Probed::Gpt { sector_size: 4096 });
    }
}
