//! Fuzz the verity superblock, root hash text and verity-sig partition JSON parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sb) = extmerge::ondisk::verity::parse_superblock(data) {
        let _ = extmerge::ondisk::verity::geometry(&sb, 0);
    }
    let _ = extmerge::ondisk::verity::parse_roothash(&String::from_utf8_lossy(data));
    let _ = extmerge::ondisk::signature::parse_verity_sig(data);
});
