//! Fuzz the unit-file reader (systemd's config_parse rules) and the `[Mount]` interpretation
//! of `var.mount` on its result: no panic, no hang, assignments in line order with stripped,
//! non-empty keys.
#![no_main]

use extmerge::initrd::var::MountSettings;
use extmerge::ondisk::unitfile::parse_unit_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parse_unit_file(data) else {
        return;
    };
    for pair in file.assignments.windows(2) {
        assert!(pair[0].line <= pair[1].line, "assignments out of line order");
    }
    // systemd's WHITESPACE, not Unicode's: a no-break space is part of a key.
    let ws = [' ', '\t', '\n', '\r'];
    for a in &file.assignments {
        assert!(!a.key.is_empty());
        assert_eq!(a.key.trim_matches(ws), a.key, "key not stripped");
        assert_eq!(a.value.trim_matches(ws), a.value, "value not stripped");
    }
    let mut settings = MountSettings::default();
    let mut warnings = Vec::new();
    if settings.apply(&file, "fuzz", &mut warnings).is_ok() {
        let _ = settings.verify("fuzz");
    }
});
