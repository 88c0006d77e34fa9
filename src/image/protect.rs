//! Open an extension image with the protection it carries, as systemd's dissect does:
//! a plain file system, a file system with `.roothash`/`.verity` (and `.roothash.p7s`) sidecars,
//! or a GPT Discoverable Disk Image with verity and signature partitions. The root hash is
//! checked against the hash tree before activation (activation with a wrong hash succeeds and
//! only reads fail later), signatures are verified in userspace against `<root>/…/verity.d`,
//! and the image policy decides what is acceptable.

use crate::class::ImageClass;
use crate::image::ddi::{self, Designator, VerityLayout};
use crate::image::policy::{ImagePolicy, Protection};
use crate::image::{open_image, sidecar, OpenedImage};
use crate::kernel::fscontext::{mount_detached, MountFlags};
use crate::kernel::loopdev::{LoopDevice, LoopOptions};
use crate::ondisk::superblock::{probe_bytes, probe_path, FsType, Probed, PROBE_LEN};
use crate::ondisk::{signature, verity};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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

/// Where the data and the hash tree of a verity-protected image are.
struct VeritySource {
    designator: Designator,
    fstype: FsType,
    data: (u64, u64),
    hash_file: PathBuf,
    hash: (u64, u64),
    sector_size: u32,
    roothash_hex: String,
    signature: Option<Vec<u8>>,
}

fn read_at(file: &File, base: u64) -> impl FnMut(u64, &mut [u8]) -> std::io::Result<()> + '_ {
    move |off, buf| file.read_exact_at(buf, base + off)
}

fn sig_partition(path: &Path, l: &VerityLayout) -> Result<Option<(String, Vec<u8>)>> {
    let Some(sig) = &l.sig else { return Ok(None) };
    if sig.size > signature::MAX_SIG_PARTITION as u64 {
        bail!(
            "signature partition of {} is {} bytes, more than the 4 MiB systemd accepts",
            path.display(),
            sig.size
        );
    }
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; sig.size as usize];
    f.read_exact_at(&mut buf, sig.offset)
        .with_context(|| format!("reading the signature partition of {}", path.display()))?;
    signature::parse_verity_sig(&buf)
        .map(Some)
        .with_context(|| format!("signature partition of {}", path.display()))
}

fn fstype_at(path: &Path, offset: u64) -> Result<FsType> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut head = vec![0u8; PROBE_LEN];
    let n = f
        .read_at(&mut head, offset)
        .with_context(|| format!("reading {}", path.display()))?;
    match probe_bytes(&head[..n]) {
        Probed::Filesystem(fs) => Ok(fs),
        _ => bail!(
            "the data partition of {} (at byte {offset}) holds no known file system",
            path.display()
        ),
    }
}

/// Work out where verity data lives, without attaching or activating anything.
fn verity_source(
    path: &Path,
    side: &sidecar::VeritySidecars,
    probed: Probed,
) -> Result<Option<VeritySource>> {
    match probed {
        Probed::Filesystem(fstype) => {
            let (Some((designator, hex)), Some(hash_file)) = (&side.roothash, &side.verity_data)
            else {
                return Ok(None);
            };
            let size = std::fs::metadata(path)
                .with_context(|| format!("stat {}", path.display()))?
                .len();
            let hsize = std::fs::metadata(hash_file)
                .with_context(|| format!("stat {}", hash_file.display()))?
                .len();
            Ok(Some(VeritySource {
                designator: *designator,
                fstype,
                data: (0, size),
                hash_file: hash_file.clone(),
                hash: (0, hsize),
                sector_size: 512,
                roothash_hex: hex.clone(),
                signature: side.signature.clone(),
            }))
        }
        Probed::Gpt { .. } => {
            let d = ddi::parse_ddi_file(path)?;
            let rh = side
                .roothash
                .as_ref()
                .map(|(d, h)| verity::parse_roothash(h).map(|b| (*d, b)))
                .transpose()?;
            let layout = ddi::select_for_roothash(
                &d,
                ddi::native_arch(),
                rh.as_ref().map(|(d, b)| (*d, b.as_slice())),
            )?;
            let Some(v) = &layout.verity else {
                return Ok(None);
            };
            let sig = sig_partition(path, &layout)?;
            let roothash_hex = match (&side.roothash, &sig) {
                (Some((_, h)), _) => h.clone(),
                (None, Some((h, _))) => h.to_ascii_lowercase(),
                (None, None) => ddi::guess_roothash(&layout).ok_or_else(|| {
                    anyhow!(
                        "{}: no root hash (no sidecar, no signature partition)",
                        path.display()
                    )
                })?,
            };
            if let (Some((h, _)), Some((side_d, side_h))) = (&sig, &side.roothash) {
                if !h.eq_ignore_ascii_case(side_h) || *side_d != layout.designator {
                    bail!(
                        "{}: the .roothash sidecar and the signature partition disagree",
                        path.display()
                    );
                }
            }
            let signature = side.signature.clone().or(sig.map(|(_, s)| s));
            Ok(Some(VeritySource {
                designator: layout.designator,
                fstype: fstype_at(path, layout.data.offset)?,
                data: (layout.data.offset, layout.data.size),
                hash_file: path.to_path_buf(),
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
pub fn roothash_identity(path: &Path) -> Option<String> {
    let side = sidecar::load(path).ok()?;
    let probed = probe_path(path).ok()?;
    verity_source(path, &side, probed)
        .ok()
        .flatten()
        .map(|v| v.roothash_hex)
}

/// Open and mount `path` (resolved host path), honouring its verity data and the policy.
pub fn open_protected(
    path: &Path,
    root: &Path,
    class: ImageClass,
    policy: &ImagePolicy,
    flags: MountFlags,
) -> Result<Protected> {
    let side = sidecar::load(path)?;
    let probed = probe_path(path)?;
    let Some(src) = verity_source(path, &side, probed)? else {
        if let Probed::Gpt { .. } = probed {
            return open_plain_ddi(path, policy, flags);
        }
        policy
            .check(Designator::Root, Protection::Unprotected)
            .map_err(|e| anyhow!("{e}"))?;
        return Ok(Protected {
            image: open_image(path, flags)?,
            protection: Protection::Unprotected,
            roothash: None,
            signer: None,
        });
    };
    let roothash = verity::parse_roothash(&src.roothash_hex)
        .with_context(|| format!("root hash of {}", path.display()))?;

    // The trap: dm-verity activates with any root hash; check it against the top hash block first.
    let data_file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let hash_file = File::open(&src.hash_file)
        .with_context(|| format!("opening {}", src.hash_file.display()))?;
    // A short read would only say "failed to fill whole buffer": name the cause instead.
    if src.hash.1 < verity::SUPERBLOCK_SIZE as u64 {
        bail!(
            "the verity hash tree {} is {} bytes, too short to hold its {}-byte superblock (truncated?)",
            src.hash_file.display(),
            src.hash.1,
            verity::SUPERBLOCK_SIZE
        );
    }
    let mut sb_buf = vec![0u8; verity::SUPERBLOCK_SIZE];
    hash_file
        .read_exact_at(&mut sb_buf, src.hash.0)
        .with_context(|| {
            format!(
                "reading the verity superblock of {}",
                src.hash_file.display()
            )
        })?;
    let sb = verity::parse_superblock(&sb_buf)
        .with_context(|| format!("verity hash tree of {}", path.display()))?;
    verity::check_root_hash(
        &mut read_at(&data_file, src.data.0),
        &mut read_at(&hash_file, src.hash.0),
        &sb,
        0,
        &roothash,
    )
    .with_context(|| {
        format!(
            "{}: the root hash {} does not match the image's hash tree",
            path.display(),
            src.roothash_hex
        )
    })?;

    let (protection, signer) = match &src.signature {
        Some(sig) => {
            let certs = signature::load_trusted_certs(root)?;
            match signature::verify_roothash_signature(&src.roothash_hex, sig, &certs) {
                Ok(cert) => (Protection::Signed, Some(cert)),
                Err(e) if policy.needs_signature(src.designator) => {
                    bail!(
                        "{}: the root hash signature is not trusted: {e:#}",
                        path.display()
                    )
                }
                Err(e) => {
                    tracing::warn!(
                        "{}: root hash signature not trusted ({e:#}); using it as verity-only.",
                        path.display()
                    );
                    (Protection::Verity, None)
                }
            }
        }
        None => (Protection::Verity, None),
    };
    policy
        .check(src.designator, protection)
        .map_err(|e| anyhow!("{e}"))?;
    let _ = class;
    // A verified signature also goes to the kernel: where the kernel can check it against its
    // keyring it does; where it cannot (Flatcar's kernel), activation falls back to the root hash.
    let kernel_sig = match protection {
        Protection::Signed => src.signature.as_deref(),
        _ => None,
    };
    let image = activate_and_mount(path, &src, &roothash, kernel_sig, flags)?;
    Ok(Protected {
        image,
        protection,
        roothash: Some(src.roothash_hex.clone()),
        signer,
    })
}

/// A DDI without a verity partition: mount its data partition through a loop device.
fn open_plain_ddi(path: &Path, policy: &ImagePolicy, flags: MountFlags) -> Result<Protected> {
    let d = ddi::parse_ddi_file(path)?;
    let layout = ddi::select(&d, ddi::native_arch())?;
    policy
        .check(layout.designator, Protection::Unprotected)
        .map_err(|e| anyhow!("{e}"))?;
    let fstype = fstype_at(path, layout.data.offset)?;
    let lo = LoopDevice::attach(
        path,
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
            backing: path.to_path_buf(),
        },
        protection: Protection::Unprotected,
        roothash: None,
        signer: None,
    })
}

#[cfg(feature = "verity")]
fn activate_and_mount(
    path: &Path,
    src: &VeritySource,
    roothash: &[u8],
    signature: Option<&[u8]>,
    flags: MountFlags,
) -> Result<OpenedImage> {
    use crate::kernel::dmverity::{activate, VeritySpec};
    let block_size = if src.sector_size == 4096 { 4096 } else { 0 };
    let data = LoopDevice::attach(
        path,
        LoopOptions {
            offset: src.data.0,
            size_limit: src.data.1,
            direct_io: true,
            block_size,
        },
    )?;
    let hash = LoopDevice::attach(
        &src.hash_file,
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
    .with_context(|| format!("activating dm-verity for {}", path.display()))?;
    let mount = mount_detached(&dev.path, src.fstype, flags)?;
    tracing::debug!(
        IMAGE_PATH = %path.display(),
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
        backing: path.to_path_buf(),
    })
}

#[cfg(not(feature = "verity"))]
fn activate_and_mount(
    path: &Path,
    src: &VeritySource,
    _roothash: &[u8],
    _signature: Option<&[u8]>,
    _flags: MountFlags,
) -> Result<OpenedImage> {
    bail!(
        "{} carries dm-verity data ({} in {}-byte sectors), but this extmerge was built without dm-verity support (cargo feature 'verity')",
        path.display(),
        src.fstype,
        src.sector_size
    )
}
