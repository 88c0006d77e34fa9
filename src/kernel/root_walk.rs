//! Inspecting one directory entry by fd, for tree walks (`gather::walk`): `statx` relative to
//! the parent directory, opening a subdirectory or file without following links and checking it
//! is the inode that was inspected, link targets, extended attributes and directory entries.
//!
//! Nothing here takes a path longer than one name, so trees deeper than `PATH_MAX` are no
//! different from shallow ones, and a symlink is never followed: an entry is opened with
//! `O_NOFOLLOW` and compared with what `statx` saw, so a rename or a link swapped in between
//! the two is an error rather than a step outside the tree.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxAttributes, StatxFlags};
use rustix::io::Errno;

use super::root::{proc_fd_path, Root};

/// The largest list of xattr names and the largest xattr value the kernel hands out
/// (`XATTR_LIST_MAX`, `XATTR_SIZE_MAX`): buffers this big never see `ERANGE`.
pub const XATTR_MAX: usize = 65536;

/// `PATH_MAX`: the kernel refuses longer link targets.
const LINK_MAX: usize = 4096;

/// Bytes read from the kernel per `getdents64` call.
const DIRENT_BUF: usize = 32 << 10;

/// What `statx` says about one entry (not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryStat {
    /// `st_dev` as `makedev(major, minor)`.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Device number of a character or block device: (major, minor).
    pub rdev: (u32, u32),
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, u32),
    /// Status change time (seconds, nanoseconds).
    pub ctime: (i64, u32),
    /// `STATX_ATTR_MOUNT_ROOT` where the kernel reports it (5.8+).
    mount_root: Option<bool>,
    /// Mount ID where the kernel reports it (5.8+).
    mnt_id: Option<u64>,
}

impl EntryStat {
    fn from_statx(s: &rustix::fs::Statx) -> EntryStat {
        let known = |f: StatxFlags| StatxFlags::from_bits_retain(s.stx_mask).contains(f);
        EntryStat {
            dev: rustix::fs::makedev(s.stx_dev_major, s.stx_dev_minor),
            ino: s.stx_ino,
            mode: u32::from(s.stx_mode),
            uid: s.stx_uid,
            gid: s.stx_gid,
            size: s.stx_size,
            rdev: (s.stx_rdev_major, s.stx_rdev_minor),
            mtime: (s.stx_mtime.tv_sec, s.stx_mtime.tv_nsec),
            ctime: (s.stx_ctime.tv_sec, s.stx_ctime.tv_nsec),
            mount_root: s
                .stx_attributes_mask
                .contains(StatxAttributes::MOUNT_ROOT)
                .then(|| s.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)),
            mnt_id: known(StatxFlags::MNT_ID).then_some(s.stx_mnt_id),
        }
    }

    /// The entry's file type.
    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }

    /// `(dev, ino)`: the inode's identity.
    pub fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// Whether this directory is the root of a mount below `parent` (the directory it is in).
    ///
    /// Kernels before 5.8 lack `STATX_ATTR_MOUNT_ROOT` and mount IDs: there the device numbers
    /// are compared, which misses a bind mount of a directory of the same file system.
    pub fn is_mount_root_below(&self, parent: &EntryStat) -> bool {
        if let Some(m) = self.mount_root {
            return m;
        }
        match (self.mnt_id, parent.mnt_id) {
            (Some(a), Some(b)) => a != b,
            _ => self.dev != parent.dev,
        }
    }
}

fn statx_mask() -> StatxFlags {
    StatxFlags::BASIC_STATS | StatxFlags::MNT_ID
}

/// `statx(dir, name)` without following a symlink or triggering an automount.
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<EntryStat> {
    let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT;
    let s = rustix::fs::statx(dir, name, flags, statx_mask())?;
    Ok(EntryStat::from_statx(&s))
}

/// `statx` of the inode `fd` refers to.
pub fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<EntryStat> {
    let s = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, statx_mask())?;
    Ok(EntryStat::from_statx(&s))
}

/// The error for an entry that is no longer the inode that was inspected.
pub fn changed() -> io::Error {
    io::Error::other("it changed while being read (another file is there now)")
}

/// `openat` that leaves the access time alone where it may (`O_NOATIME`: the owner or
/// `CAP_FOWNER`; else `EPERM`, and it opens normally). Inspecting an extension must not change
/// it: an atime update dirties the inode, and on btrfs the subvolume's change time, which
/// systemd records for a subvolume extension.
pub fn open_noatime(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlags) -> Result<OwnedFd, Errno> {
    if flags.contains(OFlags::PATH) {
        return rustix::fs::openat(dir, name, flags, Mode::empty());
    }
    match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        r => r,
    }
}

fn open_checked(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlags,
    expect: &EntryStat,
) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match open_noatime(dir, name, flags) {
        Ok(fd) => fd,
        // ELOOP: it is a symlink now; ENOTDIR: no longer a directory.
        Err(Errno::LOOP) | Err(Errno::NOTDIR) => return Err(changed()),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    if (st.st_dev, st.st_ino) != expect.inode() {
        return Err(changed());
    }
    Ok(fd)
}

/// Open the directory `name` below `dir` for reading its entries, checking it is `expect`.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr, expect: &EntryStat) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK;
    open_checked(dir, name, flags, expect)
}

/// Open the regular file `name` below `dir` for reading, checking it is `expect`. Only for
/// regular files: opening a device or a FIFO could block or have side effects.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &OsStr, expect: &EntryStat) -> io::Result<OwnedFd> {
    if expect.file_type() != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
    open_checked(dir, name, flags, expect)
}

/// An `O_PATH` fd of the entry `name` below `dir` itself (a link is not followed), checked to
/// be `expect`. Works for any type without opening it.
pub fn open_inode_at(dir: BorrowedFd<'_>, name: &OsStr, expect: &EntryStat) -> io::Result<OwnedFd> {
    open_checked(dir, name, OFlags::PATH, expect)
}

/// The target of the symlink an `O_PATH` fd refers to, as bytes.
pub fn read_link_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let target = rustix::fs::readlinkat(fd, "", Vec::with_capacity(256))?;
    let bytes = target.into_bytes();
    if bytes.len() >= LINK_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("link target longer than {LINK_MAX} bytes"),
        ));
    }
    Ok(bytes)
}

/// How an fd reaches its xattrs.
#[derive(Clone, Copy, Debug)]
pub enum XattrFd<'a> {
    /// An fd opened for reading (file or directory): `flistxattr`/`fgetxattr`.
    Open(BorrowedFd<'a>),
    /// An `O_PATH` fd (symlinks, devices, FIFOs, sockets): the `f*xattr` calls refuse those, so
    /// through its `/proc/thread-self/fd/N` magic link, which the kernel resolves to the inode
    /// itself without any name lookup (what systemd does). Needs `/proc`.
    Path(BorrowedFd<'a>),
}

fn absent(e: Errno) -> bool {
    // ENODATA: not set; EOPNOTSUPP: the file system has no xattrs (nothing is set).
    matches!(e, Errno::NODATA | Errno::OPNOTSUPP)
}

/// Extended attributes as (name, value), sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Every xattr of an inode visible to the caller (`trusted.*` needs `CAP_SYS_ADMIN`), as (name,
/// value), sorted by name. `buf` is scratch space reused between calls.
pub fn xattrs(fd: XattrFd<'_>, buf: &mut Vec<u8>) -> io::Result<Xattrs> {
    buf.resize(XATTR_MAX, 0);
    let n = match fd {
        XattrFd::Open(fd) => rustix::fs::flistxattr(fd, &mut buf[..]),
        XattrFd::Path(fd) => rustix::fs::listxattr(proc_fd_path(fd), &mut buf[..]),
    };
    let n = match n {
        Ok(n) => n,
        Err(e) if absent(e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names: Vec<Vec<u8>> = buf[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        // Removed since the list was taken: it is not there.
        if let Some(v) = xattr(fd, OsStr::from_bytes(&name), buf)? {
            out.push((name, v));
        }
    }
    Ok(out)
}

/// The value of one xattr, `None` when it is not set.
pub fn xattr(fd: XattrFd<'_>, name: &OsStr, buf: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    buf.resize(XATTR_MAX, 0);
    let n = match fd {
        XattrFd::Open(fd) => rustix::fs::fgetxattr(fd, name, &mut buf[..]),
        XattrFd::Path(fd) => rustix::fs::getxattr(proc_fd_path(fd), name, &mut buf[..]),
    };
    match n {
        Ok(n) => Ok(Some(buf[..n].to_vec())),
        Err(e) if absent(e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a directory entry's type field (`d_type`) says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirEntryKind {
    /// A directory.
    Directory,
    /// A regular file.
    Regular,
    /// A symbolic link.
    Symlink,
    /// Anything else, or a file system that does not say (`DT_UNKNOWN`): look it up.
    Other,
}

/// The names in the directory `fd` (opened for reading), without `.` and `..`, in the order the
/// file system returns them. Reads at most `max + 1` names, so the caller can tell "more than
/// `max`" without holding an unbounded list. Starts from the beginning whatever was read of
/// `fd` before.
pub fn read_dir_names(fd: BorrowedFd<'_>, max: usize) -> io::Result<Vec<OsString>> {
    Ok(read_dir_entries(fd, max)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// [`read_dir_names`] with what each entry's `d_type` says it is (no lookup of the entries).
pub fn read_dir_entries(
    fd: BorrowedFd<'_>,
    max: usize,
) -> io::Result<Vec<(OsString, DirEntryKind)>> {
    rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(0))?;
    let mut buf: Vec<u8> = Vec::with_capacity(DIRENT_BUF);
    let mut dir = rustix::fs::RawDir::new(fd, buf.spare_capacity_mut());
    let mut entries = Vec::new();
    while let Some(entry) = dir.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Directory => DirEntryKind::Directory,
            FileType::RegularFile => DirEntryKind::Regular,
            FileType::Symlink => DirEntryKind::Symlink,
            _ => DirEntryKind::Other,
        };
        entries.push((OsStr::from_bytes(name).to_os_string(), kind));
        if entries.len() > max {
            break;
        }
    }
    Ok(entries)
}

impl Root {
    /// A readable fd of the root directory, for walking it.
    pub fn open_walk_dir(&self) -> io::Result<OwnedFd> {
        super::root::reopen_dir(self.fd())
    }

    /// `statx` of the root directory, as tree walks compare entries with it.
    pub fn entry_stat(&self) -> io::Result<EntryStat> {
        stat_fd(self.fd().as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn open_checked_refuses_links_and_swapped_entries() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("f"), "x").unwrap();
        symlink("d", t.path().join("l")).unwrap();
        let root = Root::open(t.path()).unwrap();
        let dir = root.open_walk_dir().unwrap();
        let d = stat_at(dir.as_fd(), OsStr::new("d")).unwrap();
        let f = stat_at(dir.as_fd(), OsStr::new("f")).unwrap();
        let l = stat_at(dir.as_fd(), OsStr::new("l")).unwrap();
        assert!(d.is_dir());
        assert_eq!(l.file_type(), FileType::Symlink);
        assert!(open_dir_at(dir.as_fd(), OsStr::new("d"), &d).is_ok());
        // The link is never followed, even to the directory it names.
        let e = open_dir_at(dir.as_fd(), OsStr::new("l"), &d).unwrap_err();
        assert!(e.to_string().contains("changed while being read"), "{e}");
        // Another inode under the inspected name.
        let e = open_file_at(dir.as_fd(), OsStr::new("f"), &{
            let mut other = f;
            other.ino += 1;
            other
        })
        .unwrap_err();
        assert!(e.to_string().contains("changed while being read"), "{e}");
        let e = open_file_at(dir.as_fd(), OsStr::new("d"), &d).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let p = open_inode_at(dir.as_fd(), OsStr::new("l"), &l).unwrap();
        assert_eq!(read_link_fd(p.as_fd()).unwrap(), b"d");
        assert!(!d.is_mount_root_below(&root.entry_stat().unwrap()));
    }

    #[test]
    fn dir_names_are_bytes_and_bounded() {
        let t = tempfile::tempdir().unwrap();
        for n in ["a", "b", "c"] {
            std::fs::write(t.path().join(n), "").unwrap();
        }
        let odd = OsStr::from_bytes(b"\xff\nx");
        std::fs::write(t.path().join(odd), "").unwrap();
        let root = Root::open(t.path()).unwrap();
        let mut names = read_dir_names(root.open_walk_dir().unwrap().as_fd(), 100).unwrap();
        names.sort();
        let want: Vec<&OsStr> = vec!["a".as_ref(), "b".as_ref(), "c".as_ref(), odd];
        assert_eq!(names, want);
        let two = read_dir_names(root.open_walk_dir().unwrap().as_fd(), 2).unwrap();
        assert_eq!(two.len(), 3, "stops one past the bound");
    }

    /// `user.*` on a file through its fd, `trusted.*` on a symlink through the magic link of
    /// its `O_PATH` fd (root only, as CI runs).
    #[test]
    fn xattrs_of_files_and_of_symlinks_by_fd_as_root() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "x").unwrap();
        symlink("f", t.path().join("l")).unwrap();
        let flags = rustix::fs::XattrFlags::empty();
        rustix::fs::lsetxattr(&f, "user.b", b"2", flags).unwrap();
        rustix::fs::lsetxattr(&f, "user.a", b"1", flags).unwrap();
        rustix::fs::lsetxattr(t.path().join("l"), "trusted.t", b"v", flags).unwrap();
        let root = Root::open(t.path()).unwrap();
        let dir = root.open_walk_dir().unwrap();
        let mut buf = Vec::new();
        let fs = stat_at(dir.as_fd(), OsStr::new("f")).unwrap();
        let fd = open_file_at(dir.as_fd(), OsStr::new("f"), &fs).unwrap();
        let got = xattrs(XattrFd::Open(fd.as_fd()), &mut buf).unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.b".to_vec(), b"2".to_vec()),
        ];
        assert_eq!(got, want);
        let ls = stat_at(dir.as_fd(), OsStr::new("l")).unwrap();
        let lp = open_inode_at(dir.as_fd(), OsStr::new("l"), &ls).unwrap();
        let got = xattrs(XattrFd::Path(lp.as_fd()), &mut buf).unwrap();
        assert_eq!(got, vec![(b"trusted.t".to_vec(), b"v".to_vec())]);
        assert_eq!(
            xattr(XattrFd::Path(lp.as_fd()), OsStr::new("trusted.t"), &mut buf).unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(
            xattr(XattrFd::Open(fd.as_fd()), OsStr::new("user.none"), &mut buf).unwrap(),
            None
        );
    }
}
