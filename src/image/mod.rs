//! Opening extension images: probe the format, attach a loop device when one is
//! needed, mount the filesystem detached.

pub mod ddi;
pub mod policy;
pub mod protect;
pub mod sidecar;
pub mod source;

pub use source::ImageFile;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::kernel::fscontext::{erofs_file_backed_supported, mount_detached, MountFlags};
use crate::kernel::loopdev::{LoopDevice, LoopOptions};
use crate::ondisk::superblock::{
    check_declared_size, holds_no_xattrs, probe_bytes, FsType, Probed,
};

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
    /// The file system holds no extended attributes at all ([`holds_no_xattrs`]), so the
    /// conflict walk need not look for overlayfs markers in it.
    pub no_xattrs: bool,
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

/// Probe `img` and mount it detached and read-only (no verity: see [`protect`]).
pub fn open_image(img: &ImageFile, flags: MountFlags) -> Result<OpenedImage> {
    let started = Instant::now();
    img.check_not_empty()?;
    let head = img.head()?;
    let fstype = match probe_bytes(&head) {
        Probed::Filesystem(fstype) => fstype,
        Probed::Gpt { .. } => bail!(
            "{} is a GPT disk image (DDI) without verity data: open it with protect::open_protected",
            img.shown.display()
        ),
        Probed::Unknown => bail!(
            "{}: unrecognized image format (no squashfs, erofs, ext4, btrfs or GPT signature; {} bytes, starting with {})",
            img.shown.display(),
            img.size.max(head.len() as u64),
            hex_preview(&head)
        ),
    };

    // A truncated image (interrupted download or copy) must be refused here: erofs would mount
    // it and fail reads later. Block devices are sized by their driver; not checked here.
    if !img.is_block() {
        check_declared_size(&head, fstype, img.size, &img.shown.display().to_string())?;
    }

    let opened = if img.is_block() {
        let mount = mount_detached(&img.proc_path(), fstype, flags)
            .with_context(|| format!("opening image {}", img.shown.display()))?;
        OpenedImage {
            mount,
            fstype,
            loop_device: None,
            backing: img.shown.clone(),
            no_xattrs: false,
        }
    } else {
        open_regular_file(img, fstype, flags)?
    };
    // Read from the same open file the mount reads; see the README ("Conflicts") for what an
    // image rewritten while it is opened can do to the report.
    let opened = OpenedImage {
        no_xattrs: holds_no_xattrs(&head, fstype),
        ..opened
    };
    tracing::debug!(
        image = %img.shown.display(),
        %fstype,
        loop_device = ?opened.loop_device.as_ref().map(|l| &l.path),
        elapsed_us = started.elapsed().as_micros() as u64,
        "image mounted detached"
    );
    Ok(opened)
}

/// Mount a regular-file image: file-backed erofs when possible, else through a loop.
fn open_regular_file(img: &ImageFile, fstype: FsType, flags: MountFlags) -> Result<OpenedImage> {
    if fstype == FsType::Erofs && erofs_file_backed_supported() {
        match mount_detached(&img.proc_path(), fstype, flags) {
            Ok(mount) => {
                return Ok(OpenedImage {
                    mount,
                    fstype,
                    loop_device: None,
                    backing: img.shown.clone(),
                    no_xattrs: false,
                })
            }
            // The version gate cannot see CONFIG_EROFS_FS_BACKED_BY_FILE=n; a loop
            // device works everywhere, and a genuinely broken image fails there too.
            Err(err) => tracing::debug!(
                image = %img.shown.display(),
                "file-backed erofs mount failed, falling back to a loop device: {err:#}"
            ),
        }
    }
    let lo = LoopDevice::attach_as(
        &img.proc_path(),
        &img.shown,
        LoopOptions {
            direct_io: true,
            ..LoopOptions::default()
        },
    )
    .with_context(|| format!("opening image {}", img.shown.display()))?;
    // On failure `lo` is dropped here and autoclear releases the device.
    let mount = mount_detached(&lo.path, fstype, flags).with_context(|| {
        format!(
            "opening image {} (through {})",
            img.shown.display(),
            lo.path.display()
        )
    })?;
    Ok(OpenedImage {
        mount,
        fstype,
        loop_device: Some(lo),
        backing: img.shown.clone(),
        no_xattrs: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::root::Root;
    use std::path::Path;

    /// A squashfs superblock declaring `bytes_used`, in a file of `len` bytes.
    fn squashfs_head(bytes_used: u64, len: usize) -> Vec<u8> {
        let mut img = vec![0u8; len];
        img[..4].copy_from_slice(b"hsqs");
        img[40..48].copy_from_slice(&bytes_used.to_le_bytes());
        img
    }

    /// Refused from the superblock alone, before any loop device or mount, naming the image.
    #[test]
    fn truncated_image_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.raw"), squashfs_head(1 << 20, 8192)).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let img = ImageFile::open(&root, Path::new("/a.raw")).unwrap();
        let e = open_image(&img, MountFlags::default()).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!(
                "{} is truncated: its squashfs superblock says the file system takes 1048576 bytes, but only 8192 are there",
                dir.path().join("a.raw").display()
            )
        );
    }
}
