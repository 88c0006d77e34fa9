//! dm-verity metadata read in userspace: cryptsetup's on-disk superblock
//! (`lib/verity/verity.c`), the hash-tree geometry and root-hash checks of
//! `lib/verity/verity_hash.c`, and root-hash text parsing as systemd does it.
//!
//! Why: activating dm-verity with a *wrong* root hash still succeeds and only reads fail
//! later (DESIGN.md, "Known traps"); hashing the top block of the tree first catches that
//! with one block read, before anything is activated.

use std::fmt;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

pub use super::bytes::ReadAt;
use super::bytes::{le16, le32, le64};

/// Size of the on-disk superblock (`struct verity_sb`).
pub const SUPERBLOCK_SIZE: usize = 512;
const MAGIC: &[u8; 8] = b"verity\0\0";
/// `sizeof(salt)` in the superblock.
const MAX_SALT: usize = 256;
/// `VERITY_MAX_LEVELS` in cryptsetup.
const MAX_LEVELS: usize = 63;

/// The fields of cryptsetup's verity superblock (all little-endian on disk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VeritySuperblock {
    /// Superblock version (only 1 exists).
    pub version: u32,
    /// 1 = normal (salt hashed first), 0 = Chrome OS (salt hashed last, digests packed).
    pub hash_type: u32,
    /// Kernel crypto name of the hash, e.g. `sha256`.
    pub algorithm: String,
    /// Data block size in bytes.
    pub data_block_size: u32,
    /// Hash block size in bytes.
    pub hash_block_size: u32,
    /// Number of data blocks covered by the tree.
    pub data_blocks: u64,
    /// Salt bytes (`salt_size` of them).
    pub salt: Vec<u8>,
    /// UUID of the hash device, in printed byte order.
    pub uuid: [u8; 16],
}

/// `VERITY_BLOCK_SIZE_OK()`: a power of two from 512 bytes to 512 KiB.
fn block_size_ok(x: u32) -> bool {
    x.is_power_of_two() && (512..=512 * 1024).contains(&x)
}

/// Parse the 512-byte superblock at the start of a verity hash area.
///
/// Offsets follow `struct verity_sb`: signature 0, version 8, hash_type 12, uuid 16,
/// algorithm 32 (32 bytes), data_block_size 64, hash_block_size 68, data_blocks 72,
/// salt_size 80, salt 88 (256 bytes); the checks are those of `VERITY_read_sb()`.
pub fn parse_superblock(bytes: &[u8]) -> Result<VeritySuperblock> {
    if bytes.len() < SUPERBLOCK_SIZE {
        bail!(
            "verity superblock needs {SUPERBLOCK_SIZE} bytes, got {}",
            bytes.len()
        );
    }
    if &bytes[..8] != MAGIC {
        bail!(
            "no verity superblock (expected signature \"verity\\0\\0\", found {:02x?})",
            &bytes[..8]
        );
    }
    // The length check above keeps every fixed offset below in range.
    let u32_at = |at| le32(bytes, at).unwrap_or(0);
    let version = u32_at(8);
    if version != 1 {
        bail!("unsupported verity superblock version {version} (only 1 exists)");
    }
    let hash_type = u32_at(12);
    if hash_type > 1 {
        bail!("unsupported verity hash type {hash_type} (0 = Chrome OS, 1 = normal)");
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&bytes[16..32]);
    let alg_raw = &bytes[32..64];
    let alg_len = alg_raw
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(alg_raw.len());
    let algorithm = std::str::from_utf8(&alg_raw[..alg_len])
        .ok()
        .filter(|a| !a.is_empty() && a.bytes().all(|c| c.is_ascii_graphic()))
        .with_context(|| {
            format!(
                "verity superblock has an invalid hash algorithm name {:?}",
                &alg_raw[..alg_len]
            )
        })?
        .to_string();
    let data_block_size = u32_at(64);
    let hash_block_size = u32_at(68);
    if !block_size_ok(data_block_size) || !block_size_ok(hash_block_size) {
        bail!("unsupported verity block sizes (data {data_block_size}, hash {hash_block_size}): must be powers of two from 512 to 524288");
    }
    let data_blocks = le64(bytes, 72).unwrap_or(0);
    let salt_size = usize::from(le16(bytes, 80).unwrap_or(0));
    if salt_size > MAX_SALT {
        bail!("verity superblock corrupted: salt size {salt_size} exceeds {MAX_SALT}");
    }
    Ok(VeritySuperblock {
        version,
        hash_type,
        algorithm,
        data_block_size,
        hash_block_size,
        data_blocks,
        salt: bytes[88..88 + salt_size].to_vec(),
        uuid,
    })
}

/// Hash functions the userspace checks support (the kernel supports more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashAlg {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn from_name(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "sha224" => HashAlg::Sha224,
            "sha256" => HashAlg::Sha256,
            "sha384" => HashAlg::Sha384,
            "sha512" => HashAlg::Sha512,
            _ => bail!("verity hash algorithm '{name}' is not supported by the userspace check (sha224, sha256, sha384, sha512 are)"),
        })
    }

    fn size(self) -> usize {
        match self {
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            HashAlg::Sha224 => run::<Sha224>(parts),
            HashAlg::Sha256 => run::<Sha256>(parts),
            HashAlg::Sha384 => run::<Sha384>(parts),
            HashAlg::Sha512 => run::<Sha512>(parts),
        }
    }
}

/// Where each level of the hash tree lives, as cryptsetup's `hash_levels()` lays it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeGeometry {
    /// Digest length of the hash algorithm.
    pub digest_size: usize,
    /// Bytes each digest occupies in a hash block (padded to a power of two for version 1).
    pub digest_stride: usize,
    /// Digests per hash block (`1 << hash_per_block_bits`).
    pub hashes_per_block: u64,
    /// First hash block (in hash-block units from the start of the hash device) of each level;
    /// index 0 is the level right above the data, the last one the single top block.
    pub level_start: Vec<u64>,
    /// Number of hash blocks in each level (same indexing).
    pub level_blocks: Vec<u64>,
    /// Bytes of the hash device the superblock and the tree occupy, from its start.
    pub hash_end: u64,
}

impl TreeGeometry {
    /// Number of hash levels; 0 when there is a single data block (its hash is the root hash).
    pub fn levels(&self) -> usize {
        self.level_start.len()
    }
}

/// Compute the tree layout for a superblock found at byte `hash_area_offset` of the hash device.
pub fn geometry(sb: &VeritySuperblock, hash_area_offset: u64) -> Result<TreeGeometry> {
    let alg = HashAlg::from_name(&sb.algorithm)?;
    let digest_size = alg.size();
    let hbs = u64::from(sb.hash_block_size);
    if sb.data_blocks == 0 {
        bail!("verity superblock covers 0 data blocks");
    }
    // get_bits_down(hash_block_size / digest_size)
    let bits = (hbs / digest_size as u64).ilog2();
    if bits == 0 {
        bail!(
            "verity hash block size {hbs} is too small for {} digests",
            sb.algorithm
        );
    }
    let mut levels = 0u32;
    while bits * levels < 64 && (sb.data_blocks - 1) >> (bits * levels) != 0 {
        levels += 1;
    }
    if levels as usize > MAX_LEVELS {
        bail!("verity tree would need {levels} levels (at most {MAX_LEVELS})");
    }
    // VERITY_hash_offset_block(): the tree starts at the first hash block after the superblock.
    let mut position = hash_area_offset
        .checked_add(SUPERBLOCK_SIZE as u64 + hbs - 1)
        .context("verity hash offset overflows")?
        / hbs;
    let mut level_start = vec![0u64; levels as usize];
    let mut level_blocks = vec![0u64; levels as usize];
    for i in (0..levels as usize).rev() {
        let shift = (i as u32 + 1) * bits;
        if shift > 63 {
            bail!("verity tree geometry overflows (level {i})");
        }
        level_start[i] = position;
        // ceil(data_blocks / 2^shift), written so it cannot overflow
        let n = ((sb.data_blocks - 1) >> shift) + 1;
        level_blocks[i] = n;
        position = position
            .checked_add(n)
            .context("verity hash area overflows")?;
    }
    // Without hash levels only the superblock is there (a one-block tree is its root hash).
    let hash_end = if levels == 0 {
        hash_area_offset + SUPERBLOCK_SIZE as u64
    } else {
        position
            .checked_mul(hbs)
            .context("verity hash area overflows")?
    };
    let digest_stride = if sb.hash_type == 1 {
        digest_size.next_power_of_two()
    } else {
        digest_size
    };
    Ok(TreeGeometry {
        digest_size,
        digest_stride,
        hashes_per_block: 1 << bits,
        level_start,
        level_blocks,
        hash_end,
    })
}

/// Refuse a tree whose declared sizes do not fit the devices: `data_blocks × data_block_size`
/// must fit in `data_size`, the superblock and every hash level in `hash_size`. The kernel
/// refuses such a table too, but only after a loop device and dm target were set up; checked
/// here, nothing beyond the superblock is read for a lying one.
pub fn check_extents(
    sb: &VeritySuperblock,
    g: &TreeGeometry,
    data_size: u64,
    hash_size: u64,
) -> Result<()> {
    let (n, dbs) = (sb.data_blocks, sb.data_block_size);
    match n.checked_mul(u64::from(dbs)) {
        Some(need) if need <= data_size => {}
        Some(need) => bail!("verity superblock declares {n} data blocks of {dbs} bytes ({need} bytes), but the data is only {data_size} bytes: refusing"),
        None => bail!("verity superblock declares {n} data blocks of {dbs} bytes, more than 2^64 bytes: refusing"),
    }
    if g.hash_end > hash_size {
        bail!(
            "verity hash tree needs {} bytes for {} levels, but the hash device is only {hash_size} bytes: refusing",
            g.hash_end,
            g.levels()
        );
    }
    Ok(())
}

/// Read the superblock at `hash_area_offset` of a hash device of `hash_size` bytes, compute
/// its tree and [`check_extents`] against a data device of `data_size` bytes. A hash device
/// too short for the superblock is refused before anything is read.
pub fn read_superblock(
    read_hash_at: ReadAt<'_>,
    hash_area_offset: u64,
    hash_size: u64,
    data_size: u64,
) -> Result<(VeritySuperblock, TreeGeometry)> {
    if hash_area_offset
        .checked_add(SUPERBLOCK_SIZE as u64)
        .is_none_or(|end| end > hash_size)
    {
        bail!("the verity hash tree is {hash_size} bytes, too short to hold its {SUPERBLOCK_SIZE}-byte superblock at byte {hash_area_offset} (truncated?)");
    }
    let mut raw = [0u8; SUPERBLOCK_SIZE];
    read(
        read_hash_at,
        hash_area_offset,
        &mut raw,
        "the verity superblock",
    )?;
    let sb = parse_superblock(&raw)?;
    let g = geometry(&sb, hash_area_offset)?;
    check_extents(&sb, &g, data_size, hash_size)?;
    Ok((sb, g))
}

/// `H(salt ‖ block)` for hash type 1, `H(block ‖ salt)` for type 0 (`verify_hash_block()`).
fn hash_block(alg: HashAlg, sb: &VeritySuperblock, block: &[u8]) -> Vec<u8> {
    if sb.hash_type == 1 {
        alg.hash(&[&sb.salt, block])
    } else {
        alg.hash(&[block, &sb.salt])
    }
}

/// Parse a root hash as systemd does (`unhexmem()` + the 16-byte minimum of `verity_settings_load()`).
///
/// Surrounding whitespace (a trailing newline of a `.roothash` file) is ignored; upper-case
/// digits are accepted. Errors say whether the length or which character is wrong.
pub fn parse_roothash(text: &str) -> Result<Vec<u8>> {
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if t.is_empty() {
        bail!("root hash is empty");
    }
    if let Some((pos, c)) = t.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        bail!("root hash has an invalid character {c:?} at position {pos} (only hex digits are allowed)");
    }
    if t.len() % 2 != 0 {
        bail!("root hash has an odd number of hex digits ({})", t.len());
    }
    if t.len() < 32 {
        bail!("root hash is too short: {} bytes ({} hex digits), at least 16 bytes (32 digits) are required", t.len() / 2, t.len());
    }
    let bytes = t.as_bytes();
    let nibble = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    Ok(bytes
        .chunks_exact(2)
        .map(|p| (nibble(p[0]) << 4) | nibble(p[1]))
        .collect())
}

/// Which block of an image does not match its hash tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorruptBlock {
    /// The top hash block (or, for one-block images, the data block) does not give the root hash.
    Root,
    /// A hash block (index in hash-block units from the start of the hash device) at `level`.
    Hash { level: usize, block: u64 },
    /// A data block (index in data-block units from the start of the data device).
    Data { index: u64 },
}

impl fmt::Display for CorruptBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptBlock::Root => write!(f, "the verity tree does not match the root hash (wrong root hash or corrupted top hash block)"),
            CorruptBlock::Hash { level, block } => write!(f, "verity hash block {block} (level {level}) is corrupted"),
            CorruptBlock::Data { index } => write!(f, "data block {index} does not match the verity hash tree (corrupted data)"),
        }
    }
}

impl std::error::Error for CorruptBlock {}

/// Root hash length must match the tree's digest.
fn check_len(sb: &VeritySuperblock, alg: HashAlg, roothash: &[u8]) -> Result<()> {
    if roothash.len() != alg.size() {
        bail!(
            "root hash is {} bytes but the verity tree uses {} ({} bytes)",
            roothash.len(),
            sb.algorithm,
            alg.size()
        );
    }
    Ok(())
}

fn read(read_at: ReadAt<'_>, off: u64, buf: &mut [u8], what: &str) -> Result<()> {
    read_at(off, buf).with_context(|| format!("reading {what} at byte {off}"))
}

/// Check the top block of the hash tree against `roothash` with one read, without device-mapper.
///
/// `read_hash_at` reads the hash device (verity partition or `.verity` file) from its start;
/// `hash_area_offset` is where the superblock is in it (0 for DDIs and sidecars). A tree of
/// a single data block has no hash blocks: use [`check_root_hash`] for those.
pub fn check_top_hash(
    read_hash_at: ReadAt<'_>,
    sb: &VeritySuperblock,
    hash_area_offset: u64,
    roothash: &[u8],
) -> Result<()> {
    let alg = HashAlg::from_name(&sb.algorithm)?;
    check_len(sb, alg, roothash)?;
    let g = geometry(sb, hash_area_offset)?;
    let Some(&top) = g.level_start.last() else {
        bail!("the verity tree covers a single data block and has no hash blocks: the root hash can only be checked against the data");
    };
    let mut block = vec![0u8; sb.hash_block_size as usize];
    read(
        read_hash_at,
        top * u64::from(sb.hash_block_size),
        &mut block,
        "the top verity hash block",
    )?;
    if hash_block(alg, sb, &block) != roothash {
        return Err(CorruptBlock::Root.into());
    }
    Ok(())
}

/// Like [`check_top_hash`], and for one-block trees hash the data block instead.
pub fn check_root_hash(
    read_data_at: ReadAt<'_>,
    read_hash_at: ReadAt<'_>,
    sb: &VeritySuperblock,
    hash_area_offset: u64,
    roothash: &[u8],
) -> Result<()> {
    let alg = HashAlg::from_name(&sb.algorithm)?;
    check_len(sb, alg, roothash)?;
    if geometry(sb, hash_area_offset)?.levels() > 0 {
        return check_top_hash(read_hash_at, sb, hash_area_offset, roothash);
    }
    let mut block = vec![0u8; sb.data_block_size as usize];
    read(read_data_at, 0, &mut block, "data block 0")?;
    if hash_block(alg, sb, &block) != roothash {
        return Err(CorruptBlock::Root.into());
    }
    Ok(())
}

/// Verify every hash and data block against the tree and `roothash`, top-down, in userspace.
///
/// The first mismatch is returned as a [`CorruptBlock`] (downcast the error to get it), so
/// a corrupted hash block is told apart from corrupted data.
pub fn verify_all(
    read_data_at: ReadAt<'_>,
    read_hash_at: ReadAt<'_>,
    sb: &VeritySuperblock,
    hash_area_offset: u64,
    roothash: &[u8],
) -> Result<()> {
    let alg = HashAlg::from_name(&sb.algorithm)?;
    let g = geometry(sb, hash_area_offset)?;
    check_root_hash(read_data_at, read_hash_at, sb, hash_area_offset, roothash)?;
    let hbs = u64::from(sb.hash_block_size);
    let dbs = u64::from(sb.data_block_size);
    let mut parent = vec![0u8; hbs as usize];
    let mut child = Vec::new();
    // Each level is checked against its (already verified) parent level, the data last.
    for level in (0..g.levels()).rev() {
        let (children, child_size) = if level > 0 {
            (g.level_blocks[level - 1], hbs)
        } else {
            (sb.data_blocks, dbs)
        };
        child.resize(child_size as usize, 0);
        for c in 0..children {
            let slot = c % g.hashes_per_block;
            if slot == 0 {
                let p = g.level_start[level] + c / g.hashes_per_block;
                read(read_hash_at, p * hbs, &mut parent, "a verity hash block")?;
            }
            let (corrupt, what) = if level > 0 {
                let block = g.level_start[level - 1] + c;
                read(read_hash_at, block * hbs, &mut child, "a verity hash block")?;
                (
                    CorruptBlock::Hash {
                        level: level - 1,
                        block,
                    },
                    "hash",
                )
            } else {
                read(read_data_at, c * dbs, &mut child, "a data block")?;
                (CorruptBlock::Data { index: c }, "data")
            };
            let at = slot as usize * g.digest_stride;
            if hash_block(alg, sb, &child) != parent[at..at + g.digest_size] {
                tracing::debug!(level, child = c, kind = what, "verity mismatch");
                return Err(corrupt.into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(data_blocks: u64, hash_type: u32, alg: &str, dbs: u32, hbs: u32) -> VeritySuperblock {
        VeritySuperblock {
            version: 1,
            hash_type,
            algorithm: alg.into(),
            data_block_size: dbs,
            hash_block_size: hbs,
            data_blocks,
            salt: vec![0x5a; 7],
            uuid: [1; 16],
        }
    }

    fn encode(s: &VeritySuperblock) -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK_SIZE];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&s.version.to_le_bytes());
        b[12..16].copy_from_slice(&s.hash_type.to_le_bytes());
        b[16..32].copy_from_slice(&s.uuid);
        b[32..32 + s.algorithm.len()].copy_from_slice(s.algorithm.as_bytes());
        b[64..68].copy_from_slice(&s.data_block_size.to_le_bytes());
        b[68..72].copy_from_slice(&s.hash_block_size.to_le_bytes());
        b[72..80].copy_from_slice(&s.data_blocks.to_le_bytes());
        b[80..82].copy_from_slice(&(s.salt.len() as u16).to_le_bytes());
        b[88..88 + s.salt.len()].copy_from_slice(&s.salt);
        b
    }

    /// Build a hash device (superblock at 0) for `data` the way veritysetup lays it out.
    fn build_tree(s: &VeritySuperblock, data: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let alg = HashAlg::from_name(&s.algorithm).unwrap();
        let g = geometry(s, 0).unwrap();
        let hbs = s.hash_block_size as usize;
        let end = g
            .level_start
            .first()
            .map_or(1, |&st| st + g.level_blocks[0]) as usize;
        let mut dev = vec![0u8; end.max(1) * hbs];
        dev[..SUPERBLOCK_SIZE].copy_from_slice(&encode(s));
        let mut below: Vec<Vec<u8>> = data
            .chunks(s.data_block_size as usize)
            .map(<[u8]>::to_vec)
            .collect();
        for level in 0..g.levels() {
            for (i, blk) in below.iter().enumerate() {
                let d = hash_block(alg, s, blk);
                let at = (g.level_start[level] as usize + i / g.hashes_per_block as usize) * hbs
                    + (i % g.hashes_per_block as usize) * g.digest_stride;
                dev[at..at + d.len()].copy_from_slice(&d);
            }
            let st = g.level_start[level] as usize;
            below = (0..g.level_blocks[level] as usize)
                .map(|k| dev[(st + k) * hbs..(st + k + 1) * hbs].to_vec())
                .collect();
        }
        let root = hash_block(alg, s, &below[0]);
        (dev, root)
    }

    use crate::ondisk::bytes::slice_reader as reader;

    #[test]
    fn roothash_text() {
        let good = "AEA69771e07dcdaf5667b114ee6caaed6d2df19518a4c6e1672c868a39128be7\n";
        assert_eq!(
            crate::ondisk::bytes::hex(&parse_roothash(good).unwrap()),
            good.trim().to_ascii_lowercase()
        );
        let err = |t: &str| parse_roothash(t).unwrap_err().to_string();
        assert!(err("abc").contains("odd number"), "{}", err("abc"));
        assert!(
            err("zz").contains("invalid character 'z' at position 0"),
            "{}",
            err("zz")
        );
        assert!(err("00112233445566778899aabbccddee").contains("too short: 15 bytes"));
        assert!(err("  ").contains("empty"));
        assert!(err("0011 2233").contains("invalid character ' '"));
    }

    #[test]
    fn superblock_roundtrip_and_errors() {
        let s = sb(146, 1, "sha256", 4096, 4096);
        assert_eq!(parse_superblock(&encode(&s)).unwrap(), s);
        let mut b = encode(&s);
        b[0] = b'V';
        assert!(parse_superblock(&b)
            .unwrap_err()
            .to_string()
            .contains("no verity superblock"));
        let mut b = encode(&s);
        b[8] = 2;
        assert!(parse_superblock(&b)
            .unwrap_err()
            .to_string()
            .contains("version 2"));
        let mut b = encode(&s);
        b[64..68].copy_from_slice(&3000u32.to_le_bytes());
        assert!(parse_superblock(&b)
            .unwrap_err()
            .to_string()
            .contains("block sizes"));
        let mut b = encode(&s);
        b[80..82].copy_from_slice(&257u16.to_le_bytes());
        assert!(parse_superblock(&b)
            .unwrap_err()
            .to_string()
            .contains("salt size"));
        assert!(parse_superblock(&b[..100]).is_err());
    }

    #[test]
    fn geometry_like_cryptsetup() {
        // 146 blocks of 4 KiB, sha256: 128 digests per block → 2 levels, 2 + 1 hash blocks.
        let g = geometry(&sb(146, 1, "sha256", 4096, 4096), 0).unwrap();
        assert_eq!(
            (g.level_start.clone(), g.level_blocks.clone()),
            (vec![2, 1], vec![2, 1])
        );
        assert_eq!(
            geometry(&sb(1, 1, "sha256", 4096, 4096), 0)
                .unwrap()
                .levels(),
            0
        );
        assert_eq!(
            geometry(&sb(128, 1, "sha256", 4096, 4096), 0)
                .unwrap()
                .levels(),
            1
        );
        // Superblock at 4096 with 512-byte hash blocks: tree starts at block 9.
        let g = geometry(&sb(585, 0, "sha512", 1024, 512), 4096).unwrap();
        assert_eq!(
            (
                g.hashes_per_block,
                g.digest_stride,
                g.level_start[g.levels() - 1]
            ),
            (8, 64, 9)
        );
        assert!(geometry(&sb(0, 1, "sha256", 4096, 4096), 0).is_err());
        assert!(geometry(&sb(4, 1, "md5", 4096, 4096), 0).is_err());
    }

    #[test]
    fn top_hash_and_full_verify_detect_tampering() {
        for (alg, ty, dbs, hbs, blocks) in [
            ("sha256", 1, 4096, 4096, 300u64),
            ("sha512", 0, 512, 512, 70),
            ("sha224", 1, 1024, 4096, 9),
        ] {
            let s = sb(blocks, ty, alg, dbs, hbs);
            let mut data: Vec<u8> = (0..blocks * u64::from(dbs))
                .map(|i| (i * 7 + i / 999) as u8)
                .collect();
            let (mut dev, root) = build_tree(&s, &data);
            check_top_hash(&mut reader(&dev), &s, 0, &root).unwrap();
            verify_all(&mut reader(&data), &mut reader(&dev), &s, 0, &root).unwrap();

            let mut wrong = root.clone();
            wrong[3] ^= 0x40;
            let e = check_top_hash(&mut reader(&dev), &s, 0, &wrong).unwrap_err();
            assert_eq!(e.downcast_ref::<CorruptBlock>(), Some(&CorruptBlock::Root));
            assert!(check_top_hash(&mut reader(&dev), &s, 0, &root[1..])
                .unwrap_err()
                .to_string()
                .contains("bytes"));

            let bad = (blocks - 2) * u64::from(dbs) + 17;
            data[bad as usize] ^= 1;
            let e = verify_all(&mut reader(&data), &mut reader(&dev), &s, 0, &root).unwrap_err();
            assert_eq!(
                e.downcast_ref::<CorruptBlock>(),
                Some(&CorruptBlock::Data { index: blocks - 2 }),
                "{alg}"
            );
            data[bad as usize] ^= 1;

            let g = geometry(&s, 0).unwrap();
            let level0 = g.level_start[0] as usize * hbs as usize;
            dev[level0 + 5] ^= 1;
            let e = verify_all(&mut reader(&data), &mut reader(&dev), &s, 0, &root).unwrap_err();
            let expect = if g.levels() > 1 {
                CorruptBlock::Hash {
                    level: 0,
                    block: g.level_start[0],
                }
            } else {
                CorruptBlock::Root
            };
            assert_eq!(e.downcast_ref::<CorruptBlock>(), Some(&expect), "{alg}");
        }
    }

    /// Lengths the superblock declares are checked against the devices before any tree block
    /// is read: the reader below fails the test if asked for more than the superblock.
    #[test]
    fn declared_sizes_beyond_the_devices_are_refused() {
        let s = sb(146, 1, "sha256", 4096, 4096);
        let data = vec![7u8; 146 * 4096];
        let (dev, _) = build_tree(&s, &data);
        let hash_len = dev.len() as u64;
        assert_eq!(
            hash_len,
            4 * 4096,
            "superblock block + 1 top + 2 level-0 hash blocks"
        );
        let (got, g) = read_superblock(&mut reader(&dev), 0, hash_len, data.len() as u64).unwrap();
        assert_eq!((got, g.hash_end), (s.clone(), hash_len));

        let mut reads = Vec::new();
        let mut only_sb = |off: u64, buf: &mut [u8]| {
            reads.push((off, buf.len()));
            reader(&dev)(off, buf)
        };
        let err = |r: Result<(VeritySuperblock, TreeGeometry)>| r.unwrap_err().to_string();
        assert_eq!(
            err(read_superblock(&mut only_sb, 0, hash_len, 146 * 4096 - 1)),
            "verity superblock declares 146 data blocks of 4096 bytes (598016 bytes), but the data is only 598015 bytes: refusing"
        );
        assert_eq!(
            err(read_superblock(&mut only_sb, 0, hash_len - 1, 1 << 30)),
            "verity hash tree needs 16384 bytes for 2 levels, but the hash device is only 16383 bytes: refusing"
        );
        assert_eq!(
            err(read_superblock(&mut only_sb, 0, 100, 1 << 30)),
            "the verity hash tree is 100 bytes, too short to hold its 512-byte superblock at byte 0 (truncated?)"
        );
        assert_eq!(
            err(read_superblock(&mut only_sb, u64::MAX - 10, u64::MAX, 0)),
            format!("the verity hash tree is {} bytes, too short to hold its 512-byte superblock at byte {} (truncated?)", u64::MAX, u64::MAX - 10)
        );
        assert_eq!(
            reads,
            vec![(0, 512), (0, 512)],
            "only the superblock was read"
        );

        let mut huge = encode(&s);
        huge[72..80].copy_from_slice(&(1u64 << 53).to_le_bytes());
        let sb_huge = parse_superblock(&huge).unwrap();
        let g = geometry(&sb_huge, 0).unwrap();
        assert_eq!(
            check_extents(&sb_huge, &g, u64::MAX, u64::MAX).unwrap_err().to_string(),
            "verity superblock declares 9007199254740992 data blocks of 4096 bytes, more than 2^64 bytes: refusing"
        );
        // A one-block tree has no hash blocks: the superblock alone is enough.
        let one = sb(1, 1, "sha256", 4096, 4096);
        let g = geometry(&one, 0).unwrap();
        assert_eq!(g.hash_end, 512);
        check_extents(&one, &g, 4096, 512).unwrap();
    }

    #[test]
    fn single_block_tree_uses_the_data_block() {
        let s = sb(1, 1, "sha256", 4096, 4096);
        let data = vec![9u8; 4096];
        let (dev, root) = build_tree(&s, &data);
        assert!(check_top_hash(&mut reader(&dev), &s, 0, &root).is_err());
        check_root_hash(&mut reader(&data), &mut reader(&dev), &s, 0, &root).unwrap();
        verify_all(&mut reader(&data), &mut reader(&dev), &s, 0, &root).unwrap();
        let e = check_root_hash(&mut reader(&[1u8; 4096]), &mut reader(&dev), &s, 0, &root)
            .unwrap_err();
        assert_eq!(e.downcast_ref::<CorruptBlock>(), Some(&CorruptBlock::Root));
    }
}
