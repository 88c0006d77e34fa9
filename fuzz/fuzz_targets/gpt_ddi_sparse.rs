//! Fuzz the GPT / DDI parser on images much larger than the input, as a sparse file is: the first
//! 8 bytes give the image size (little endian), the rest is the image's beginning, and everything
//! after it reads as zeros. A header may then claim a partition-entry array of gigabytes that
//! still lies inside the image; the parser must refuse it from the header alone.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The largest read a GPT ever needs: 1024 entries (the parser's own limit) of 4096 bytes (a
/// generous bound on the entry size; the spec's entries are 128 bytes). A larger read means an
/// entry array sized by an untrusted header was allocated and read.
const MAX_READ: usize = 1024 * 4096;

fuzz_target!(|data: &[u8]| {
    let Some((size, head)) = data.split_first_chunk::<8>() else {
        return;
    };
    let size = u64::from_le_bytes(*size);
    let mut read_at = |off: u64, buf: &mut [u8]| -> std::io::Result<()> {
        assert!(
            buf.len() <= MAX_READ,
            "parse_ddi read {} bytes at offset {off} of a {size}-byte image: an entry array that \
             large must be refused before it is allocated or read",
            buf.len()
        );
        let end = off
            .checked_add(buf.len() as u64)
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        if end > size {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.fill(0);
        if let Ok(start) = usize::try_from(off) {
            if let Some(src) = head.get(start..) {
                let n = src.len().min(buf.len());
                buf[..n].copy_from_slice(&src[..n]);
            }
        }
        Ok(())
    };
    if let Ok(ddi) = extmerge::image::ddi::parse_ddi(&mut read_at, size) {
        if let Ok(layout) = extmerge::image::ddi::select(&ddi, "x86-64") {
            let _ = extmerge::image::ddi::guess_roothash(&layout);
        }
    }
});
