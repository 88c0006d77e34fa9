//! Fuzz the kernel command line parser and the settings read from it: no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let params = extmerge::initrd::cmdline::parse(&text);
    for in_initrd in [false, true] {
        let _ = extmerge::initrd::cmdline::get(&params, "extmerge.check_conflicts", in_initrd);
        let _ = extmerge::initrd::var::spec_from_cmdline(&params, in_initrd);
        let _ = extmerge::initrd::var::var_from_cmdline(&params, in_initrd);
        let _ = extmerge::initrd::var::timeout_from_cmdline(&params, in_initrd);
        for class in extmerge::class::ImageClass::MERGE_ORDER {
            let _ = extmerge::settings::switches::kill_switch(&params, class, in_initrd);
        }
    }
});
