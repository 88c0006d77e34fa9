//! Fuzz the fstab reader (glibc getmntent rules) and the fstab option tests: no panic, no
//! hang, entries in line order, and the option tests answer only with names asked for.
#![no_main]

use extmerge::ondisk::fstab::{last_option, parse_fstab, test_option, yes_no_option};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let entries = parse_fstab(data);
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    for pair in entries.windows(2) {
        assert!(pair[0].line < pair[1].line, "entries out of line order");
    }
    for e in &entries {
        assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
        assert!(!e.fsname.is_empty(), "an entry without a first field");
        let names = ["noauto", "auto", "x-systemd.automount"];
        if let Some(found) = last_option(&e.options, &names) {
            assert!(names.contains(&found));
            assert!(test_option(&e.options, &[found]));
        }
        let _ = yes_no_option(&e.options, "nofail", "fail");
    }
    // The option tests on the raw input, too (commas, backslashes anywhere).
    let _ = last_option(data, &["noauto", "auto"]);
});
