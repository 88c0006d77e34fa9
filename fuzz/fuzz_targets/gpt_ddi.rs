//! Fuzz the GPT reader (`ondisk::gpt`) and the DDI layer on it (`image::ddi`) on arbitrary
//! disk contents. Each input is parsed as it is and once more with its header and entry-array
//! CRCs made valid, so the fuzzer reaches the checks behind the CRCs (entry size, count,
//! array bounds, partition ranges) instead of stopping at the checksum.
//!
//! Invariants beyond "no panic": nothing beyond the end of the disk is ever read, and one
//! table read never reads more than the 8 KiB probe plus the 1 MiB entry-array cap.
#![no_main]

use extmerge::image::ddi;
use extmerge::ondisk::bytes::slice_reader;
use extmerge::ondisk::gpt::{self, crc32, MAX_ARRAY_BYTES, PROBE_BYTES, SECTOR_SIZES};
use libfuzzer_sys::fuzz_target;

/// A reader over `disk` that fails the run on a read past the end or over the budget.
fn strict(disk: &[u8]) -> impl FnMut(u64, &mut [u8]) -> std::io::Result<()> + '_ {
    let size = disk.len() as u64;
    let budget = PROBE_BYTES as u64 + MAX_ARRAY_BYTES;
    let mut total = 0u64;
    let mut inner = slice_reader(disk);
    move |off, buf| {
        let len = buf.len() as u64;
        assert!(
            off.checked_add(len).is_some_and(|end| end <= size),
            "read of {len} bytes at {off} beyond the {size} byte disk"
        );
        total += len;
        assert!(total <= budget, "read {total} bytes for one table");
        inner(off, buf)
    }
}

/// The input with valid CRCs for the first header found (array CRC only when the declared
/// array is on the disk and within the cap, as the reader needs it).
fn with_valid_crcs(data: &[u8]) -> Option<Vec<u8>> {
    let mut img = data.to_vec();
    let sector = SECTOR_SIZES
        .into_iter()
        .find(|&s| img.get(s as usize..s as usize + 8) == Some(b"EFI PART"))?
        as usize;
    let h = sector;
    let field = |img: &[u8], at: usize, n: usize| -> Option<u64> {
        let b = img.get(h + at..h + at + n)?;
        Some(b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
    };
    let header_size = (field(&img, 12, 4)? as usize).clamp(92, sector);
    let (lba, count, esize) = (
        field(&img, 72, 8)?,
        field(&img, 80, 4)?,
        field(&img, 84, 4)?,
    );
    let len = count.checked_mul(esize).filter(|l| *l <= MAX_ARRAY_BYTES)?;
    if let Some(array) = lba
        .checked_mul(sector as u64)
        .and_then(|off| img.get(off as usize..off.checked_add(len)? as usize))
    {
        let crc = crc32(array);
        img.get_mut(h + 88..h + 92)?
            .copy_from_slice(&crc.to_le_bytes());
    }
    img.get_mut(h + 16..h + 20)?.fill(0);
    let crc = crc32(img.get(h..h + header_size)?);
    img[h + 16..h + 20].copy_from_slice(&crc.to_le_bytes());
    Some(img)
}

fn check(disk: &[u8]) {
    let size = disk.len() as u64;
    for sector in [None, Some(512), Some(4096)] {
        let Ok(t) = gpt::read_gpt(&mut strict(disk), size, sector) else {
            continue;
        };
        let h = &t.header;
        assert!(h.entry_size >= 128 && h.entry_size.is_power_of_two());
        assert!((1..=gpt::MAX_ENTRIES).contains(&h.entry_count));
        assert!(h.array_len() <= MAX_ARRAY_BYTES && h.array_offset() + h.array_len() <= size);
        for p in &t.partitions {
            assert!(p.number >= 1 && p.number <= h.entry_count);
            if let Ok((off, len)) = p.byte_range(h.sector_size, size) {
                assert!(off + len <= size);
            }
        }
    }
    if let Ok(d) = ddi::parse_ddi(&mut strict(disk), size) {
        for p in d.partitions.iter().chain(&d.generic) {
            assert!(
                p.offset + p.size <= size,
                "partition beyond the disk accepted"
            );
        }
        for arch in ["x86-64", "arm64"] {
            if let Ok(layout) = ddi::select(&d, arch) {
                let _ = ddi::guess_roothash(&layout);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = with_valid_crcs(data) {
        check(&fixed);
    }
});
