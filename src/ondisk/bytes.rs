//! Small byte helpers shared by the format readers, and the `read_at` seam they read through.

/// Block reader: fill the buffer from this byte offset of a device, partition or file
/// (`FileExt::read_exact_at` semantics: a short read is an error).
pub type ReadAt<'a> = &'a mut dyn FnMut(u64, &mut [u8]) -> std::io::Result<()>;

/// A `read_at` over bytes in memory (tests and fuzzers): reads past the end fail like a
/// file's `read_exact_at` does (`UnexpectedEof`).
pub fn slice_reader(data: &[u8]) -> impl FnMut(u64, &mut [u8]) -> std::io::Result<()> + '_ {
    move |off, buf| {
        let src = usize::try_from(off)
            .ok()
            .and_then(|start| data.get(start..start.checked_add(buf.len())?))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` of a UUID whose bytes are in printed order.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h = hex(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Little-endian u16 at `off`, `None` past the end.
pub fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Little-endian u32 at `off`, `None` past the end.
pub fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Little-endian u64 at `off`, `None` past the end.
pub fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_little_endian_reads() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(le16(&b, 0), Some(0x0201));
        assert_eq!(le32(&b, 4), Some(0x0807_0605));
        assert_eq!(le64(&b, 0), Some(0x0807_0605_0403_0201));
        assert_eq!(le32(&b, 5), None);
        assert_eq!(le64(&b, usize::MAX), None);
    }

    #[test]
    fn uuid_text_and_slice_reader() {
        let u: [u8; 16] = core::array::from_fn(|i| i as u8 * 0x11);
        assert_eq!(format_uuid(&u), "00112233-4455-6677-8899-aabbccddeeff");
        let data = [1u8, 2, 3, 4];
        let mut read = slice_reader(&data);
        let mut buf = [0u8; 2];
        read(2, &mut buf).unwrap();
        assert_eq!(buf, [3, 4]);
        let e = read(3, &mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(read(u64::MAX, &mut buf).is_err());
    }
}
