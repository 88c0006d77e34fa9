//! An image file opened once, inside the root: its identity, its verity sidecars and its mounts
//! all come from this one open file, so an image replaced meanwhile is either what was recorded
//! and merged, or neither.

use crate::image::sidecar::{self, VeritySidecars};
use crate::kernel::root::{proc_fd_path, Found, Root};
use crate::ondisk::superblock::{probe_bytes, probe_prefix, Probed, PROBE_LEN, PROBE_PREFIX_LEN};
use anyhow::{bail, Context, Result};
use rustix::fs::FileType;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A regular file or block device holding an extension image, open for reading.
#[derive(Debug)]
pub struct ImageFile {
    /// The open file (`O_RDONLY`).
    pub file: File,
    /// Where it is inside the root, and what it is.
    pub found: Found,
    /// How messages name it (root-prefixed).
    pub shown: PathBuf,
    /// Size in bytes (of the device, for block devices).
    pub size: u64,
    /// Verity data next to it (none for block devices, as in systemd).
    pub sidecars: VeritySidecars,
}

impl ImageFile {
    /// Open the image at `path` inside `root` and read its sidecars.
    pub fn open(root: &Root, path: &Path) -> Result<ImageFile> {
        let (mut file, found) = root.open_read(path)?;
        let shown = root.show(&found.in_root);
        let is_block = found.file_type() == FileType::BlockDevice;
        // metadata().len() is 0 for block devices; seeking to the end works for both.
        let size = file
            .seek(SeekFrom::End(0))
            .with_context(|| format!("finding the size of {}", shown.display()))?;
        let sidecars = if is_block {
            VeritySidecars::default()
        } else {
            sidecar::load(root, &found)?
        };
        Ok(ImageFile {
            file,
            found,
            shown,
            size,
            sidecars,
        })
    }

    /// Whether it is a block device.
    pub fn is_block(&self) -> bool {
        self.found.file_type() == FileType::BlockDevice
    }

    /// A path the kernel resolves to exactly this open file (loop and mount sources).
    pub fn proc_path(&self) -> PathBuf {
        proc_fd_path(self.file.as_fd())
    }

    /// Read exactly `buf.len()` bytes at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// The first bytes for format probing: 4 KiB when they decide the format (squashfs, erofs,
    /// ext4; every superblock field read of those lies there too), else up to [`PROBE_LEN`].
    pub fn head(&self) -> Result<Vec<u8>> {
        let prefix = self.first_bytes(PROBE_PREFIX_LEN)?;
        if probe_prefix(&prefix).is_some() {
            return Ok(prefix);
        }
        self.first_bytes(PROBE_LEN)
    }

    /// The first `len` bytes, or all of a shorter image.
    fn first_bytes(&self, len: usize) -> Result<Vec<u8>> {
        let mut head = vec![0u8; usize::try_from(self.size).map_or(len, |size| len.min(size))];
        self.file
            .read_exact_at(&mut head, 0)
            .with_context(|| format!("reading the first bytes of {}", self.shown.display()))?;
        Ok(head)
    }

    /// What the first bytes say the image is.
    pub fn probe(&self) -> Result<Probed> {
        Ok(probe_bytes(&self.head()?))
    }

    /// A `read_at` closure over a window starting at `base`, for the format readers.
    pub fn reader_at(&self, base: u64) -> impl FnMut(u64, &mut [u8]) -> std::io::Result<()> + '_ {
        move |off, buf| self.file.read_exact_at(buf, base + off)
    }

    /// Refuse an empty file with a clear message.
    pub fn check_not_empty(&self) -> Result<()> {
        if self.size == 0 {
            bail!("{} is empty (0 bytes): not an image", self.shown.display());
        }
        Ok(())
    }
}
