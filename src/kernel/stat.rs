//! What `statx` and `name_to_handle_at` say about one inode, by fd: the weak identifiers systemd
//! records for an image (unique mount ID, file handle, birth and modification time), and the
//! two other sources of those times systemd reads (`user.crtime_usec`, btrfs subvolume times).

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
    /// Birth time as `(seconds, nanoseconds)`, `None` without `STATX_BTIME`.
    pub btime: Option<(i64, u32)>,
    /// Modification time as `(seconds, nanoseconds)`.
    pub mtime: (i64, u32),
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
    let btime = (stx.stx_mask & StatxFlags::BTIME.bits() != 0)
        .then_some((stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec));
    let mtime = (stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec);
    Ok(Identity {
        mount_id,
        inode: stx.stx_ino,
        btime_us: btime.map_or(0, |(s, n)| usec(s, n)),
        mtime_us: usec(mtime.0, mtime.1),
        btime,
        mtime,
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

/// The `user.crtime_usec` xattr systemd keeps a birth time in (`fd_setcrtime()`), read through
/// the fd's magic link as systemd does for `O_PATH` fds; `None` when absent or unreadable (a
/// value longer than 64 bytes is unreadable here and invalid to systemd alike).
pub fn crtime_xattr(fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    let path = crate::kernel::root::proc_fd_path(fd);
    let n = rustix::fs::getxattr(&path, "user.crtime_usec", &mut buf[..]).ok()?;
    Some(buf[..n].to_vec())
}

/// `BTRFS_SUPER_MAGIC` from <linux/magic.h>.
const BTRFS_SUPER_MAGIC: u32 = 0x9123_683E;
/// `BTRFS_FIRST_FREE_OBJECTID`: the inode number of every subvolume's root directory.
const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;
/// `BTRFS_IOC_GET_SUBVOL_INFO` = `_IOR(0x94, 60, struct btrfs_ioctl_get_subvol_info_args)`.
const BTRFS_IOC_GET_SUBVOL_INFO: rustix::ioctl::Opcode = 0x81F8_943C;
/// `sizeof(struct btrfs_ioctl_get_subvol_info_args)`, and where its `ctime` and `otime`
/// (`struct btrfs_ioctl_timespec { __u64 sec; __u32 nsec; }`) are.
const SUBVOL_INFO_SIZE: usize = 504;
const SUBVOL_CTIME_AT: usize = 376;
const SUBVOL_OTIME_AT: usize = 392;

/// A btrfs subvolume's creation (`otime`) and change (`ctime`) time, as `(seconds,
/// nanoseconds)` of its root item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubvolTimes {
    /// When the subvolume was created.
    pub otime: (u64, u32),
    /// When its root item last changed.
    pub ctime: (u64, u32),
}

fn timespec_at(b: &[u8; SUBVOL_INFO_SIZE], at: usize) -> (u64, u32) {
    let mut sec = [0u8; 8];
    let mut nsec = [0u8; 4];
    sec.copy_from_slice(&b[at..at + 8]);
    nsec.copy_from_slice(&b[at + 8..at + 12]);
    (u64::from_ne_bytes(sec), u32::from_ne_bytes(nsec))
}

/// The times of the btrfs subvolume whose root directory `fd` is (inode `inode`), `None` when
/// it is not one: systemd's `btrfs_might_be_subvol()` (inode 256) plus `fd_is_fs_type(fd,
/// BTRFS_SUPER_MAGIC)`. The root item's times come from `BTRFS_IOC_GET_SUBVOL_INFO`, which
/// reads the same item systemd's tree search does and needs no privilege.
pub fn btrfs_subvolume_times(fd: BorrowedFd<'_>, inode: u64) -> io::Result<Option<SubvolTimes>> {
    if inode != BTRFS_FIRST_FREE_OBJECTID {
        return Ok(None);
    }
    let fs = rustix::fs::fstatfs(fd)?;
    // f_type is a signed word whose width differs between architectures: the magic is 32 bits.
    #[allow(clippy::unnecessary_cast)]
    if fs.f_type as u32 != BTRFS_SUPER_MAGIC {
        return Ok(None);
    }
    let dir = crate::kernel::root::reopen_dir(fd)?;
    // SAFETY: the opcode's size is that of the array, which the kernel fills completely.
    let info = unsafe {
        rustix::ioctl::ioctl(
            &dir,
            rustix::ioctl::Getter::<BTRFS_IOC_GET_SUBVOL_INFO, [u8; SUBVOL_INFO_SIZE]>::new(),
        )
    }?;
    Ok(Some(SubvolTimes {
        otime: timespec_at(&info, SUBVOL_OTIME_AT),
        ctime: timespec_at(&info, SUBVOL_CTIME_AT),
    }))
}
