//! The one superblock prober: image format by magic (never by file name), and the label,
//! UUID and declared size the same head bytes carry. Images (`image/`) use the type and the
//! declared size; `/var` lookups (`initrd::var::device`) use the type, label and UUID.
//!
//! Twenty lines of offsets are simpler and more predictable than a blkid binding; the
//! table is in `reference/peers-crates-kernel.md` §B5.

use anyhow::{bail, Result};

use super::bytes::{format_uuid, le16, le32, le64};
use super::gpt;

/// Bytes needed to see every magic we know (btrfs ends at 0x10048).
pub const PROBE_LEN: usize = 0x10048;
/// Bytes needed to see every field [`probe`] reads (the btrfs label ends at 0x1022b).
pub const HEAD_LEN: usize = 0x1022b;

const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";
const EROFS_SUPER_OFFSET: usize = 1024;
const EROFS_MAGIC: u32 = 0xE0F5_E1E2;
const EXT_SUPER_OFFSET: usize = 1024;
const EXT_MAGIC_OFFSET: usize = EXT_SUPER_OFFSET + 0x38;
const EXT_MAGIC: u16 = 0xEF53;
const BTRFS_SUPER_OFFSET: usize = 0x10000;
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
        /// Logical sector size: 512, 1024, 2048 or 4096.
        sector_size: u32,
    },
    /// No known signature (or too few bytes to tell).
    Unknown,
}

/// Everything the head of a device or image says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// File system, partition table or nothing known.
    pub kind: Probed,
    /// Volume label (ext4, btrfs, xfs, erofs), `None` when unset.
    pub label: Option<String>,
    /// File system UUID in printed byte order (ext4, btrfs, xfs, erofs), `None` when all zero.
    pub uuid: Option<[u8; 16]>,
    /// Bytes the file system says it occupies ([`declared_size`]), `None` when unknown.
    pub declared_size: Option<u64>,
}

impl Superblock {
    /// The UUID as blkid prints it (lowercase, dashed).
    pub fn uuid_text(&self) -> Option<String> {
        self.uuid.as_ref().map(format_uuid)
    }
}

/// Bytes `[at, at + N)` of `head`, or `None` when `head` is too short.
fn field<const N: usize>(head: &[u8], at: usize) -> Option<[u8; N]> {
    head.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// NUL-padded on-disk label to text (invalid UTF-8 replaced); empty means unset.
fn label_at(head: &[u8], at: usize, len: usize) -> Option<String> {
    let raw = head.get(at..at.checked_add(len)?)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    (end > 0).then(|| String::from_utf8_lossy(&raw[..end]).into_owned())
}

fn uuid_at(head: &[u8], at: usize) -> Option<[u8; 16]> {
    field::<16>(head, at).filter(|u| *u != [0; 16])
}

/// Where a file system keeps its label (offset, length) and UUID (offset).
fn label_and_uuid(head: &[u8], fstype: FsType) -> (Option<String>, Option<[u8; 16]>) {
    let (label, uuid) = match fstype {
        // struct ext4_super_block at 1024: s_uuid +0x68, s_volume_name[16] +0x78.
        FsType::Ext4 => ((EXT_SUPER_OFFSET + 0x78, 16), EXT_SUPER_OFFSET + 0x68),
        // struct btrfs_super_block at 64 KiB: fsid +0x20, label[256] +0x12b.
        FsType::Btrfs => ((BTRFS_SUPER_OFFSET + 0x12b, 256), BTRFS_SUPER_OFFSET + 0x20),
        // struct xfs_dsb at 0: sb_uuid +32, sb_fname[12] +108.
        FsType::Xfs => ((108, 12), 32),
        // struct erofs_super_block at 1024: uuid[16] +48, volume_name[16] +64.
        FsType::Erofs => ((EROFS_SUPER_OFFSET + 64, 16), EROFS_SUPER_OFFSET + 48),
        // squashfs has neither.
        FsType::Squashfs => return (None, None),
    };
    (label_at(head, label.0, label.1), uuid_at(head, uuid))
}

/// Probe the head of a device or image (ideally [`HEAD_LEN`] bytes; fewer are fine, fields
/// out of reach are `None`): its type by magic, label, UUID and declared size.
pub fn probe(head: &[u8]) -> Superblock {
    let kind = probe_bytes(head);
    let (label, uuid, declared_size) = match kind {
        Probed::Filesystem(fs) => {
            let (label, uuid) = label_and_uuid(head, fs);
            (label, uuid, declared_size(head, fs))
        }
        Probed::Gpt { .. } | Probed::Unknown => (None, None, None),
    };
    Superblock {
        kind,
        label,
        uuid,
        declared_size,
    }
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
    if le32(head, EROFS_SUPER_OFFSET) == Some(EROFS_MAGIC) {
        return Probed::Filesystem(FsType::Erofs);
    }
    if le16(head, EXT_MAGIC_OFFSET) == Some(EXT_MAGIC) {
        return Probed::Filesystem(FsType::Ext4);
    }
    if field::<8>(head, BTRFS_SUPER_OFFSET + 0x40).as_ref() == Some(BTRFS_MAGIC) {
        return Probed::Filesystem(FsType::Btrfs);
    }
    // struct xfs_dsb: sb_magicnum (be32 "XFSB") at 0.
    if field::<4>(head, 0).as_ref() == Some(b"XFSB") {
        return Probed::Filesystem(FsType::Xfs);
    }
    // The GPT header lives in LBA 1, whose byte offset depends on the sector size. Magic
    // only: a damaged header is still reported as GPT, so the GPT reader says what is wrong.
    for sector_size in gpt::SECTOR_SIZES {
        if field::<8>(head, sector_size as usize).as_ref() == Some(GPT_MAGIC) {
            return Probed::Gpt { sector_size };
        }
    }
    Probed::Unknown
}

/// Bytes that decide [`probe_bytes`] for the common image formats (squashfs, erofs, ext4: their
/// magics lie in the first 1,082 bytes and are checked first).
pub const PROBE_PREFIX_LEN: usize = 4096;

/// What [`probe_bytes`] says of any head that starts with `prefix`, when `prefix` alone decides
/// it (a squashfs, erofs or ext4 magic); `None` when more bytes are needed (btrfs's magic is at
/// 64 KiB and wins over xfs and GPT).
pub fn probe_prefix(prefix: &[u8]) -> Option<Probed> {
    match probe_bytes(prefix) {
        p @ Probed::Filesystem(FsType::Squashfs | FsType::Erofs | FsType::Ext4) => Some(p),
        _ => None,
    }
}

/// The size in bytes the superblock in `head` says its file system occupies. Checked against
/// the image size because erofs does not do it: it mounts a truncated image and only later
/// reads fail (`EUCLEAN`), so the image would be merged broken. squashfs and ext4 check it
/// themselves, but fail with a bare EIO/EINVAL; this gives the reason. `None` when unknown
/// or the field is out of reach.
pub fn declared_size(head: &[u8], fstype: FsType) -> Option<u64> {
    match fstype {
        // struct squashfs_super_block: bytes_used (le64) at 40.
        FsType::Squashfs => le64(head, 40),
        // struct erofs_super_block: blkszbits (u8) at 12, blocks (le32) at 36.
        FsType::Erofs => {
            // erofs block sizes are 512 B to a page; anything above 2^32 is a corrupt field.
            let bits = *head.get(EROFS_SUPER_OFFSET + 12).filter(|b| **b <= 32)?;
            let blocks = le32(head, EROFS_SUPER_OFFSET + 36)?;
            Some(u64::from(blocks) << bits)
        }
        // ext4 refuses a short device itself, but only says EINVAL ("bad geometry" goes to
        // the kernel log): s_blocks_count_lo (le32) at 4, s_log_block_size (le32) at 24, and
        // with the 64bit incompat feature (0x80 in le32 at 0x60) s_blocks_count_hi at 0x150.
        FsType::Ext4 => {
            let sb = |at: usize| le32(head, EXT_SUPER_OFFSET + at);
            let log = sb(24).filter(|l| *l <= 16)?;
            let hi = if sb(0x60)? & 0x80 != 0 { sb(0x150)? } else { 0 };
            let blocks = (u64::from(hi) << 32) | u64::from(sb(4)?);
            blocks.checked_mul(1024u64 << log)
        }
        // btrfs and xfs refuse a short device with a clear kernel message of their own.
        FsType::Btrfs | FsType::Xfs => None,
    }
}

/// squashfs's "no table" block address (`SQUASHFS_INVALID_BLK`).
const SQUASHFS_INVALID_BLK: u64 = u64::MAX;

/// Whether the superblock in `head` says its file system holds no extended attributes at all:
/// a squashfs without an xattr id table (`xattr_id_table_start`, le64 at 56, is
/// `SQUASHFS_INVALID_BLK`). The kernel then reads no xattr of any inode (`squashfs_read_inode`
/// looks one up only with a table), so no overlayfs marker (opaque directory, xattr whiteout)
/// can be set in it. `false` for every other file system and whenever unsure.
pub fn holds_no_xattrs(head: &[u8], fstype: FsType) -> bool {
    fstype == FsType::Squashfs
        && field::<4>(head, 0).as_ref() == Some(SQUASHFS_MAGIC)
        && le64(head, 56) == Some(SQUASHFS_INVALID_BLK)
}

/// Refuse a file system image shorter than its superblock says (see [`declared_size`]);
/// `name` is the image (or partition) as the error should name it, `available` the bytes it has.
pub fn check_declared_size(head: &[u8], fstype: FsType, available: u64, name: &str) -> Result<()> {
    match declared_size(head, fstype) {
        Some(need) if need > available => bail!(
            "{name} is truncated: its {fstype} superblock says the file system takes {need} bytes, but only {available} are there"
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the prefix decides is what the whole head says; what it cannot decide needs the
    /// whole head (btrfs at 64 KiB wins over a GPT or xfs magic near the start).
    #[test]
    fn a_prefix_decides_only_what_the_whole_head_would() {
        let len = PROBE_LEN;
        let btrfs = (BTRFS_SUPER_OFFSET + 0x40, BTRFS_MAGIC.as_slice());
        let ext4 = (EXT_MAGIC_OFFSET, EXT_MAGIC.to_le_bytes());
        let erofs = (EROFS_SUPER_OFFSET, EROFS_MAGIC.to_le_bytes());
        let heads = [
            at(len, &[(0, SQUASHFS_MAGIC), btrfs]),
            at(len, &[(erofs.0, &erofs.1), btrfs]),
            at(len, &[(ext4.0, &ext4.1), btrfs]),
            at(len, &[btrfs, (512, GPT_MAGIC)]),
            at(len, &[(0, b"XFSB"), btrfs]),
            at(len, &[(4096, GPT_MAGIC)]),
            at(len, &[(512, GPT_MAGIC)]),
            at(len, &[]),
        ];
        let decided: Vec<Option<Probed>> = heads
            .iter()
            .map(|h| probe_prefix(&h[..PROBE_PREFIX_LEN]))
            .collect();
        for (h, d) in heads.iter().zip(&decided) {
            if let Some(p) = d {
                assert_eq!(*p, probe_bytes(h));
            }
        }
        assert_eq!(
            decided,
            [
                Some(Probed::Filesystem(FsType::Squashfs)),
                Some(Probed::Filesystem(FsType::Erofs)),
                Some(Probed::Filesystem(FsType::Ext4)),
                None,
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(probe_bytes(&heads[3]), Probed::Filesystem(FsType::Btrfs));

        // What is read of the formats the prefix decides lies in it: declared size (ext4 with
        // the 64bit feature reads furthest, 0x150 past its superblock) and the xattr table.
        let ext4_64 = at(
            len,
            &[
                (ext4.0, &ext4.1),
                (EXT_SUPER_OFFSET + 4, &5u32.to_le_bytes()),
                (EXT_SUPER_OFFSET + 0x60, &0x80u32.to_le_bytes()),
                (EXT_SUPER_OFFSET + 0x150, &1u32.to_le_bytes()),
            ],
        );
        let squashfs = at(
            len,
            &[
                (0, SQUASHFS_MAGIC),
                (40, &8192u64.to_le_bytes()),
                (56, &u64::MAX.to_le_bytes()),
            ],
        );
        let erofs_sized = at(
            len,
            &[
                (erofs.0, &erofs.1),
                (EROFS_SUPER_OFFSET + 12, &[12]),
                (EROFS_SUPER_OFFSET + 36, &3u32.to_le_bytes()),
            ],
        );
        for (h, fs) in [
            (&ext4_64, FsType::Ext4),
            (&squashfs, FsType::Squashfs),
            (&erofs_sized, FsType::Erofs),
        ] {
            let prefix = &h[..PROBE_PREFIX_LEN];
            assert!(declared_size(h, fs).is_some(), "{fs}");
            assert_eq!(declared_size(prefix, fs), declared_size(h, fs), "{fs}");
            assert_eq!(holds_no_xattrs(prefix, fs), holds_no_xattrs(h, fs), "{fs}");
        }
        assert!(holds_no_xattrs(
            &squashfs[..PROBE_PREFIX_LEN],
            FsType::Squashfs
        ));
    }

    #[test]
    fn only_a_squashfs_without_an_xattr_table_holds_no_xattrs() {
        let none = at(96, &[(0, SQUASHFS_MAGIC), (56, &u64::MAX.to_le_bytes())]);
        assert!(holds_no_xattrs(&none, FsType::Squashfs));
        let table = at(96, &[(0, SQUASHFS_MAGIC), (56, &4096u64.to_le_bytes())]);
        assert!(!holds_no_xattrs(&table, FsType::Squashfs));
        // Unsure means "may hold some": a short head, another file system, no magic.
        assert!(!holds_no_xattrs(&none[..60], FsType::Squashfs));
        assert!(!holds_no_xattrs(&none, FsType::Erofs));
        let no_magic = at(96, &[(56, &u64::MAX.to_le_bytes())]);
        assert!(!holds_no_xattrs(&no_magic, FsType::Squashfs));
    }

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

    fn at(len: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
        let mut head = vec![0u8; len];
        for (off, bytes) in fields {
            head[*off..off + bytes.len()].copy_from_slice(bytes);
        }
        head
    }

    /// Label and UUID of each file system that has them, from the same head as the type.
    #[test]
    fn labels_and_uuids_from_the_same_head() {
        let u: [u8; 16] = core::array::from_fn(|i| 0xa0 + i as u8);
        let text = "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf";
        let ext = at(
            HEAD_LEN,
            &[(0x438, &[0x53, 0xef]), (0x468, &u), (0x478, b"var-ext4")],
        );
        let btrfs = at(
            HEAD_LEN,
            &[
                (0x10040, BTRFS_MAGIC),
                (0x10020, &u),
                (0x1012b, b"var-btrfs"),
            ],
        );
        let xfs = at(4096, &[(0, b"XFSB"), (32, &u), (108, b"var-xfs")]);
        let erofs = at(
            4096,
            &[
                (1024, &EROFS_MAGIC.to_le_bytes()),
                (1072, &u),
                (1088, b"ro"),
            ],
        );
        for (head, fs, label) in [
            (&ext, FsType::Ext4, "var-ext4"),
            (&btrfs, FsType::Btrfs, "var-btrfs"),
            (&xfs, FsType::Xfs, "var-xfs"),
            (&erofs, FsType::Erofs, "ro"),
        ] {
            let sb = probe(head);
            assert_eq!(sb.kind, Probed::Filesystem(fs));
            assert_eq!(sb.label.as_deref(), Some(label), "{fs}");
            assert_eq!(sb.uuid_text().as_deref(), Some(text), "{fs}");
        }
        // A label field cut off by a short head is unknown, not a panic.
        assert_eq!(probe(&btrfs[..0x10100]).label, None);
        let sq = probe(&at(
            96,
            &[(0, SQUASHFS_MAGIC), (40, &4096u64.to_le_bytes())],
        ));
        assert_eq!(
            sq,
            Superblock {
                kind: Probed::Filesystem(FsType::Squashfs),
                label: None,
                uuid: None,
                declared_size: Some(4096),
            }
        );
        let gpt = probe(&at(8192, &[(2048, GPT_MAGIC)]));
        assert_eq!(gpt.kind, Probed::Gpt { sector_size: 2048 });
        assert_eq!(probe(&[]).kind, Probed::Unknown);
    }

    #[test]
    fn truncated_images_are_refused_with_the_sizes() {
        let sq = at(96, &[(0, SQUASHFS_MAGIC), (40, &20381u64.to_le_bytes())]);
        check_declared_size(&sq, FsType::Squashfs, 20381, "a.raw").unwrap();
        let e = check_declared_size(&sq, FsType::Squashfs, 8192, "a.raw").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.raw is truncated: its squashfs superblock says the file system takes 20381 bytes, but only 8192 are there"
        );
        // An unknown declared size is not a refusal.
        check_declared_size(&sq[..40], FsType::Squashfs, 0, "a.raw").unwrap();
    }

    #[test]
    fn gpt_at_4096_is_found_when_512_is_empty() {
        let mut head = vec![0u8; 4200];
        head[4096..4104].copy_from_slice(GPT_MAGIC);
        assert_eq!(probe_bytes(&head), Probed::Gpt { sector_size: 4096 });
    }
}
