//! Small byte helpers shared by the format readers.

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
}
