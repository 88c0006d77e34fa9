//! Loop devices configured with one `LOOP_CONFIGURE` ioctl (kernel >= 5.8).
//!
//! `LOOP_SET_FD` + `LOOP_SET_STATUS64` costs an extra queue freeze and RCU wait per
//! device (15–20 ms each); `LOOP_CONFIGURE` does fd, offset, size limit, flags and
//! block size at once, and read-only + autoclear are set before anyone can open the
//! device writable.

use std::ffi::c_void;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode, Setter};

/// `LO_FLAGS_READ_ONLY`: the device refuses writes.
pub const LO_FLAGS_READ_ONLY: u32 = 1;
/// `LO_FLAGS_AUTOCLEAR`: the kernel detaches the device when its last user goes away.
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// `LO_FLAGS_PARTSCAN`: the kernel scans the device for partitions (GPT DDIs only).
pub const LO_FLAGS_PARTSCAN: u32 = 8;
/// `LO_FLAGS_DIRECT_IO`: bypass the page cache of the backing file (no double caching).
pub const LO_FLAGS_DIRECT_IO: u32 = 16;

const LOOP_CONFIGURE: Opcode = 0x4C0A;
const LOOP_CTL_GET_FREE: Opcode = 0x4C82;
const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;
/// Bound on GET_FREE/CONFIGURE races lost to concurrent attachers.
const MAX_ATTEMPTS: u32 = 64;

/// `struct loop_info64` from `<linux/loop.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

// The kernel copies exactly these sizes; a layout slip would be silent corruption.
const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

/// How to attach a loop device.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopOptions {
    /// Byte offset into the backing file (DDI partitions).
    pub offset: u64,
    /// Maximum size in bytes, 0 = up to the end of the file.
    pub size_limit: u64,
    /// Ask for direct I/O; silently falls back to buffered I/O when refused.
    pub direct_io: bool,
    /// Logical block size, 0 = kernel default.
    pub block_size: u32,
}

/// An attached, read-only, autoclear loop device; dropping it closes our fd only.
#[derive(Debug)]
pub struct LoopDevice {
    fd: OwnedFd,
    /// Device node, e.g. `/dev/loop3`.
    pub path: PathBuf,
    /// Device number N of `/dev/loopN`.
    pub number: u32,
}

/// `LOOP_CTL_GET_FREE`: returns a free device number as the ioctl's return value,
/// which none of rustix's ready-made patterns passes through.
struct GetFree;

// SAFETY: LOOP_CTL_GET_FREE takes no argument and only returns an int.
unsafe impl Ioctl for GetFree {
    type Output = u32;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        LOOP_CTL_GET_FREE
    }

    fn as_ptr(&mut self) -> *mut c_void {
        std::ptr::null_mut()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<u32> {
        // Negative returns were already turned into Err by rustix.
        u32::try_from(out).map_err(|_| Errno::INVAL)
    }
}

/// A free loop device, opened: `Ok(Err(why))` when another process took it between
/// `LOOP_CTL_GET_FREE` and the open (the caller asks again).
fn claim_free(
    control: &OwnedFd,
    backing: &Path,
) -> Result<Result<(OwnedFd, PathBuf, u32), String>> {
    // SAFETY: GetFree matches LOOP_CTL_GET_FREE's (absent) argument.
    let number = unsafe { rustix::ioctl::ioctl(control, GetFree) }.with_context(|| {
        format!(
            "no free loop device for {}: LOOP_CTL_GET_FREE",
            backing.display()
        )
    })?;
    let path = PathBuf::from(format!("/dev/loop{number}"));
    // Read-only is enough: LOOP_CONFIGURE does not need write access, and the device will
    // refuse writes anyway.
    match rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(dev) => Ok(Ok((dev, path, number))),
        // Removed by someone else between GET_FREE and open: take another.
        Err(e @ (Errno::NOENT | Errno::NXIO)) => {
            Ok(Err(format!("opening {}: {e}", path.display())))
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "opening loop device {} for {}",
                path.display(),
                backing.display()
            )
        }),
    }
}

impl LoopDevice {
    /// Attach `backing` to a free loop device, read-only and autoclear, in one ioctl.
    pub fn attach(backing: &Path, opts: LoopOptions) -> Result<LoopDevice> {
        LoopDevice::attach_as(backing, backing, opts)
    }

    /// Attach the file reached by `open_path` (e.g. the `/proc/thread-self/fd/N` of a file
    /// already open, so exactly that inode is used), naming it `backing` in messages and in
    /// the device's `backing_file`.
    pub fn attach_as(open_path: &Path, backing: &Path, opts: LoopOptions) -> Result<LoopDevice> {
        let (mut file, mut direct_io) = open_backing(open_path, backing, opts.direct_io)?;
        let control = rustix::fs::open(
            "/dev/loop-control",
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| {
            format!(
                "attaching {}: opening /dev/loop-control (is the loop driver available?)",
                backing.display()
            )
        })?;

        let mut last_race = String::new();
        for _ in 0..MAX_ATTEMPTS {
            let (dev, path, number) = match claim_free(&control, backing)? {
                Ok(claimed) => claimed,
                Err(race) => {
                    last_race = race;
                    continue;
                }
            };
            let config = loop_config(&file, backing, &opts, direct_io);
            // SAFETY: LOOP_CONFIGURE reads a struct loop_config, which LoopConfig
            // mirrors (size checked at compile time).
            let res = unsafe {
                rustix::ioctl::ioctl(&dev, Setter::<LOOP_CONFIGURE, LoopConfig>::new(config))
            };
            match res {
                Ok(()) => {
                    return Ok(LoopDevice {
                        fd: dev,
                        path,
                        number,
                    })
                }
                // Another process configured this device after our GET_FREE.
                Err(Errno::BUSY) => {
                    last_race = format!("LOOP_CONFIGURE on {}: {}", path.display(), Errno::BUSY);
                    tracing::debug!(device = %path.display(), "lost a loop device race, retrying");
                }
                // Some kernels/filesystems refuse direct I/O outright: use buffered I/O.
                Err(Errno::INVAL) if direct_io => {
                    tracing::debug!(
                        backing = %backing.display(),
                        device = %path.display(),
                        "direct I/O refused by LOOP_CONFIGURE, retrying buffered"
                    );
                    (file, direct_io) = open_backing(open_path, backing, false)?;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "attaching {} to loop device {}: LOOP_CONFIGURE",
                            backing.display(),
                            path.display()
                        )
                    })
                }
            }
        }
        bail!(
            "attaching {} to a loop device: still losing races after {MAX_ATTEMPTS} attempts (last: {last_race})",
            backing.display()
        )
    }

    /// The open loop device (keeps it bound until the mount holds it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether the kernel actually uses direct I/O for this device (sysfs `loop/dio`).
    pub fn direct_io_active(&self) -> Option<bool> {
        let dio = std::fs::read_to_string(format!("/sys/block/loop{}/loop/dio", self.number));
        dio.ok().map(|s| s.trim() == "1")
    }
}

/// Open the backing file read-only, with O_DIRECT when asked and supported.
fn open_backing(open_path: &Path, backing: &Path, direct_io: bool) -> Result<(OwnedFd, bool)> {
    let base = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
    if direct_io {
        match rustix::fs::open(open_path, base | OFlags::DIRECT, Mode::empty()) {
            Ok(fd) => return Ok((fd, true)),
            // The filesystem holding the image has no O_DIRECT: buffered is fine.
            Err(Errno::INVAL) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("opening {}", backing.display()));
            }
        }
    }
    let fd = rustix::fs::open(open_path, base, Mode::empty())
        .with_context(|| format!("opening {}", backing.display()))?;
    Ok((fd, false))
}

fn loop_config(file: &OwnedFd, backing: &Path, opts: &LoopOptions, direct_io: bool) -> LoopConfig {
    let mut lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    if direct_io {
        lo_flags |= LO_FLAGS_DIRECT_IO;
    }
    // Only for humans (losetup -l); the kernel keeps the real path separately. The
    // kernel forces the last byte to NUL, so keep at most 63.
    let mut lo_file_name = [0u8; LO_NAME_SIZE];
    let name = backing.as_os_str().as_bytes();
    let n = name.len().min(LO_NAME_SIZE - 1);
    lo_file_name[..n].copy_from_slice(&name[..n]);
    LoopConfig {
        // fds are non-negative, so this conversion is lossless.
        fd: file.as_raw_fd() as u32,
        block_size: opts.block_size,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: opts.offset,
            lo_sizelimit: opts.size_limit,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags,
            lo_file_name,
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    }
}

/// Loop devices whose backing file is below `dir`, as (device node, backing file).
pub fn loops_backed_by(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    // sysfs shows the resolved path, so compare against the resolved directory too.
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_bytes().starts_with(b"loop") {
            continue;
        }
        // backing_file exists only while the device is bound.
        let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim_end_matches('\n');
        let backing = backing.strip_suffix(" (deleted)").unwrap_or(backing);
        let backing = PathBuf::from(backing);
        if backing.starts_with(&dir) {
            found.push((Path::new("/dev").join(&name), backing));
        }
    }
    found.sort();
    found
}
