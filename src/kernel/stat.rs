//! What `statx` and `name_to_handle_at` say about one inode, by fd: the weak identifiers systemd
//! records for an image (unique mount ID, file handle, birth and modification time).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::{AtFlags, StatxFlags};

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8); rustix has no name for it yet.
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
/// `AT_HANDLE_FID` (Linux 6.5): a handle that identifies, even where it cannot be opened.
const AT_HANDLE_FID: i32 = 0x200;
/// `MAX_HANDLE_SZ` from <linux/exportfs.h>.
const MAX_HANDLE_SZ: usize = 128;

/// A `statx` timestamp in µs since the epoch (negative times clamp to 0).
pub fn usec(sec: i64, nsec: u32) -> u64 {
    (sec.max(0) as u64) * 1_000_000 + u64::from(nsec) / 1000
}

/// The fields of `statx` systemd's image identity uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Unique mount ID (6.8+), else the legacy one, else 0.
    pub mount_id: u64,
    /// Inode number.
    pub inode: u64,
    /// Birth time in µs, 0 where the file system does not record it.
    pub btime_us: u64,
    /// Modification time in µs.
    pub mtime_us: u64,
}

/// `statx(fd, "", AT_EMPTY_PATH)` for the identity fields.
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<Identity> {
    let mask = StatxFlags::BASIC_STATS
        | StatxFlags::BTIME
        | StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE);
    let stx = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, mask)?;
    let mount_id = if stx.stx_mask & (STATX_MNT_ID_UNIQUE | StatxFlags::MNT_ID.bits()) != 0 {
        stx.stx_mnt_id
    } else {
        0
    };
    let btime_us = if stx.stx_mask & StatxFlags::BTIME.bits() != 0 {
        usec(stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec)
    } else {
        0
    };
    Ok(Identity {
        mount_id,
        inode: stx.stx_ino,
        btime_us,
        mtime_us: usec(stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec),
    })
}

/// `name_to_handle_at(fd, "", AT_EMPTY_PATH | AT_HANDLE_FID)`: (handle type, handle bytes), or
/// `None` where the file system has no handles.
pub fn file_handle(fd: BorrowedFd<'_>) -> Option<(i32, Vec<u8>)> {
    // struct file_handle { unsigned int handle_bytes; int handle_type; unsigned char f_handle[]; }
    let mut buf = vec![0u8; 8 + MAX_HANDLE_SZ];
    buf[..4].copy_from_slice(&(MAX_HANDLE_SZ as u32).to_ne_bytes());
    let mut mnt_id: libc::c_int = 0;
    // SAFETY: `buf` is a correctly sized struct file_handle with handle_bytes set, `mnt_id` a
    // valid out pointer, the path a NUL-terminated empty string; the kernel writes within them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr(),
            &mut mnt_id as *mut libc::c_int,
            AT_HANDLE_FID | libc::AT_EMPTY_PATH,
        )
    };
    if r != 0 {
        return None;
    }
    let bytes = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let ty = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some((ty, buf[8..8 + bytes.min(MAX_HANDLE_SZ)].to_vec()))
}
