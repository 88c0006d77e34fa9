//! Opening extension images: probe the format, attach a loop device when one is
//! needed, mount the filesystem detached.

pub mod ddi;
pub mod policy;
pub mod protect;
pub mod sidecar;

use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::kernel::fscontext::{erofs_file_backed_supported, mount_detached, MountFlags};
use crate::kernel::loopdev::{LoopDevice, LoopOptions};
use crate::ondisk::superblock::{probe_bytes, read_head, FsType, Probed};

/// How many leading bytes an "unknown format" error shows.
const HEX_PREVIEW: usize = 16;

/// An image opened and mounted detached; keep it alive as long as the mount fd is used.
///
/// Field order matters for drop order: the mount goes first, then the loop fd, so with
/// autoclear the loop device is released as soon as both are gone.
#[derive(Debug)]
pub struct OpenedImage {
    /// The detached mount (an `fsmount` fd; use it as a dirfd).
    pub mount: OwnedFd,
    /// Filesystem type found by probing.
    pub fstype: FsType,
    /// The loop device behind the mount, if one was needed.
    pub loop_device: Option<LoopDevice>,
    /// The image path as given.
    pub backing: PathBuf,
}

/// `00 11 22 …` of at most [`HEX_PREVIEW`] bytes.
fn hex_preview(head: &[u8]) -> String {
    let shown: Vec<String> = head
        .iter()
        .take(HEX_PREVIEW)
        .map(|b| format!("{b:02x}"))
        .collect();
    shown.join(" ")
}

/// Probe `path` (regular file or block device) and mount it detached and read-only.
pub fn open_image(path: &Path, flags: MountFlags) -> Result<OpenedImage> {
    let started = Instant::now();
    // Follows symlinks on purpose: extension directories are full of links to images.
    let meta =
        std::fs::metadata(path).with_context(|| format!("opening image {}", path.display()))?;
    let is_block = meta.file_type().is_block_device();
    if !is_block && !meta.file_type().is_file() {
        bail!("{} is not a regular file or block device", path.display());
    }

    let head = read_head(path)?;
    let fstype = match probe_bytes(&head) {
        Probed::Filesystem(fstype) => fstype,
        Probed::Gpt { .. } => bail!(
            "{} is a GPT disk image (DDI); DDIs are supported once verity support lands",
            path.display()
        ),
        Probed::Unknown if head.is_empty() => {
            bail!("{} is empty (0 bytes): not an image", path.display())
        }
        Probed::Unknown => bail!(
            "{}: unrecognized image format (no squashfs, erofs, ext4, btrfs or GPT signature; {} bytes, starting with {})",
            path.display(),
            meta.len().max(head.len() as u64),
            hex_preview(&head)
        ),
    };

    // A truncated image (interrupted download or copy) must be refused here: erofs would mount
    // it and fail reads later. Block devices are sized by their driver; not checked here.
    if let Some(need) =
        crate::ondisk::superblock::declared_size(&head, fstype).filter(|_| !is_block)
    {
        if need > meta.len() {
            bail!(
                "{} is truncated: its {fstype} superblock says the file system takes {need} bytes, but the file has only {}",
                path.display(),
                meta.len()
            );
        }
    }

    let opened = if is_block {
        let mount = mount_detached(path, fstype, flags)
            .with_context(|| format!("opening image {}", path.display()))?;
        OpenedImage {
            mount,
            fstype,
            loop_device: None,
            backing: path.to_path_buf(),
        }
    } else {
        open_regular_file(path, fstype, flags)?
    };
    tracing::debug!(
        image = %path.display(),
        %fstype,
        loop_device = ?opened.loop_device.as_ref().map(|l| &l.path),
        elapsed_us = started.elapsed().as_micros() as u64,
        "image mounted detached"
    );
    Ok(opened)
}

/// Mount a regular-file image: file-backed erofs when possible, else through a loop.
fn open_regular_file(path: &Path, fstype: FsType, flags: MountFlags) -> Result<OpenedImage> {
    if fstype == FsType::Erofs && erofs_file_backed_supported() {
        match mount_detached(path, fstype, flags) {
            Ok(mount) => {
                return Ok(OpenedImage {
                    mount,
                    fstype,
                    loop_device: None,
                    backing: path.to_path_buf(),
                })
            }
            // The version gate cannot see CONFIG_EROFS_FS_BACKED_BY_FILE=n; a loop
            // device works everywhere, and a genuinely broken image fails there too.
            Err(err) => tracing::debug!(
                image = %path.display(),
                "file-backed erofs mount failed, falling back to a loop device: {err:#}"
            ),
        }
    }
    let lo = LoopDevice::attach(
        path,
        LoopOptions {
            direct_io: true,
            ..LoopOptions::default()
        },
    )
    .with_context(|| format!("opening image {}", path.display()))?;
    // On failure `lo` is dropped here and autoclear releases the device.
    let mount = mount_detached(&lo.path, fstype, flags).with_context(|| {
        format!(
            "opening image {} (through {})",
            path.display(),
            lo.path.display()
        )
    })?;
    Ok(OpenedImage {
        mount,
        fstype,
        loop_device: Some(lo),
        backing: path.to_path_buf(),
    })
}
