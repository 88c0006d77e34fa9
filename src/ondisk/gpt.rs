//! The GUID Partition Table (UEFI 2.x §5.3): the primary header at LBA 1, its CRCs and the
//! partition entry array, read through a `read_at` seam. The one GPT reader of the crate:
//! DDIs (`image::ddi` adds partition roles and selection) and PARTUUID=/PARTLABEL= lookups
//! for `/var` (`initrd::var::device`) both use it.
//!
//! Every length the header declares is checked before anything it describes is read or
//! allocated: a hostile image cannot make us read or allocate more than [`MAX_ARRAY_BYTES`].

use anyhow::{bail, Context, Result};

use super::bytes::{le32, le64, ReadAt};

/// Sector sizes probed for the header, as systemd's `probe_sector_size()` does.
pub const SECTOR_SIZES: [u32; 4] = [512, 1024, 2048, 4096];
/// Probing reads two sectors of the largest size probed.
pub const PROBE_BYTES: usize = 2 * 4096;
/// `sizeof(GptHeader)`: the fields UEFI 2.x defines.
const HEADER_SIZE: usize = 92;
/// `sizeof(GptPartitionEntry)`; UEFI allows 128 × 2^n.
pub const MIN_ENTRY_SIZE: u32 = 128;
/// systemd refuses more entries than this (`gpt_probe()`); the kernel's and fdisk's default is 128.
pub const MAX_ENTRIES: u32 = 1024;
/// Largest entry array read: 1024 entries of 1 KiB.
pub const MAX_ARRAY_BYTES: u64 = 1 << 20;
/// `SD_GPT_FLAG_NO_AUTO`: the partition is not to be used automatically.
pub const FLAG_NO_AUTO: u64 = 1 << 63;
/// `SD_GPT_FLAG_READ_ONLY`.
pub const FLAG_READ_ONLY: u64 = 1 << 60;

/// The header fields a reader needs, after every check of [`read_header`] passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptHeader {
    /// Logical sector size the header was found at.
    pub sector_size: u32,
    /// Disk GUID, bytes in printed order.
    pub disk_guid: [u8; 16],
    /// First LBA usable by partitions.
    pub first_usable_lba: u64,
    /// Last LBA usable by partitions.
    pub last_usable_lba: u64,
    /// LBA of the partition entry array.
    pub entries_lba: u64,
    /// Number of entries in the array (1..=[`MAX_ENTRIES`]).
    pub entry_count: u32,
    /// Size of one entry (128 × 2^n).
    pub entry_size: u32,
    /// CRC32 of the entry array.
    pub entries_crc: u32,
}

impl GptHeader {
    /// Byte offset of the entry array (checked against the disk size by [`read_header`]).
    pub fn array_offset(&self) -> u64 {
        self.entries_lba.saturating_mul(u64::from(self.sector_size))
    }

    /// Length of the entry array in bytes (at most [`MAX_ARRAY_BYTES`]).
    pub fn array_len(&self) -> u64 {
        u64::from(self.entry_count) * u64::from(self.entry_size)
    }
}

/// One used entry of the array (type GUID not all zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based position in the entry array (the kernel's partition number, sysfs `partition`).
    pub number: u32,
    /// Partition type GUID, bytes in printed order (RFC 4122, not GPT's mixed endian).
    pub type_uuid: [u8; 16],
    /// Unique partition GUID (PARTUUID), bytes in printed order.
    pub part_uuid: [u8; 16],
    /// First LBA (inclusive).
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub flags: u64,
    /// Partition name (PARTLABEL), UTF-16LE on disk, up to the first NUL.
    pub label: String,
}

impl GptPartition {
    /// Offset and length in bytes; refused when the LBA range is inverted or ends beyond
    /// `disk_size`, so no caller reads or maps past the disk.
    pub fn byte_range(&self, sector_size: u32, disk_size: u64) -> Result<(u64, u64)> {
        let (nr, label) = (self.number, &self.label);
        let sector = u64::from(sector_size);
        let (first, last) = (self.first_lba, self.last_lba);
        let (Some(offset), Some(len)) = (
            first.checked_mul(sector),
            last.checked_sub(first)
                .and_then(|n| n.checked_add(1)?.checked_mul(sector)),
        ) else {
            bail!("GPT partition {nr} ({label:?}) has an invalid LBA range {first}..{last}");
        };
        if offset.checked_add(len).is_none_or(|end| end > disk_size) {
            bail!("GPT partition {nr} ({label:?}) ends beyond the end of the disk (bytes {offset}+{len} of {disk_size}): refusing");
        }
        Ok((offset, len))
    }
}

/// A primary GPT whose header and entry array passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpt {
    /// The header.
    pub header: GptHeader,
    /// The used entries, in array order.
    pub partitions: Vec<GptPartition>,
}

/// Byte-at-a-time table for [`crc32`]: an entry array is up to 1 MiB, and the fuzzer runs it
/// on every input.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected), as GPT uses for its header and entry array.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = CRC_TABLE[usize::from(crc as u8 ^ byte)] ^ (crc >> 8);
    }
    !crc
}

/// GPT stores the first three GUID fields little-endian; return printed order.
pub fn guid_from_disk(raw: [u8; 16]) -> [u8; 16] {
    let mut u = raw;
    u[0..4].reverse();
    u[4..6].reverse();
    u[6..8].reverse();
    u
}

/// `gpt_header_has_signature()`: magic, revision 1.0, a header size from 92 to 4096, LBA 1.
pub fn has_signature(h: &[u8]) -> bool {
    h.get(..8) == Some(b"EFI PART")
        && le32(h, 8) == Some(0x0001_0000)
        && le32(h, 12).is_some_and(|s| (HEADER_SIZE as u32..=4096).contains(&s))
        && le64(h, 24) == Some(1)
}

/// The sector size whose LBA 1 holds a GPT header, from the first 8 KiB of an image.
///
/// `Ok(None)`: no GPT (or fewer than 8 KiB, which `probe_sector_size()` treats the same).
/// Headers at several sector sizes are refused like systemd does (ENOTUNIQ).
pub fn probe_sector_size(head: &[u8]) -> Result<Option<u32>> {
    if head.len() < PROBE_BYTES {
        return Ok(None);
    }
    let mut found = None;
    for sz in SECTOR_SIZES {
        if has_signature(&head[sz as usize..]) {
            if let Some(prev) = found {
                bail!(
                    "GPT headers found for both {prev} and {sz} byte sectors: ambiguous, refusing"
                );
            }
            found = Some(sz);
        }
    }
    Ok(found)
}

fn field16(b: &[u8], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Some(src) = b.get(at..at + 16) {
        out.copy_from_slice(src);
    }
    out
}

/// The header sector: probed from the first 8 KiB (`sector_size: None`, as for DDIs) or
/// read at a known logical sector size (a block device's `logical_block_size`).
fn header_sector(
    read_at: ReadAt<'_>,
    disk_size: u64,
    sector_size: Option<u32>,
) -> Result<(u32, Vec<u8>)> {
    match sector_size {
        None => {
            if disk_size < PROBE_BYTES as u64 {
                bail!("no GPT partition table: the disk is only {disk_size} bytes (a GPT needs at least 8 KiB)");
            }
            let mut head = vec![0u8; PROBE_BYTES];
            read_at(0, &mut head).context("reading the first 8 KiB for the GPT header")?;
            let Some(sector) = probe_sector_size(&head)? else {
                bail!("no GPT partition table: no valid 'EFI PART' header at byte 512, 1024, 2048 or 4096");
            };
            let at = sector as usize;
            Ok((sector, head[at..2 * at].to_vec()))
        }
        Some(sector) => {
            if !SECTOR_SIZES.contains(&sector) {
                bail!("unsupported logical sector size {sector} (GPT is read for 512, 1024, 2048 and 4096)");
            }
            let s = u64::from(sector);
            if disk_size < 2 * s {
                bail!("no GPT partition table: the disk is only {disk_size} bytes (a GPT needs at least {} with {sector} byte sectors)", 2 * s);
            }
            let mut h = vec![0u8; sector as usize];
            read_at(s, &mut h).with_context(|| format!("reading the GPT header at byte {s}"))?;
            if !has_signature(&h) {
                bail!("no GPT partition table: no valid 'EFI PART' header at byte {sector}");
            }
            Ok((sector, h))
        }
    }
}

/// Read and check the primary GPT header of a disk of `disk_size` bytes.
///
/// Refused before the entry array is touched: a bad header CRC, entries whose size is not
/// 128 × 2^n, no or more than [`MAX_ENTRIES`] entries, an array over [`MAX_ARRAY_BYTES`],
/// or an array that ends beyond the disk.
pub fn read_header(
    read_at: ReadAt<'_>,
    disk_size: u64,
    sector_size: Option<u32>,
) -> Result<GptHeader> {
    let (sector, sec) = header_sector(read_at, disk_size, sector_size)?;
    // has_signature() bounded this to 92..=4096.
    let header_size = le32(&sec, 12).unwrap_or(0) as usize;
    if header_size > sec.len() {
        bail!("GPT header size {header_size} exceeds the {sector} byte sector");
    }
    let mut hdr = sec[..header_size].to_vec();
    let stored_crc = le32(&hdr, 16).unwrap_or(0);
    hdr[16..20].fill(0);
    let crc = crc32(&hdr);
    if crc != stored_crc {
        bail!("GPT header checksum mismatch (stored {stored_crc:#010x}, computed {crc:#010x}): corrupt partition table");
    }
    let h = &sec[..header_size];
    let header = GptHeader {
        sector_size: sector,
        disk_guid: guid_from_disk(field16(h, 56)),
        first_usable_lba: le64(h, 40).unwrap_or(0),
        last_usable_lba: le64(h, 48).unwrap_or(0),
        entries_lba: le64(h, 72).unwrap_or(0),
        entry_count: le32(h, 80).unwrap_or(0),
        entry_size: le32(h, 84).unwrap_or(0),
        entries_crc: le32(h, 88).unwrap_or(0),
    };
    check_array_bounds(&header, disk_size)?;
    Ok(header)
}

/// The entry array's declared size and place, against the spec and the disk.
fn check_array_bounds(h: &GptHeader, disk_size: u64) -> Result<()> {
    let (count, size) = (h.entry_count, h.entry_size);
    if size < MIN_ENTRY_SIZE || !size.is_power_of_two() {
        bail!("GPT header declares partition entries of {size} bytes: refusing (UEFI requires 128 × 2^n bytes)");
    }
    if count == 0 || count > MAX_ENTRIES {
        bail!("GPT header declares {count} partition entries: refusing (1 to {MAX_ENTRIES} are accepted)");
    }
    let len = h.array_len();
    if len > MAX_ARRAY_BYTES {
        bail!("GPT header declares an entry array of {count} × {size} = {len} bytes: refusing (at most {MAX_ARRAY_BYTES} bytes)");
    }
    let lba = h.entries_lba;
    let end = lba
        .checked_mul(u64::from(h.sector_size))
        .and_then(|off| off.checked_add(len));
    if end.is_none_or(|end| end > disk_size) {
        bail!("GPT entry array at LBA {lba} ({len} bytes) ends beyond the end of the disk ({disk_size} bytes): refusing");
    }
    Ok(())
}

/// UTF-16LE up to the first NUL; unpaired surrogates become U+FFFD.
fn label_of(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&c| c != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Read the entry array [`read_header`] vouched for, check its CRC and return the used entries.
pub fn read_entries(read_at: ReadAt<'_>, header: &GptHeader) -> Result<Vec<GptPartition>> {
    let off = header.array_offset();
    // read_header() capped this at MAX_ARRAY_BYTES.
    let mut array = vec![0u8; header.array_len() as usize];
    read_at(off, &mut array)
        .with_context(|| format!("reading the GPT entry array at byte {off}"))?;
    let crc = crc32(&array);
    if crc != header.entries_crc {
        bail!(
            "GPT partition entry array checksum mismatch (stored {:#010x}, computed {crc:#010x}): corrupt partition table",
            header.entries_crc
        );
    }
    let mut out = Vec::new();
    for (i, e) in array.chunks_exact(header.entry_size as usize).enumerate() {
        let type_uuid = guid_from_disk(field16(e, 0));
        if type_uuid == [0u8; 16] {
            continue; // unused entry
        }
        out.push(GptPartition {
            number: i as u32 + 1,
            type_uuid,
            part_uuid: guid_from_disk(field16(e, 16)),
            first_lba: le64(e, 32).unwrap_or(0),
            last_lba: le64(e, 40).unwrap_or(0),
            flags: le64(e, 48).unwrap_or(0),
            label: label_of(&e[56..128]),
        });
    }
    Ok(out)
}

/// Read the primary GPT of a disk of `disk_size` bytes: header and used entries, all checked.
pub fn read_gpt(read_at: ReadAt<'_>, disk_size: u64, sector_size: Option<u32>) -> Result<Gpt> {
    let header = read_header(read_at, disk_size, sector_size)?;
    let partitions = read_entries(read_at, &header)?;
    Ok(Gpt { header, partitions })
}

/// Disk images with a primary GPT, for the tests of every GPT user (`image::ddi`, `/var`).
#[cfg(test)]
pub(crate) mod testing {
    use super::crc32;

    /// One used entry.
    pub struct Entry {
        /// 0-based slot in the array (partition number − 1).
        pub slot: usize,
        /// Type GUID, printed order.
        pub type_uuid: [u8; 16],
        /// Partition GUID, printed order.
        pub part_uuid: [u8; 16],
        pub first_lba: u64,
        pub last_lba: u64,
        pub flags: u64,
        pub label: String,
    }

    /// Where the header puts the array and what it declares.
    #[derive(Clone)]
    pub struct Layout {
        pub sector: usize,
        pub disk_bytes: usize,
        pub entries_lba: u64,
        pub count: u32,
        pub entry_size: u32,
    }

    impl Layout {
        /// 256 KiB, 128 entries of 128 bytes at LBA 2: what sfdisk and systemd-repart write.
        pub fn new(sector: usize) -> Layout {
            Layout {
                sector,
                disk_bytes: 256 * 1024,
                entries_lba: 2,
                count: 128,
                entry_size: 128,
            }
        }
    }

    fn to_disk(u: [u8; 16]) -> [u8; 16] {
        super::guid_from_disk(u) // the swap is its own inverse
    }

    /// A disk with `entries` in the array and a header whose CRCs match.
    pub fn disk(l: &Layout, entries: &[Entry]) -> Vec<u8> {
        let mut img = vec![0u8; l.disk_bytes];
        let base = l.entries_lba as usize * l.sector;
        for e in entries {
            let at = base + e.slot * l.entry_size as usize;
            let raw = &mut img[at..at + 128];
            raw[0..16].copy_from_slice(&to_disk(e.type_uuid));
            raw[16..32].copy_from_slice(&to_disk(e.part_uuid));
            raw[32..40].copy_from_slice(&e.first_lba.to_le_bytes());
            raw[40..48].copy_from_slice(&e.last_lba.to_le_bytes());
            raw[48..56].copy_from_slice(&e.flags.to_le_bytes());
            for (j, u) in e.label.encode_utf16().enumerate() {
                raw[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
            }
        }
        write_header(&mut img, l);
        img
    }

    /// (Re)write the header at LBA 1 for `l`: the array CRC over the part of the declared
    /// array that is on the disk, then the header CRC, so only the tested refusal can apply.
    pub fn write_header(img: &mut [u8], l: &Layout) {
        let start = (l.entries_lba as usize)
            .saturating_mul(l.sector)
            .min(img.len());
        let len = l.count as usize * l.entry_size as usize;
        let end = start.saturating_add(len).min(img.len());
        let array_crc = crc32(&img[start..end]);
        let last_lba = (img.len() / l.sector) as u64 - 1;
        let h = &mut img[l.sector..l.sector + 92];
        h.fill(0);
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&last_lba.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(last_lba - 33).to_le_bytes());
        h[56..72].copy_from_slice(&[0x5a; 16]);
        h[72..80].copy_from_slice(&l.entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&l.count.to_le_bytes());
        h[84..88].copy_from_slice(&l.entry_size.to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32(h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{disk, write_header, Entry, Layout};
    use super::*;
    use crate::ondisk::bytes::{format_uuid, slice_reader};

    fn entry(slot: usize, id: u8, first: u64, label: &str) -> Entry {
        Entry {
            slot,
            type_uuid: [0xAA; 16],
            part_uuid: [id; 16],
            first_lba: first,
            last_lba: first + 7,
            flags: 0,
            label: label.to_string(),
        }
    }

    /// Read through a reader that records every read, so a test can show what was touched.
    fn read_logged(img: &[u8], sector: Option<u32>) -> (Result<Gpt>, Vec<(u64, usize)>) {
        let mut reads = Vec::new();
        let mut inner = slice_reader(img);
        let mut read = |off: u64, buf: &mut [u8]| {
            reads.push((off, buf.len()));
            inner(off, buf)
        };
        let r = read_gpt(&mut read, img.len() as u64, sector);
        (r, reads)
    }

    fn err(img: &[u8], sector: Option<u32>) -> String {
        format!("{:#}", read_logged(img, sector).0.unwrap_err())
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(&[0u8; 16384]), 0xAB54_D286);
    }

    #[test]
    fn reads_header_and_used_entries_at_both_sector_sizes() {
        let mut on_disk = [0u8; 16];
        on_disk.copy_from_slice(&[
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        for sector in [512usize, 4096] {
            let mut e = entry(2, 0, 40, "var-dätä");
            e.part_uuid = guid_from_disk(on_disk);
            e.flags = FLAG_READ_ONLY;
            let img = disk(&Layout::new(sector), &[entry(0, 1, 34, "first"), e]);
            for probe in [None, Some(sector as u32)] {
                let (gpt, _) = read_logged(&img, probe);
                let gpt = gpt.unwrap();
                assert_eq!(gpt.header.sector_size as usize, sector);
                assert_eq!((gpt.header.entry_count, gpt.header.entry_size), (128, 128));
                assert_eq!(gpt.header.disk_guid, [0x5a; 16]);
                let p: Vec<_> = gpt.partitions.iter().map(|p| p.number).collect();
                assert_eq!(p, vec![1, 3], "unused entries are skipped");
                let third = &gpt.partitions[1];
                assert_eq!(
                    format_uuid(&third.part_uuid),
                    "00112233-4455-6677-8899-aabbccddeeff"
                );
                assert_eq!(
                    (third.label.as_str(), third.flags),
                    ("var-dätä", FLAG_READ_ONLY)
                );
                let s = sector as u64;
                assert_eq!(
                    third.byte_range(sector as u32, img.len() as u64).unwrap(),
                    (40 * s, 8 * s)
                );
            }
        }
    }

    #[test]
    fn corrupt_or_missing_tables_are_refused() {
        let good = disk(&Layout::new(512), &[entry(0, 1, 34, "a")]);
        let mut img = good.clone();
        img[512 + 40] ^= 1; // first usable LBA, covered by the header CRC
        assert!(err(&img, None).starts_with("GPT header checksum mismatch (stored "));
        let mut img = good.clone();
        img[1024 + 60] ^= 1; // a label byte of entry 1
        assert!(err(&img, None).starts_with("GPT partition entry array checksum mismatch"));
        assert_eq!(
            err(&vec![0u8; 65536], None),
            "no GPT partition table: no valid 'EFI PART' header at byte 512, 1024, 2048 or 4096"
        );
        assert_eq!(
            err(&vec![0u8; 65536], Some(4096)),
            "no GPT partition table: no valid 'EFI PART' header at byte 4096"
        );
        assert_eq!(
            err(&[0u8; 100], None),
            "no GPT partition table: the disk is only 100 bytes (a GPT needs at least 8 KiB)"
        );
        assert_eq!(
            err(&[0u8; 1000], Some(512)),
            "no GPT partition table: the disk is only 1000 bytes (a GPT needs at least 1024 with 512 byte sectors)"
        );
        assert_eq!(
            err(&good, Some(520)),
            "unsupported logical sector size 520 (GPT is read for 512, 1024, 2048 and 4096)"
        );
        let mut img = good.clone();
        img[512 + 12..512 + 16].copy_from_slice(&600u32.to_le_bytes());
        assert_eq!(
            err(&img, None),
            "GPT header size 600 exceeds the 512 byte sector"
        );
        let mut img = good;
        let other = disk(&Layout::new(4096), &[]);
        img[4096..4096 + 92].copy_from_slice(&other[4096..4096 + 92]);
        assert_eq!(
            err(&img, None),
            "GPT headers found for both 512 and 4096 byte sectors: ambiguous, refusing"
        );
    }

    /// Every length the header declares, refused with its reason after reading only the
    /// header: the entry array is neither allocated nor read.
    #[test]
    fn oversized_or_misplaced_entry_arrays_are_refused_before_reading_them() {
        let cases: [(u64, u32, u32, &str); 9] = [
            (2, 128, 100, "GPT header declares partition entries of 100 bytes: refusing (UEFI requires 128 × 2^n bytes)"),
            (2, 128, 384, "GPT header declares partition entries of 384 bytes: refusing (UEFI requires 128 × 2^n bytes)"),
            (2, 128, 0, "GPT header declares partition entries of 0 bytes: refusing (UEFI requires 128 × 2^n bytes)"),
            (2, 0, 128, "GPT header declares 0 partition entries: refusing (1 to 1024 are accepted)"),
            (2, 1025, 128, "GPT header declares 1025 partition entries: refusing (1 to 1024 are accepted)"),
            (2, u32::MAX, 128, "GPT header declares 4294967295 partition entries: refusing (1 to 1024 are accepted)"),
            (2, 1024, 2048, "GPT header declares an entry array of 1024 × 2048 = 2097152 bytes: refusing (at most 1048576 bytes)"),
            (500, 128, 128, "GPT entry array at LBA 500 (16384 bytes) ends beyond the end of the disk (262144 bytes): refusing"),
            (u64::MAX / 256, 1, 128, "GPT entry array at LBA 72057594037927935 (128 bytes) ends beyond the end of the disk (262144 bytes): refusing"),
        ];
        for sector in [512usize, 4096] {
            let base = disk(&Layout::new(sector), &[entry(0, 1, 40, "a")]);
            for (lba, count, size, want) in cases {
                let mut img = base.clone();
                let l = Layout {
                    entries_lba: lba,
                    count,
                    entry_size: size,
                    ..Layout::new(sector)
                };
                write_header(&mut img, &l);
                for probe in [None, Some(sector as u32)] {
                    let (r, reads) = read_logged(&img, probe);
                    assert_eq!(format!("{:#}", r.unwrap_err()), want, "{sector} {probe:?}");
                    let header_read = match probe {
                        None => (0, PROBE_BYTES),
                        Some(s) => (u64::from(s), s as usize),
                    };
                    assert_eq!(reads, vec![header_read], "only the header was read");
                }
            }
            // The largest array allowed is read: 1024 entries of 1 KiB at the end of a 2 MiB disk.
            let l = Layout {
                disk_bytes: 2 << 20,
                entries_lba: ((1 << 20) / sector) as u64,
                count: 1024,
                entry_size: 1024,
                ..Layout::new(sector)
            };
            let gpt = read_logged(&disk(&l, &[entry(1023, 9, 40, "last")]), None)
                .0
                .unwrap();
            assert_eq!(gpt.partitions[0].number, 1024);
            assert_eq!(gpt.partitions[0].label, "last");
        }
    }

    #[test]
    fn partitions_beyond_the_disk_are_refused_by_byte_range() {
        let img = disk(
            &Layout::new(512),
            &[entry(0, 1, 510, "tail"), entry(1, 2, 40, "ok")],
        );
        let gpt = read_logged(&img, None).0.unwrap();
        assert_eq!(
            gpt.partitions[0].byte_range(512, img.len() as u64).unwrap_err().to_string(),
            "GPT partition 1 (\"tail\") ends beyond the end of the disk (bytes 261120+4096 of 262144): refusing"
        );
        let mut p = gpt.partitions[1].clone();
        assert_eq!(
            p.byte_range(512, img.len() as u64).unwrap(),
            (40 * 512, 8 * 512)
        );
        p.last_lba = 39;
        assert_eq!(
            p.byte_range(512, img.len() as u64).unwrap_err().to_string(),
            "GPT partition 2 (\"ok\") has an invalid LBA range 40..39"
        );
        p.first_lba = u64::MAX / 2;
        p.last_lba = u64::MAX;
        assert!(p
            .byte_range(512, u64::MAX)
            .unwrap_err()
            .to_string()
            .contains("has an invalid LBA range"));
    }
}
