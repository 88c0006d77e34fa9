//! systemd's weak identifiers of an image ([`WeakId`]) exactly as `image_make()`
//! (`src/shared/discover-image.c`, 262) records them, so the booted system's refresh computes
//! the same record: by image type, the birth time (`fd_getcrtime()`) and modification time.

use crate::decide::origin::WeakId;
use crate::gather::discover::ImageKind;
use crate::kernel::stat;
use std::os::fd::BorrowedFd;

/// `USEC_INFINITY`.
const USEC_INFINITY: u64 = u64::MAX;

/// systemd's `timespec_load()` (`src/basic/time-util.c`): µs, or `USEC_INFINITY` for a negative
/// time or one beyond `u64` µs.
pub fn timespec_load((sec, nsec): (i64, u32)) -> u64 {
    let Ok(sec) = u64::try_from(sec) else {
        return USEC_INFINITY;
    };
    let sub = u64::from(nsec) / 1000;
    if sec > (u64::MAX - sub) / 1_000_000 {
        return USEC_INFINITY;
    }
    sec * 1_000_000 + sub
}

/// systemd's `getcrtime_at()` (`src/basic/xattr-util.c`) as `image_make()` uses it through
/// `fd_getcrtime()` (a failure leaves the recorded crtime 0):
///
/// * statx's birth time counts only when reported and its seconds are not 0;
/// * the `user.crtime_usec` xattr counts when it is 8 bytes and `timestamp_is_set()` (neither
///   0 nor `USEC_INFINITY`, `parse_crtime()`), little endian;
/// * both: the older; one: that one; neither: 0.
pub fn crtime_of(btime: Option<(i64, u32)>, xattr: Option<&[u8]>) -> u64 {
    let a = match btime {
        Some((sec, nsec)) if sec != 0 => timespec_load((sec, nsec)),
        _ => USEC_INFINITY,
    };
    let b = xattr
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(u64::from_le_bytes)
        .filter(|u| *u != 0 && *u != USEC_INFINITY);
    match b {
        Some(b) => a.min(b),
        None if a != USEC_INFINITY => a,
        None => 0,
    }
}

/// A btrfs subvolume time as `btrfs_subvol_get_info_fd()` loads it (`sec * USEC_PER_SEC +
/// nsec / NSEC_PER_USEC` in unsigned 64-bit arithmetic).
fn subvol_usec((sec, nsec): (u64, u32)) -> u64 {
    sec.wrapping_mul(1_000_000)
        .wrapping_add(u64::from(nsec) / 1000)
}

/// systemd's weak identifiers of the inode `fd` refers to (an image found as `kind`).
///
/// `image_make()` by type: a block device records crtime and mtime 0; a btrfs subvolume its
/// root item's otime and ctime; a plain directory `fd_getcrtime()` and mtime 0 (the top
/// directory's mtime says nothing about the tree); a raw image `fd_getcrtime()` and its mtime.
pub fn weak_id_of(fd: BorrowedFd<'_>, kind: ImageKind) -> std::io::Result<WeakId> {
    let id = stat::identity(fd)?;
    let crtime = || crtime_of(id.btime, stat::crtime_xattr(fd).as_deref());
    let (crtime, mtime) = match kind {
        ImageKind::Block => (0, 0),
        ImageKind::Directory => match stat::btrfs_subvolume_times(fd, id.inode)? {
            Some(t) => (subvol_usec(t.otime), subvol_usec(t.ctime)),
            None => (crtime(), 0),
        },
        ImageKind::Raw => (crtime(), timespec_load(id.mtime)),
    };
    Ok(WeakId {
        on_mount_id: id.mount_id,
        file_handle: stat::file_handle(fd),
        inode: id.inode,
        crtime,
        mtime,
    })
}

#[cfg(test)]
mod tests;
