//! Discoverable Disk Images (DDIs) the way systemd's `dissect_image()`
//! (`src/shared/dissect-image.c`) reads them, for the partitions an extension needs:
//! root/usr data, their `-verity` hash partitions and `-verity-sig` signature partitions, on
//! x86-64 and arm64. The GPT itself (header, entry array, CRCs, bounds) is read by
//! [`crate::ondisk::gpt`]; this module adds partition roles, the layout checks and selection.
//!
//! Pure: everything is read through a closure, so tests and fuzzers need no device.

use std::cmp::Ordering;
use std::fmt;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::ondisk::bytes::{format_uuid, hex, ReadAt};
use crate::ondisk::gpt::{self, FLAG_NO_AUTO};
use crate::ondisk::version::strverscmp_improved;

/// Which file system a partition belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Designator {
    /// The root file system (what `systemd-repart --make-ddi=sysext|confext` produces).
    Root,
    /// A `/usr` file system.
    Usr,
}

impl Designator {
    /// systemd's name for it (`root`, `usr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Designator::Root => "root",
            Designator::Usr => "usr",
        }
    }
}

impl fmt::Display for Designator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a partition holds for its designator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartitionRole {
    /// The file system itself.
    Data,
    /// The dm-verity hash tree (with its superblock).
    Verity,
    /// NUL-padded JSON with the root hash and its PKCS#7 signature.
    VeritySig,
}

impl PartitionRole {
    fn suffix(self) -> &'static str {
        match self {
            PartitionRole::Data => "",
            PartitionRole::Verity => "-verity",
            PartitionRole::VeritySig => "-verity-sig",
        }
    }
}

/// One partition of a DDI that systemd would consider for an extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DdiPartition {
    /// Root or usr.
    pub designator: Designator,
    /// Data, hash tree or signature.
    pub role: PartitionRole,
    /// Architecture of the type UUID (`x86-64`, `arm64`); empty for the generic Linux type.
    pub arch: &'static str,
    /// Partition type UUID, bytes in the order they are printed (RFC 4122, not GPT's mixed endian).
    pub type_uuid: [u8; 16],
    /// Partition UUID, bytes in printed order (what the verity root hash halves are compared with).
    pub part_uuid: [u8; 16],
    /// The GPT partition name (label).
    pub label: String,
    /// Start of the partition in bytes from the start of the image.
    pub offset: u64,
    /// Length of the partition in bytes.
    pub size: u64,
    /// `SD_GPT_FLAG_NO_AUTO` was set (such partitions are skipped, so this is false in parse results).
    pub no_auto: bool,
    /// The raw GPT attribute bits.
    pub flags: u64,
}

impl DdiPartition {
    /// systemd's type name, e.g. `root-x86-64-verity`.
    pub fn type_name(&self) -> String {
        if self.arch.is_empty() {
            return "linux-generic".to_string();
        }
        format!("{}-{}{}", self.designator, self.arch, self.role.suffix())
    }
}

/// The partitions of a DDI that matter for extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ddi {
    /// Logical sector size the GPT was found at (512 or 4096, in practice).
    pub sector_size: u32,
    /// Root/usr data, verity and verity-sig partitions of known architectures, in table order.
    pub partitions: Vec<DdiPartition>,
    /// `SD_GPT_LINUX_GENERIC` partitions: used as root only when there is no root/usr partition.
    pub generic: Vec<DdiPartition>,
}

/// systemd's `SD_GPT_LINUX_GENERIC` (`0fc63daf-8483-4772-8e79-3d69d8477de4`).
pub const GPT_LINUX_GENERIC: [u8; 16] = uuid(0x0fc63daf_8483_4772_8e79_3d69d8477de4);

const fn uuid(v: u128) -> [u8; 16] {
    v.to_be_bytes()
}

/// Known type UUIDs per architecture, in `_GPT_ARCH_SEXTET` order: root, root-verity,
/// root-verity-sig, usr, usr-verity, usr-verity-sig (`src/shared/gpt.c`; values from
/// `systemd-id128 show` of systemd 262, i.e. `src/systemd/sd-gpt.h`).
const ARCH_TYPES: [(&str, [u128; 6]); 2] = [
    (
        "x86-64",
        [
            0x4f68bce3_e8cd_4db1_96e7_fbcaf984b709,
            0x2c7357ed_ebd2_46d9_aec1_23d437ec2bf5,
            0x41092b05_9fc8_4523_994f_2def0408b176,
            0x8484680c_9521_48c6_9c11_b0720656f69e,
            0x77ff5f63_e7b6_4633_acf4_1565b864c0e6,
            0xe7bb33fb_06cf_4e81_8273_e543b413e2e2,
        ],
    ),
    (
        "arm64",
        [
            0xb921b045_1df0_41c3_af44_4c6f280d3fae,
            0xdf3300ce_d69f_4c92_978c_9bfb0f38d820,
            0x6db69de6_29f4_4758_a7a5_962190f00ce3,
            0xb0e01050_ee5f_4390_949a_9101b17104e9,
            0x6e11a4e7_fbca_4ded_b9e9_e1a512bb664e,
            0xc23ce4ff_44bd_4b00_b2d4_b41b3419e02a,
        ],
    ),
];

/// Designator and role of each position of an [`ARCH_TYPES`] sextet.
const SEXTET: [(Designator, PartitionRole); 6] = [
    (Designator::Root, PartitionRole::Data),
    (Designator::Root, PartitionRole::Verity),
    (Designator::Root, PartitionRole::VeritySig),
    (Designator::Usr, PartitionRole::Data),
    (Designator::Usr, PartitionRole::Verity),
    (Designator::Usr, PartitionRole::VeritySig),
];

fn all_types() -> impl Iterator<Item = ([u8; 16], Designator, PartitionRole, &'static str)> {
    ARCH_TYPES.iter().flat_map(|(arch, ids)| {
        ids.iter()
            .zip(SEXTET)
            .map(move |(id, (d, r))| (uuid(*id), d, r, *arch))
    })
}

/// The type UUID systemd uses for `designator`/`role` on `arch`, if known.
pub fn type_uuid_for(designator: Designator, role: PartitionRole, arch: &str) -> Option<[u8; 16]> {
    all_types()
        .find(|(_, d, r, a)| *d == designator && *r == role && *a == arch)
        .map(|(u, ..)| u)
}

fn type_of(t: &[u8; 16]) -> Option<(Designator, PartitionRole, &'static str)> {
    all_types()
        .find(|(u, ..)| u == t)
        .map(|(_, d, r, a)| (d, r, a))
}

/// Parse the GPT of an image of `size` bytes read through `read_at(offset, buf)`.
///
/// Keeps root/usr data, verity and verity-sig partitions of x86-64 and arm64 (other types
/// are ignored), skipping unused entries, `_empty` labels and `SD_GPT_FLAG_NO_AUTO`
/// partitions, and refuses the layouts systemd refuses before mounting anything. The table
/// is read by [`gpt::read_gpt`], which refuses oversized or misplaced entry arrays unread.
pub fn parse_ddi(read_at: ReadAt<'_>, size: u64) -> Result<Ddi> {
    let table = gpt::read_gpt(read_at, size, None)?;
    let sector = table.header.sector_size;
    let mut ddi = Ddi {
        sector_size: sector,
        partitions: Vec::new(),
        generic: Vec::new(),
    };
    for e in table.partitions {
        // systemd-sysupdate marks free slots with this label.
        if e.label == "_empty" || e.flags & FLAG_NO_AUTO != 0 {
            continue;
        }
        let known = type_of(&e.type_uuid);
        if known.is_none() && e.type_uuid != GPT_LINUX_GENERIC {
            continue; // ESP, swap, … : not for extensions, so not checked either
        }
        let (offset, len) = e.byte_range(sector, size)?;
        let mut part = DdiPartition {
            designator: Designator::Root,
            role: PartitionRole::Data,
            arch: "",
            type_uuid: e.type_uuid,
            part_uuid: e.part_uuid,
            label: e.label,
            offset,
            size: len,
            no_auto: false,
            flags: e.flags,
        };
        if let Some((designator, role, arch)) = known {
            part.designator = designator;
            part.role = role;
            part.arch = arch;
            ddi.partitions.push(part);
        } else {
            ddi.generic.push(part);
        }
    }
    check_consistency(&ddi)?;
    Ok(ddi)
}

fn has(ddi: &Ddi, d: Designator, r: PartitionRole) -> bool {
    ddi.partitions
        .iter()
        .any(|p| p.designator == d && p.role == r)
}

/// The layout checks `dissect_image()` makes after collecting partitions.
fn check_consistency(ddi: &Ddi) -> Result<()> {
    use PartitionRole::*;
    for d in [Designator::Root, Designator::Usr] {
        if !has(ddi, d, Data) && (has(ddi, d, Verity) || has(ddi, d, VeritySig)) {
            bail!("found a {d} verity partition without a matching {d} data partition (EADDRNOTAVAIL)");
        }
        if has(ddi, d, VeritySig) && !has(ddi, d, Verity) {
            bail!("found a {d} verity signature partition without a matching {d} verity hash partition (EADDRNOTAVAIL)");
        }
    }
    if has(ddi, Designator::Root, Verity) {
        if has(ddi, Designator::Usr, Verity) {
            bail!(
                "found verity partitions for both root and usr, which is not supported (ENOTUNIQ)"
            );
        }
        if has(ddi, Designator::Usr, Data) {
            bail!("found a verity-protected root partition with a separate usr partition, which is not supported (EADDRNOTAVAIL)");
        }
    }
    Ok(())
}

/// Parse the GPT of an image file or block device.
pub fn parse_ddi_file(path: &Path) -> Result<Ddi> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // metadata().len() is 0 for block devices; seeking to the end works for both.
    let size = file
        .seek(SeekFrom::End(0))
        .with_context(|| format!("finding the size of {}", path.display()))?;
    let mut read_at = |off: u64, buf: &mut [u8]| file.read_exact_at(buf, off);
    parse_ddi(&mut read_at, size)
        .with_context(|| format!("reading the partition table of {}", path.display()))
}

/// The partitions systemd would use for one designator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityLayout {
    /// Which file system the image provides.
    pub designator: Designator,
    /// The file system partition.
    pub data: DdiPartition,
    /// Its dm-verity hash partition, if any.
    pub verity: Option<DdiPartition>,
    /// Its signature partition, if any (only with a verity partition).
    pub sig: Option<DdiPartition>,
}

/// `compare_arch()`: the native architecture beats any other; others are equal.
fn arch_rank(arch: &str, native: &str) -> u8 {
    u8::from(arch == native)
}

/// Pick one partition of `designator`/`role` like `dissect_image()`: better architecture
/// first, then the newest label by `strverscmp_improved`; on a tie the first one wins.
fn pick<'a>(
    ddi: &'a Ddi,
    designator: Designator,
    role: PartitionRole,
    native: &str,
    expected_uuid: Option<&[u8]>,
) -> Option<&'a DdiPartition> {
    let mut best: Option<&DdiPartition> = None;
    for p in ddi
        .partitions
        .iter()
        .filter(|p| p.designator == designator && p.role == role)
        // With a known root hash, non-matching data/verity partitions are ignored.
        .filter(|p| expected_uuid.is_none_or(|u| p.part_uuid[..] == *u))
    {
        best = match best {
            None => Some(p),
            Some(b) => {
                let better = match arch_rank(p.arch, native).cmp(&arch_rank(b.arch, native)) {
                    Ordering::Greater => true,
                    Ordering::Less => false,
                    Ordering::Equal => strverscmp_improved(&p.label, &b.label) == Ordering::Greater,
                };
                Some(if better { p } else { b })
            }
        };
    }
    best
}

/// Choose the data/verity/signature partitions systemd would use (root preferred over usr).
pub fn select(ddi: &Ddi, native_arch: &str) -> Result<VerityLayout> {
    select_for_roothash(ddi, native_arch, None)
}

/// Like [`select`], but with a root hash already known (from a sidecar): the data partition
/// UUID must equal its first 16 bytes and the verity partition UUID its last 16 bytes.
pub fn select_for_roothash(
    ddi: &Ddi,
    native_arch: &str,
    roothash: Option<(Designator, &[u8])>,
) -> Result<VerityLayout> {
    use PartitionRole::*;
    if let Some((_, rh)) = roothash {
        if rh.len() < 16 {
            bail!("root hash is {} bytes, at least 16 are needed", rh.len());
        }
    }
    let expect = |d: Designator, r: PartitionRole| -> Option<&[u8]> {
        let (rd, rh) = roothash?;
        if rd != d {
            return None;
        }
        match r {
            Data => Some(&rh[..16]),
            Verity => Some(&rh[rh.len() - 16..]),
            VeritySig => None,
        }
    };
    let get = |d, r| pick(ddi, d, r, native_arch, expect(d, r)).cloned();

    let root = get(Designator::Root, Data);
    let usr = get(Designator::Usr, Data);
    if let (Some(r), Some(u)) = (&root, &usr) {
        if r.arch != u.arch {
            bail!(
                "found root and usr partitions with different architectures ({} vs {}) (EREMOTE)",
                r.arch,
                u.arch
            );
        }
        bail!("the image has both a root and a usr partition; extmerge supports extension images with only one of them");
    }
    if let Some((d, rh)) = roothash {
        let wanted = match d {
            Designator::Root => &root,
            Designator::Usr => &usr,
        };
        if wanted.is_none() || get(d, Verity).is_none() {
            bail!(
                "no {d} data and verity partitions with UUIDs {} and {} matching the root hash (EADDRNOTAVAIL)",
                format_uuid(&first16(rh)),
                format_uuid(&last16(rh))
            );
        }
    }
    let (designator, data) = match (root, usr) {
        (Some(r), _) => (Designator::Root, r),
        (None, Some(u)) => (Designator::Usr, u),
        (None, None) => match ddi.generic.as_slice() {
            [] => bail!("no root or usr partition for x86-64 or arm64 found (ENXIO)"),
            [one] if roothash.is_none() => {
                return Ok(VerityLayout {
                    designator: Designator::Root,
                    data: one.clone(),
                    verity: None,
                    sig: None,
                })
            }
            [_] => bail!(
                "only a generic Linux partition found, but a root hash was given (EADDRNOTAVAIL)"
            ),
            _ => bail!("no root or usr partition, and several generic Linux partitions (ENOTUNIQ)"),
        },
    };
    let verity = get(designator, Verity);
    let sig = verity.as_ref().and_then(|_| get(designator, VeritySig));
    Ok(VerityLayout {
        designator,
        data,
        verity,
        sig,
    })
}

fn first16(b: &[u8]) -> [u8; 16] {
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[..16]);
    u
}

fn last16(b: &[u8]) -> [u8; 16] {
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[b.len() - 16..]);
    u
}

/// `dissected_image_guess_verity_roothash()`: data partition UUID ‖ verity partition UUID, as hex.
pub fn guess_roothash(layout: &VerityLayout) -> Option<String> {
    let verity = layout.verity.as_ref()?;
    let mut rh = Vec::with_capacity(32);
    rh.extend_from_slice(&layout.data.part_uuid);
    rh.extend_from_slice(&verity.part_uuid);
    Some(hex(&rh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::bytes::slice_reader;
    use crate::ondisk::gpt::testing::{disk, write_header, Entry, Layout};

    struct P {
        ty: [u8; 16],
        id: u128,
        first: u64,
        last: u64,
        flags: u64,
        label: &'static str,
    }

    fn p(
        d: Designator,
        r: PartitionRole,
        arch: &str,
        id: u128,
        first: u64,
        label: &'static str,
    ) -> P {
        P {
            ty: type_uuid_for(d, r, arch).unwrap(),
            id,
            first,
            last: first + 7,
            flags: 0,
            label,
        }
    }

    /// A 256 KiB GPT image: header at LBA 1, 128 entries of 128 bytes at LBA 2.
    fn build(sector: usize, parts: &[P]) -> Vec<u8> {
        let entries: Vec<Entry> = parts
            .iter()
            .enumerate()
            .map(|(slot, p)| Entry {
                slot,
                type_uuid: p.ty,
                part_uuid: uuid(p.id),
                first_lba: p.first,
                last_lba: p.last,
                flags: p.flags,
                label: p.label.to_string(),
            })
            .collect();
        disk(&Layout::new(sector), &entries)
    }

    fn parse(img: &[u8]) -> Result<Ddi> {
        parse_ddi(&mut slice_reader(img), img.len() as u64)
    }

    use Designator::*;
    use PartitionRole::*;

    fn sysext(arch: &str, first: u64) -> Vec<P> {
        vec![
            p(Root, Data, arch, 0x11, first, "root"),
            p(Root, Verity, arch, 0x22, first + 8, "root-verity"),
            p(Root, VeritySig, arch, 0x33, first + 16, "sig"),
        ]
    }

    #[test]
    fn parses_both_sector_sizes() {
        for sector in [512usize, 4096] {
            let ddi = parse(&build(sector, &sysext("x86-64", 6))).unwrap();
            assert_eq!(ddi.sector_size as usize, sector);
            assert_eq!(ddi.partitions.len(), 3);
            let v = &ddi.partitions[1];
            assert_eq!(
                (v.role, v.arch, v.offset, v.size),
                (Verity, "x86-64", 14 * sector as u64, 8 * sector as u64)
            );
            assert_eq!(v.type_name(), "root-x86-64-verity");
            assert_eq!(v.part_uuid, uuid(0x22));
        }
    }

    #[test]
    fn corrupt_tables_are_refused() {
        let mut img = build(512, &sysext("x86-64", 6));
        img[512 + 40] ^= 1; // first usable LBA, covered by the header CRC
        let e = parse(&img).unwrap_err().to_string();
        assert!(e.contains("GPT header checksum"), "{e}");
        let mut img = build(512, &sysext("x86-64", 6));
        img[1024 + 60] ^= 1; // a label byte of entry 0
        let e = parse(&img).unwrap_err().to_string();
        assert!(e.contains("entry array checksum"), "{e}");
        let e = parse(&vec![0u8; 65536]).unwrap_err().to_string();
        assert!(e.contains("no GPT"), "{e}");
        let e = parse(&[0u8; 100]).unwrap_err().to_string();
        assert!(e.contains("no GPT"), "{e}");
    }

    /// What the owner of a hostile image sees: the image and the reason; the 4 MiB array the
    /// header declares is neither allocated nor read.
    #[test]
    fn oversized_entry_array_error_names_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.raw");
        let mut img = build(512, &sysext("x86-64", 6));
        let l = Layout {
            count: 1024,
            entry_size: 4096,
            ..Layout::new(512)
        };
        write_header(&mut img, &l);
        std::fs::write(&path, &img).unwrap();
        assert_eq!(
            format!("{:#}", parse_ddi_file(&path).unwrap_err()),
            format!(
                "reading the partition table of {}: GPT header declares an entry array of 1024 × 4096 = 4194304 bytes: refusing (at most 1048576 bytes)",
                path.display()
            )
        );
    }

    #[test]
    fn ambiguous_sector_size_is_refused() {
        let mut img = build(512, &sysext("x86-64", 6));
        let other = build(4096, &[]);
        img[4096..4096 + 92].copy_from_slice(&other[4096..4096 + 92]);
        let e = parse(&img).unwrap_err().to_string();
        assert!(e.contains("ambiguous"), "{e}");
    }

    #[test]
    fn skips_empty_no_auto_and_unknown() {
        let mut parts = sysext("x86-64", 6);
        parts.push(p(Usr, Data, "x86-64", 0x44, 40, "_empty"));
        let mut na = p(Usr, Data, "x86-64", 0x55, 48, "usr");
        na.flags = FLAG_NO_AUTO;
        parts.push(na);
        parts.push(P {
            ty: uuid(0x1234),
            id: 0x66,
            first: 56,
            last: 1 << 40, // unknown types are not range-checked either
            flags: 0,
            label: "esp?",
        });
        let ddi = parse(&build(512, &parts)).unwrap();
        assert_eq!(ddi.partitions.len(), 3);
        assert!(ddi.partitions.iter().all(|p| p.designator == Root));
    }

    #[test]
    fn layout_errors_match_systemd() {
        let e = parse(&build(512, &[p(Root, Verity, "x86-64", 1, 6, "v")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("EADDRNOTAVAIL") && e.contains("without a matching root data"),
            "{e}"
        );
        let parts = [
            p(Root, Data, "x86-64", 1, 6, "r"),
            p(Root, VeritySig, "x86-64", 2, 14, "s"),
        ];
        let e = parse(&build(512, &parts)).unwrap_err().to_string();
        assert!(
            e.contains("EADDRNOTAVAIL") && e.contains("signature"),
            "{e}"
        );
        let mut parts = sysext("x86-64", 6);
        parts.push(p(Usr, Data, "x86-64", 4, 40, "u"));
        parts.push(p(Usr, Verity, "x86-64", 5, 48, "uv"));
        let e = parse(&build(512, &parts)).unwrap_err().to_string();
        assert!(e.contains("ENOTUNIQ"), "{e}");
        let e = parse(&build(
            512,
            &[
                p(Root, Data, "x86-64", 1, 6, "r"),
                p(Root, Data, "x86-64", 2, 2000, "r"),
            ],
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "GPT partition 2 (\"r\") ends beyond the end of the disk (bytes 1024000+4096 of 262144): refusing"
        );
    }

    #[test]
    fn select_prefers_native_arch_then_newest_label() {
        let mut parts = sysext("arm64", 6);
        parts.extend(sysext("x86-64", 30));
        let ddi = parse(&build(512, &parts)).unwrap();
        let l = select(&ddi, "x86-64").unwrap();
        assert_eq!(
            (l.designator, l.data.arch, l.data.offset),
            (Root, "x86-64", 30 * 512)
        );
        assert_eq!(l.sig.as_ref().map(|s| s.arch), Some("x86-64"));
        let l = select(&ddi, "arm64").unwrap();
        assert_eq!(l.data.arch, "arm64");

        let parts = [
            p(Usr, Data, "x86-64", 1, 6, "usr_1.9"),
            p(Usr, Data, "x86-64", 2, 14, "usr_1.10"),
            p(Usr, Data, "x86-64", 3, 22, "usr_1.10"),
        ];
        let l = select(&parse(&build(512, &parts)).unwrap(), "x86-64").unwrap();
        assert_eq!(
            (l.designator, l.data.label.as_str(), l.data.part_uuid),
            (Usr, "usr_1.10", uuid(2))
        );
        assert!(l.verity.is_none() && l.sig.is_none() && guess_roothash(&l).is_none());
    }

    #[test]
    fn guess_and_roothash_filter() {
        let parts = [
            p(Root, Data, "x86-64", 0xaa, 6, "r1"),
            p(Root, Data, "x86-64", 0xbb, 14, "r2"),
            p(Root, Verity, "x86-64", 0xcc, 22, "v1"),
            p(Root, Verity, "x86-64", 0xdd, 30, "v2"),
        ];
        let ddi = parse(&build(512, &parts)).unwrap();
        let l = select(&ddi, "x86-64").unwrap();
        let expect = format!("{}{}", hex(&uuid(0xbb)), hex(&uuid(0xdd)));
        assert_eq!(guess_roothash(&l), Some(expect));
        let mut rh = uuid(0xaa).to_vec();
        rh.extend_from_slice(&uuid(0xcc));
        let l = select_for_roothash(&ddi, "x86-64", Some((Root, &rh))).unwrap();
        assert_eq!(
            (l.data.part_uuid, l.verity.unwrap().part_uuid),
            (uuid(0xaa), uuid(0xcc))
        );
        rh[0] = 0xff;
        let e = select_for_roothash(&ddi, "x86-64", Some((Root, &rh)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("EADDRNOTAVAIL"), "{e}");
    }

    #[test]
    fn generic_partition_is_root_only_when_alone() {
        let generic = P {
            ty: GPT_LINUX_GENERIC,
            id: 7,
            first: 6,
            last: 13,
            flags: 0,
            label: "linux",
        };
        let ddi = parse(&build(512, &[generic])).unwrap();
        let l = select(&ddi, "x86-64").unwrap();
        assert_eq!(
            (l.designator, l.data.type_name()),
            (Root, "linux-generic".to_string())
        );
        let e = select(&parse(&build(512, &[])).unwrap(), "x86-64")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ENXIO"), "{e}");
    }

    #[test]
    fn uuid_formatting() {
        let t = type_uuid_for(Root, Data, "x86-64").unwrap();
        assert_eq!(format_uuid(&t), "4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
        assert_eq!(
            format_uuid(&GPT_LINUX_GENERIC),
            "0fc63daf-8483-4772-8e79-3d69d8477de4"
        );
    }
}
