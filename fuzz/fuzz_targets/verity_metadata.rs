//! Fuzz the verity superblock, root hash text and verity-sig partition JSON parsers, and the
//! bounded readers on them: once `read_superblock()` accepted a superblock for a hash and a
//! data device, checking the tree never reads beyond either device.
#![no_main]

use extmerge::ondisk::bytes::slice_reader;
use extmerge::ondisk::{signature, verity};
use libfuzzer_sys::fuzz_target;

/// A reader over `dev` that fails the run on a read past its end.
fn strict(dev: &[u8]) -> impl FnMut(u64, &mut [u8]) -> std::io::Result<()> + '_ {
    let mut inner = slice_reader(dev);
    move |off, buf| {
        let end = off.checked_add(buf.len() as u64);
        assert!(
            end.is_some_and(|e| e <= dev.len() as u64),
            "read of {} bytes at {off} beyond the {} byte device",
            buf.len(),
            dev.len()
        );
        inner(off, buf)
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(sb) = verity::parse_superblock(data) {
        let _ = verity::geometry(&sb, 0);
    }
    let _ = verity::parse_roothash(&String::from_utf8_lossy(data));
    let _ = signature::parse_verity_sig(data);
    let n = data.len() as u64;
    let _ = signature::read_verity_sig(&mut strict(data), n / 4, n - n / 4, n);

    // The input is the hash device; the data device is the input again (any bytes will do:
    // the point is which reads happen, not whether the hashes match).
    if let Ok((sb, g)) = verity::read_superblock(&mut strict(data), 0, n, n) {
        let root = vec![0u8; g.digest_size];
        let _ = verity::check_root_hash(&mut strict(data), &mut strict(data), &sb, 0, &root);
        let _ = verity::verify_all(&mut strict(data), &mut strict(data), &sb, 0, &root);
    }
});
