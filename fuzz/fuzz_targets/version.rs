//! Fuzz `strverscmp_improved`: it must be a consistent order (reflexive, antisymmetric), since
//! vpick and DDI partition selection sort by it.
#![no_main]

use std::cmp::Ordering;

use extmerge::ondisk::version::strverscmp_improved;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    assert_eq!(strverscmp_improved(a, a), Ordering::Equal);
    assert_eq!(
        strverscmp_improved(a, b),
        strverscmp_improved(b, a).reverse(),
        "{a:?} {b:?}"
    );
});
