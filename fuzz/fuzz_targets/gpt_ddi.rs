//! Fuzz the GPT / Discoverable Disk Image parser on arbitrary disk contents.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut read_at = |off: u64, buf: &mut [u8]| -> std::io::Result<()> {
        let start = usize::try_from(off).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let end = start.checked_add(buf.len()).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let src = data.get(start..end).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    };
    if let Ok(ddi) = extmerge::image::ddi::parse_ddi(&mut read_at, data.len() as u64) {
        if let Ok(layout) = extmerge::image::ddi::select(&ddi, "x86-64") {
            let _ = extmerge::image::ddi::guess_roothash(&layout);
        }
    }
});
