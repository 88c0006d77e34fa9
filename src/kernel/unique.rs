//! Bytes that make a name or a key unique, without waiting: early in boot the kernel's entropy
//! pool is not ready, and a plain `getrandom` blocks until it is (1.1 s in the QEMU guest,
//! issue 17). Uniqueness within a boot is what the callers need, not secrecy.

use std::sync::atomic::{AtomicU64, Ordering};

/// 8 bytes that differ from call to call: `getrandom(GRND_INSECURE)` (never blocks, Linux 5.6),
/// else the clock, the pid and a counter.
pub fn unique_bytes() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    let flags = rustix::rand::GetRandomFlags::INSECURE;
    if matches!(rustix::rand::getrandom(&mut bytes, flags), Ok(8)) {
        return bytes;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let pid = u64::from(
        rustix::process::getpid()
            .as_raw_nonzero()
            .get()
            .unsigned_abs(),
    );
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (now ^ pid.rotate_left(40) ^ n.rotate_left(20)).to_le_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn successive_calls_differ() {
        let a = super::unique_bytes();
        let b = super::unique_bytes();
        assert_ne!(a, b);
    }
}
