//! Fuzz the os-release / extension-release parser: any bytes, no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = extmerge::decide::release::parse_env_bytes(data);
});
