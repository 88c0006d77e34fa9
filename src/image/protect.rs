//! Open an extension image with the protection it carries, as systemd's dissect does:
//! a plain file system, a file system with `.roothash`/`.verity` (and `.roothash.p7s`) sidecars,
//! or a GPT Discoverable Disk Image with verity and signature partitions. The root hash is
//! checked against the hash tree before activation (activation with a wrong hash succeeds and
//! only reads fail later), signatures are verified in userspace against `<root>/…/verity.d`,
//! and the image policy decides what is acceptable.

use crate::image::ddi::{self, Designator, VerityLayout};
use crate::image::policy::{ImagePolicy, Protection};
use crate::image::sidecar::HashTree;
use crate::image::{open_image, ImageFile, OpenedImage};
use crate::kernel::fscontext::{mount_detached, MountFlags};
use crate::kernel::loopdev::{LoopDevice, LoopOptions};
use crate::kernel::root::proc_fd_path;
use crate::ondisk::superblock::{probe_bytes, FsType, Probed, PROBE_LEN};
use crate::ondisk::{signature, verity};
use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::AsFd;
use std::path::PathBuf;

/// Trusted certificates: `(path as shown, DER)`.
pub type Certificates = [(PathBuf, Vec<u8>)];

/// An opened image and what protected it.
#[derive(Debug)]
pub struct Protected {
    /// The detached mount and its loop device.
    pub image: OpenedImage,
    /// Protection in force.
    pub protection: Protection,
    /// Verity root hash (lowercase hex), when verity is used.
    pub roothash: Option<String>,
    /// Certificate that verified the signature, when signed.
    pub signer: Option<PathBuf>,
}

/// Where the hash tree of a verity-protected image is: a `.verity` sidecar, or the image itself.
enum HashSource<'a> {
    Sidecar(&'a HashTree),
    Image,
}

/// Where the data and the hash tree of a verity-protected image are.
struct VeritySource<'a> {
    designator: Designator,
    fstype: FsType,
    data: (u64, u64),
    hash_source: HashSource<'a>,
    hash: (u64, u64),
    sector_size: u32,
    roothash_hex: String,
    signature: Option<Vec<u8>>,
}

fn sig_partition(img: &ImageFile, l: &VerityLayout) -> Result<Option<(String, Vec<u8>)>> {
    let Some(sig) = &l.sig else { return Ok(None) };
    if sig.size > signature::MAX_SIG_PARTITION as u64 {
        bail!(
            "signature partition of {} is {} bytes, more than the 4 MiB systemd accepts",
            img.shown.display(),
            sig.size
        );
    }
    let mut buf = vec![0u8; sig.size as usize];
    img.read_exact_at(&mut buf, sig.offset)
        .with_context(|| format!("reading the signature partition of {}", img.shown.display()))?;
    signature::parse_verity_sig(&buf)
        .map(Some)
        .with_context(|| format!("signature partition of {}", img.shown.display()))
}

fn fstype_at(img: &ImageFile, offset: u64) -> Result<FsType> {
    let len = (PROBE_LEN as u64).min(img.size.saturating_sub(offset)) as usize;
    let mut head = vec![0u8; len];
    img.read_exact_at(&mut head, offset)
        .with_context(|| format!("reading {}", img.shown.display()))?;
    match probe_bytes(&head) {
        Probed::Filesystem(fs) => Ok(fs),
        _ => bail!(
            "the data partition of {} (at byte {offset}) holds no known file system",
            img.shown.display()
        ),
    }
}

/// The partition table of a DDI.
fn parse_ddi(img: &ImageFile) -> Result<ddi::Ddi> {
    ddi::parse_ddi(&mut img.reader_at(0), img.size)
        .with_context(|| format!("reading the partition table of {}", img.shown.display()))
}

/// Work out where verity data lives, without attaching or activating anything.
fn verity_source(img: &ImageFile, probed: Probed) -> Result<Option<VeritySource<'_>>> {
    let side = &img.sidecars;
    match probed {
        Probed::Filesystem(fstype) => {
            let (Some((designator, hex)), Some(tree)) = (&side.roothash, &side.verity_data) else {
                return Ok(None);
            };
            Ok(Some(VeritySource {
                designator: *designator,
                fstype,
                data: (0, img.size),
                hash_source: HashSource::Sidecar(tree),
                hash: (0, tree.size),
                sector_size: 512,
                roothash_hex: hex.clone(),
                signature: side.signature.clone(),
            }))
        }
        Probed::Gpt { .. } => {
            let d = parse_ddi(img)?;
            let rh = side
                .roothash
                .as_ref()
                .map(|(d, h)| verity::parse_roothash(h).map(|b| (*d, b)))
                .transpose()?;
            let layout = ddi::select_for_roothash(
                &d,
                crate::decide::arch::native(),
                rh.as_ref().map(|(d, b)| (*d, b.as_slice())),
            )?;
            let Some(v) = &layout.verity else {
                return Ok(None);
            };
            let sig = sig_partition(img, &layout)?;
            let roothash_hex = match (&side.roothash, &sig) {
                (Some((_, h)), _) => h.clone(),
                (None, Some((h, _))) => h.to_ascii_lowercase(),
                (None, None) => ddi::guess_roothash(&layout).ok_or_else(|| {
                    anyhow!(
                        "{}: no root hash (no sidecar, no signature partition)",
                        img.shown.display()
                    )
                })?,
            };
            if let (Some((h, _)), Some((side_d, side_h))) = (&sig, &side.roothash) {
                if !h.eq_ignore_ascii_case(side_h) || *side_d != layout.designator {
                    bail!(
                        "{}: the .roothash sidecar and the signature partition disagree",
                        img.shown.display()
                    );
                }
            }
            let signature = side.signature.clone().or(sig.map(|(_, s)| s));
            Ok(Some(VeritySource {
                designator: layout.designator,
                fstype: fstype_at(img, layout.data.offset)?,
                data: (layout.data.offset, layout.data.size),
                hash_source: HashSource::Image,
                hash: (v.offset, v.size),
                sector_size: d.sector_size,
                roothash_hex,
                signature,
            }))
        }
        Probed::Unknown => Ok(None),
    }
}

/// The root hash an image would be verified with, found without attaching anything — the
/// identity systemd records as `verityHash`. None for images without verity data.
pub fn roothash_identity(img: &ImageFile) -> Option<String> {
    let probed = img.probe().ok()?;
    verity_source(img, probed)
        .ok()
        .flatten()
        .map(|v| v.roothash_hex)
}

/// Why an image cannot be used: the policy does not allow it, or it cannot be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The image policy forbids its protection.
    Policy(String),
    /// Anything else: unreadable, broken, a bad signature where one is required.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for OpenError {
    fn from(e: anyhow::Error) -> OpenError {
        OpenError::Failed(e)
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Policy(why) => f.write_str(why),
            OpenError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

fn allowed(policy: &ImagePolicy, d: Designator, p: Protection) -> Result<(), OpenError> {
    policy
        .check(d, p)
        .map_err(|e| OpenError::Policy(e.to_string()))
}

/// Open and mount `img`, honouring its verity data, the trusted certificates and the policy.
pub fn open_protected(
    img: &ImageFile,
    certs: &Certificates,
    policy: &ImagePolicy,
    flags: MountFlags,
) -> Result<Protected, OpenError> {
    let probed = img.probe()?;
    let Some(src) = verity_source(img, probed)? else {
        if let Probed::Gpt { .. } = probed {
            return open_plain_ddi(img, policy, flags);
        }
        allowed(policy, Designator::Root, Protection::Unprotected)?;
        return Ok(Protected {
            image: open_image(img, flags)?,
            protection: Protection::Unprotected,
            roothash: None,
            signer: None,
        });
    };
    let roothash = verity::parse_roothash(&src.roothash_hex)
        .with_context(|| format!("root hash of {}", img.shown.display()))?;

    // The trap: dm-verity activates with any root hash; check it against the top hash block first.
    let (hash_file, hash_shown) = match src.hash_source {
        HashSource::Sidecar(t) => (&t.file, &t.shown),
        HashSource::Image => (&img.file, &img.shown),
    };
    // A short read would only say "failed to fill whole buffer": name the cause instead.
    if src.hash.1 < verity::SUPERBLOCK_SIZE as u64 {
        return Err(anyhow!(
            "the verity hash tree {} is {} bytes, too short to hold its {}-byte superblock (truncated?)",
            hash_shown.display(),
            src.hash.1,
            verity::SUPERBLOCK_SIZE
        )
        .into());
    }
    let mut sb_buf = vec![0u8; verity::SUPERBLOCK_SIZE];
    std::os::unix::fs::FileExt::read_exact_at(hash_file, &mut sb_buf, src.hash.0)
        .with_context(|| format!("reading the verity superblock of {}", hash_shown.display()))?;
    let sb = verity::parse_superblock(&sb_buf)
        .with_context(|| format!("verity hash tree of {}", img.shown.display()))?;
    let mut hash_reader = |off: u64, buf: &mut [u8]| {
        std::os::unix::fs::FileExt::read_exact_at(hash_file, buf, src.hash.0 + off)
    };
    verity::check_root_hash(
        &mut img.reader_at(src.data.0),
        &mut hash_reader,
        &sb,
        0,
        &roothash,
    )
    .with_context(|| {
        format!(
            "{}: the root hash {} does not match the image's hash tree",
            img.shown.display(),
            src.roothash_hex
        )
    })?;

    let (protection, signer) = match &src.signature {
        Some(sig) => match signature::verify_roothash_signature(&src.roothash_hex, sig, certs) {
            Ok(cert) => (Protection::Signed, Some(cert)),
            Err(e) if policy.needs_signature(src.designator) => {
                return Err(anyhow!(
                    "{}: the root hash signature is not trusted: {e:#}",
                    img.shown.display()
                )
                .into())
            }
            Err(e) => {
                tracing::warn!(
                    "{}: root hash signature not trusted ({e:#}); using it as verity-only.",
                    img.shown.display()
                );
                (Protection::Verity, None)
            }
        },
        None => (Protection::Verity, None),
    };
    allowed(policy, src.designator, protection)?;
    // A verified signature also goes to the kernel: where the kernel can check it against its
    // keyring it does; where it cannot (Flatcar's kernel), activation falls back to the root hash.
    let kernel_sig = match protection {
        Protection::Signed => src.signature.as_deref(),
        _ => None,
    };
    let image = activate_and_mount(img, &src, &roothash, kernel_sig, flags)?;
    Ok(Protected {
        image,
        protection,
        roothash: Some(src.roothash_hex.clone()),
        signer,
    })
}

/// A DDI without a verity partition: mount its data partition through a loop device.
fn open_plain_ddi(
    img: &ImageFile,
    policy: &ImagePolicy,
    flags: MountFlags,
) -> Result<Protected, OpenError> {
    let d = parse_ddi(img)?;
    let layout = ddi::select(&d, crate::decide::arch::native())?;
    allowed(policy, layout.designator, Protection::Unprotected)?;
    let fstype = fstype_at(img, layout.data.offset)?;
    let lo = LoopDevice::attach_as(
        &img.proc_path(),
        &img.shown,
        LoopOptions {
            offset: layout.data.offset,
            size_limit: layout.data.size,
            direct_io: true,
            block_size: d.sector_size,
        },
    )?;
    let mount = mount_detached(&lo.path, fstype, flags)?;
    Ok(Protected {
        image: OpenedImage {
            mount,
            fstype,
            loop_device: Some(lo),
            backing: img.shown.clone(),
        },
        protection: Protection::Unprotected,
        roothash: None,
        signer: None,
    })
}

#[cfg(feature = "verity")]
fn activate_and_mount(
    img: &ImageFile,
    src: &VeritySource<'_>,
    roothash: &[u8],
    signature: Option<&[u8]>,
    flags: MountFlags,
) -> Result<OpenedImage> {
    use crate::kernel::dmverity::{activate, VeritySpec};
    let block_size = if src.sector_size == 4096 { 4096 } else { 0 };
    let data = LoopDevice::attach_as(
        &img.proc_path(),
        &img.shown,
        LoopOptions {
            offset: src.data.0,
            size_limit: src.data.1,
            direct_io: true,
            block_size,
        },
    )?;
    let (hash_file, hash_shown) = match src.hash_source {
        HashSource::Sidecar(t) => (&t.file, &t.shown),
        HashSource::Image => (&img.file, &img.shown),
    };
    let hash = LoopDevice::attach_as(
        &proc_fd_path(hash_file.as_fd()),
        hash_shown,
        LoopOptions {
            offset: src.hash.0,
            size_limit: src.hash.1,
            direct_io: true,
            block_size,
        },
    )?;
    let dev = activate(&VeritySpec {
        data_device: &data.path,
        hash_device: &hash.path,
        hash_offset: 0,
        roothash,
        signature,
    })
    .with_context(|| format!("activating dm-verity for {}", img.shown.display()))?;
    let mount = mount_detached(&dev.path, src.fstype, flags)?;
    tracing::debug!(
        IMAGE_PATH = %img.shown.display(),
        DEVICE = %dev.path.display(),
        reused = dev.reused,
        kernel_signed = dev.kernel_signed,
        "dm-verity active"
    );
    // Dropping the handle marks the device for deferred removal: it lives as long as the mount.
    drop(dev);
    Ok(OpenedImage {
        mount,
        fstype: src.fstype,
        loop_device: Some(data),
        backing: img.shown.clone(),
    })
}

#[cfg(not(feature = "verity"))]
fn activate_and_mount(
    img: &ImageFile,
    src: &VeritySource<'_>,
    _roothash: &[u8],
    _signature: Option<&[u8]>,
    _flags: MountFlags,
) -> Result<OpenedImage> {
    bail!(
        "{} carries dm-verity data ({} in {}-byte sectors), but this extmerge was built without dm-verity support (cargo feature 'verity')",
        img.shown.display(),
        src.fstype,
        src.sector_size
    )
}
