//! Fuzz the mountinfo parser and the sub-mount walk on its result: no panic, no hang, and
//! every sub-mount found lies below the prefix asked for.
#![no_main]

use std::path::Path;

use extmerge::ondisk::mountinfo::{parse_mountinfo, visible_submounts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = parse_mountinfo(data) else {
        return;
    };
    // The root and a few mount points as prefixes: the walk is quadratic in the table.
    let prefixes = table.iter().take(8).map(|m| m.mount_point.as_path());
    for prefix in std::iter::once(Path::new("/")).chain(prefixes) {
        for m in visible_submounts(&table, prefix) {
            assert!(m.mount_point.starts_with(prefix) && m.mount_point != prefix);
        }
    }
});
