//! Fuzz Flatcar's enabled-sysext.conf parsing: the first half of the input is the vendor file,
//! the second half the user's.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mid = text.char_indices().nth(text.chars().count() / 2).map(|(i, _)| i).unwrap_or(0);
    let (vendor, user) = text.split_at(mid);
    let _ = extmerge::initrd::flatcar::parse_enabled(&text);
    let set = extmerge::initrd::flatcar::enabled_set(vendor, user);
    // Every enabled name must come from one of the files.
    for name in set {
        assert!(vendor.contains(&name) || user.contains(&name), "{name} from nowhere");
    }
});
