//! The content identity of an image file or block device without reading its content: the
//! boot path must not hash gigabytes (a sparse 100 GiB image took a minute). What is used, and
//! why it cannot miss a change:
//!
//! * a **verity** image: its root hash (the kernel checks every block against it);
//! * a **regular file**: `dev:ino:size:mtime:ctime:btime`. Any write updates the ctime, which no
//!   unprivileged call can set back (only a change of the system clock can), and a new file in
//!   its place has another inode or birth time. A file changed within [`RACY_WINDOW`](crate::gather::identity::RACY_WINDOW) of now
//!   could still be written again within the same clock tick without a new ctime (git's "racily
//!   clean" files): it is waited for until it has been still for that long, then looked at again
//!   (a file that keeps changing is recorded as unsettled: never equal, so the next refresh
//!   looks again);
//! * a **block device**: its number, size and the sha256 of its first 64 KiB. Device nodes have
//!   no content times; the head holds the file system's superblock, which mkfs rewrites and
//!   writable file systems (ext4, btrfs) update on every mount for writing.

use crate::gather::identity::{settle, Look, Strong};
use crate::image::ImageFile;
use crate::ondisk::bytes::hex;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// How much of a block device is hashed.
const DEVICE_HEAD: u64 = 64 << 10;

fn ns(sec: i64, nsec: i64) -> i128 {
    i128::from(sec) * 1_000_000_000 + i128::from(nsec)
}

/// The identity of `img` (not verity-protected: see the module documentation).
pub fn of(img: &ImageFile) -> Result<Strong> {
    if img.is_block() {
        let st = &img.found.stat;
        let mut head = vec![0u8; DEVICE_HEAD.min(img.size) as usize];
        img.read_exact_at(&mut head, 0)
            .with_context(|| format!("reading the head of {}", img.shown.display()))?;
        return Ok(Strong::DeviceHead(format!(
            "{}:{}:{}",
            st.st_rdev,
            img.size,
            hex(&Sha256::digest(&head))
        )));
    }
    let fd = std::os::fd::AsFd::as_fd(&img.found.fd);
    let look = || -> Result<Look> {
        let st = rustix::fs::fstat(fd).with_context(|| format!("stat {}", img.shown.display()))?;
        let id = crate::kernel::stat::identity(fd)
            .with_context(|| format!("statx {}", img.shown.display()))?;
        let ctime = ns(st.st_ctime, st.st_ctime_nsec as i64);
        let key = format!(
            "{}:{}:{}:{}:{}:{}",
            st.st_dev,
            st.st_ino,
            st.st_size,
            ns(st.st_mtime, st.st_mtime_nsec as i64),
            ctime,
            id.btime_us
        );
        Ok(Look {
            key,
            changed_ns: ctime,
        })
    };
    Ok(match settle(&img.shown, look)? {
        Ok(key) => Strong::FileStat(key),
        Err(unsettled) => Strong::Unsettled(unsettled),
    })
}
