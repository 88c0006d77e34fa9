//! Fuzz the sysext.conf / confext.conf parser for both sections: any text, no panic,
//! no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for section in ["SysExt", "ConfExt"] {
        let _ = extmerge::settings::parse_config_text(&text, section);
    }
});
