//! Fuzz the superblock prober: type, label, UUID and declared size from the same head bytes.
//! Each input is probed as it is and placed at each superblock offset of a zeroed head (byte 0
//! picks the offset), so small inputs reach the ext4, erofs, btrfs and GPT fields too.
#![no_main]

use extmerge::ondisk::gpt;
use extmerge::ondisk::superblock::{self, Probed, HEAD_LEN};
use libfuzzer_sys::fuzz_target;

const OFFSETS: [usize; 7] = [0, 512, 1024, 2048, 4096, 0x10000, 0x10100];

fn check(head: &[u8]) {
    let sb = superblock::probe(head);
    assert_eq!(sb.kind, superblock::probe_bytes(head));
    match sb.kind {
        Probed::Filesystem(fs) => {
            assert_eq!(sb.declared_size, superblock::declared_size(head, fs));
            let _ = superblock::check_declared_size(head, fs, head.len() as u64, "fuzz");
        }
        Probed::Gpt { .. } | Probed::Unknown => {
            assert_eq!((&sb.label, sb.uuid, sb.declared_size), (&None, None, None));
        }
    }
    if let Some(var) = extmerge::initrd::var::probe_superblock(head) {
        assert!(matches!(sb.kind, Probed::Filesystem(_)));
        assert_eq!(var.label, sb.label);
    }
    let _ = gpt::probe_sector_size(head);
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some((&pick, rest)) = data.split_first() {
        let at = OFFSETS[usize::from(pick) % OFFSETS.len()];
        let mut head = vec![0u8; HEAD_LEN];
        let n = rest.len().min(HEAD_LEN - at);
        head[at..at + n].copy_from_slice(&rest[..n]);
        check(&head);
    }
});
