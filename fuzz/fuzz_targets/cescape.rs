//! Fuzz systemd-compatible C escaping: `cunescape(cescape(x)) == x` for any bytes without NUL
//! (the meta file `work_dir` is written with one and read back with the other; `cunescape`
//! refuses `\000` as systemd does), and `cunescape` of any text never panics.
#![no_main]

use extmerge::ondisk::cescape::{cescape, cunescape};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let escaped = cescape(data);
    assert!(
        escaped.bytes().all(|b| (b' '..127).contains(&b)),
        "{escaped:?}"
    );
    if data.contains(&0) {
        assert!(
            cunescape(&escaped).is_err(),
            "NUL must not round-trip: {escaped:?}"
        );
    } else {
        assert_eq!(cunescape(&escaped).as_deref(), Ok(data));
    }
    let _ = cunescape(&String::from_utf8_lossy(data));
});
