//! Open an extension image with the protection it carries, as systemd's dissect does:
//! a plain file system, a file system with `.roothash`/`.verity` (and `.roothash.p7s`) sidecars,
//! or a GPT Discoverable Disk Image with verity and signature partitions. The root hash is
//! checked against the hash tree before activation (activation with a wrong hash succeeds and
//! only reads fail later), signatures are verified in userspace against `<root>/…/verity.d`,
//! and the image policy decides what is acceptable.

use crate::image::ddi::{self, DdiPartition, Designator, VerityLayout};
use crate::image::policy::{ImagePolicy, Protection};
use crate::image::sidecar::HashTree;
use crate::image::{open_image, ImageFile, OpenedImage};
use crate::kernel::fscontext::{mount_detached, MountFlags};
use crate::kernel::loopdev::{LoopDevice, LoopOptions};
use crate::ondisk::superblock::{check_declared_size, probe_bytes, FsType, Probed, PROBE_LEN};
use crate::ondisk::{signature, verity};
use anyhow::{anyhow, bail, Context, Result};
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
    /// How errors name the hash tree: the `.verity` file or the image's verity partition.
    hash_name: String,
    hash: (u64, u64),
    sector_size: u32,
    roothash_hex: String,
    signature: Option<Vec<u8>>,
}

/// How errors name a partition of a DDI: the image, the partition's type and its label.
fn partition_name(img: &ImageFile, p: &DdiPartition) -> String {
    let label = if p.label.is_empty() {
        String::new()
    } else {
        format!(" {:?}", p.label)
    };
    format!(
        "{}: the {} partition{label}",
        img.shown.display(),
        p.type_name()
    )
}

/// The root hash and signature of a DDI's signature partition, read by the bounded reader:
/// one over 4 MiB or beyond the end of the file is refused before anything is read.
fn sig_partition(img: &ImageFile, l: &VerityLayout) -> Result<Option<(String, Vec<u8>)>> {
    let Some(sig) = &l.sig else { return Ok(None) };
    signature::read_verity_sig(&mut img.reader_at(0), sig.offset, sig.size, img.size)
        .map(Some)
        .with_context(|| partition_name(img, sig))
}

/// The file system in bytes `offset..offset + size` of `img` (`name` says which, for errors).
/// Nothing beyond that window or the file is read, and a file system that declares more bytes
/// than the window holds is refused (mounting it would fail later, or with a bare EINVAL).
fn fstype_at(img: &ImageFile, offset: u64, size: u64, name: &str) -> Result<FsType> {
    if offset.checked_add(size).is_none_or(|end| end > img.size) {
        bail!(
            "{name} (bytes {offset}+{size}) ends beyond the end of the file ({} bytes): refusing",
            img.size
        );
    }
    // At most PROBE_LEN, so the cast cannot truncate.
    let mut head = vec![0u8; (PROBE_LEN as u64).min(size) as usize];
    img.read_exact_at(&mut head, offset)
        .with_context(|| format!("reading the first bytes of {name}"))?;
    let Probed::Filesystem(fs) = probe_bytes(&head) else {
        bail!("{name} holds no known file system");
    };
    check_declared_size(&head, fs, size, name)?;
    Ok(fs)
}

/// [`fstype_at`] for a partition of a DDI.
fn partition_fstype(img: &ImageFile, p: &DdiPartition) -> Result<FsType> {
    fstype_at(img, p.offset, p.size, &partition_name(img, p))
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
        Probed::Filesystem(_) => {
            let (Some((designator, hex)), Some(tree)) = (&side.roothash, &side.verity_data) else {
                return Ok(None);
            };
            Ok(Some(VeritySource {
                designator: *designator,
                // Probed again with the size check open_image makes for images without verity.
                fstype: fstype_at(img, 0, img.size, &img.shown.display().to_string())?,
                data: (0, img.size),
                hash_source: HashSource::Sidecar(tree),
                hash_name: tree.shown.display().to_string(),
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
                fstype: partition_fstype(img, &layout.data)?,
                data: (layout.data.offset, layout.data.size),
                hash_source: HashSource::Image,
                hash_name: partition_name(img, v),
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
    let hash_file = match src.hash_source {
        HashSource::Sidecar(t) => &t.file,
        HashSource::Image => &img.file,
    };
    // The bounded reader: the superblock must fit the hash area, and the tree and data it
    // declares must fit theirs, before anything beyond the superblock is read.
    let mut hash_reader = |off: u64, buf: &mut [u8]| {
        std::os::unix::fs::FileExt::read_exact_at(hash_file, buf, src.hash.0 + off)
    };
    let (sb, _) = verity::read_superblock(&mut hash_reader, 0, src.hash.1, src.data.1)
        .with_context(|| src.hash_name.clone())?;
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
    let fstype = partition_fstype(img, &layout.data)?;
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
            // Partitions of a DDI are not probed for it: walked in full.
            no_xattrs: false,
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
    use crate::kernel::root::proc_fd_path;
    use std::os::fd::AsFd;
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
        // Not probed for it (DDIs are erofs or squashfs): walked in full.
        no_xattrs: false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::ImageClass;
    use crate::image::ddi::PartitionRole;
    use crate::kernel::root::Root;
    use std::path::Path;

    const RH: &str = "aea69771e07dcdaf5667b114ee6caaed6d2df19518a4c6e1672c868a39128be7";

    /// `files` written into a fresh root, and the image `/a.raw` of it opened.
    fn image(files: &[(&str, &[u8])]) -> (tempfile::TempDir, ImageFile) {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let root = Root::open(dir.path()).unwrap();
        let img = ImageFile::open(&root, Path::new("/a.raw")).unwrap();
        (dir, img)
    }

    fn squashfs_at(img: &mut [u8], at: usize, bytes_used: u64) {
        img[at..at + 4].copy_from_slice(b"hsqs");
        img[at + 40..at + 48].copy_from_slice(&bytes_used.to_le_bytes());
    }

    fn partition(role: PartitionRole, label: &str, offset: u64, size: u64) -> DdiPartition {
        DdiPartition {
            designator: Designator::Root,
            role,
            arch: "x86-64",
            type_uuid: ddi::type_uuid_for(Designator::Root, role, "x86-64").unwrap(),
            part_uuid: [0x11; 16],
            label: label.into(),
            offset,
            size,
            no_auto: false,
            flags: 0,
        }
    }

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    /// The data partition is probed within its own bounds: beyond the file, truncated or
    /// empty, each is refused naming the image, the partition and why.
    #[test]
    fn data_partition_is_probed_within_its_bounds() {
        let mut bytes = vec![0u8; 65536];
        squashfs_at(&mut bytes, 32768, 20000);
        let (_dir, img) = image(&[("a.raw", &bytes)]);
        let shown = img.shown.display().to_string();
        let data = |offset, size| partition(PartitionRole::Data, "root", offset, size);
        assert_eq!(
            partition_fstype(&img, &data(32768, 32768)).unwrap(),
            FsType::Squashfs
        );
        assert_eq!(
            err(partition_fstype(&img, &data(32768, 8192))),
            format!("{shown}: the root-x86-64 partition \"root\" is truncated: its squashfs superblock says the file system takes 20000 bytes, but only 8192 are there")
        );
        assert_eq!(
            err(partition_fstype(&img, &data(32768, 65536))),
            format!("{shown}: the root-x86-64 partition \"root\" (bytes 32768+65536) ends beyond the end of the file (65536 bytes): refusing")
        );
        assert_eq!(
            err(partition_fstype(&img, &data(u64::MAX, 2))),
            format!("{shown}: the root-x86-64 partition \"root\" (bytes {}+2) ends beyond the end of the file (65536 bytes): refusing", u64::MAX)
        );
        assert_eq!(
            err(partition_fstype(
                &img,
                &partition(PartitionRole::Data, "", 4096, 4096)
            )),
            format!("{shown}: the root-x86-64 partition holds no known file system")
        );
    }

    /// The signature partition goes through the bounded reader, and errors say which it was.
    #[test]
    fn signature_partition_is_read_bounded() {
        let json = format!(r#"{{"rootHash":"{RH}","signature":"AQID"}}"#);
        let mut bytes = vec![0u8; 16384];
        bytes[8192..8192 + json.len()].copy_from_slice(json.as_bytes());
        let (_dir, img) = image(&[("a.raw", &bytes)]);
        let shown = img.shown.display().to_string();
        let layout = |offset, size| VerityLayout {
            designator: Designator::Root,
            data: partition(PartitionRole::Data, "root", 0, 4096),
            verity: Some(partition(PartitionRole::Verity, "verity", 4096, 4096)),
            sig: Some(partition(PartitionRole::VeritySig, "sig", offset, size)),
        };
        assert_eq!(
            sig_partition(&img, &layout(8192, 8192)).unwrap(),
            Some((RH.to_string(), vec![1, 2, 3]))
        );
        assert_eq!(
            err(sig_partition(&img, &layout(8192, 16384))),
            format!("{shown}: the root-x86-64-verity-sig partition \"sig\": verity signature partition (bytes 8192+16384) ends beyond the end of the disk (16384 bytes): refusing")
        );
        assert_eq!(
            err(sig_partition(&img, &layout(0, 5 << 20))),
            format!("{shown}: the root-x86-64-verity-sig partition \"sig\": verity signature partition is 5242880 bytes, more than the 4 MiB systemd accepts: refusing")
        );
    }

    /// A `.verity` sidecar too short for its superblock, or one whose superblock declares more
    /// data than the image holds, is refused before the tree is read, naming the sidecar.
    #[test]
    fn verity_superblock_is_read_bounded() {
        let mut fs = vec![0u8; 8192];
        squashfs_at(&mut fs, 0, 8192);
        let mut sb = vec![0u8; 4096];
        sb[..8].copy_from_slice(b"verity\0\0");
        sb[8..12].copy_from_slice(&1u32.to_le_bytes());
        sb[12..16].copy_from_slice(&1u32.to_le_bytes());
        sb[32..38].copy_from_slice(b"sha256");
        sb[64..68].copy_from_slice(&4096u32.to_le_bytes());
        sb[68..72].copy_from_slice(&4096u32.to_le_bytes());
        sb[72..80].copy_from_slice(&1000u64.to_le_bytes());
        let policy = ImagePolicy::class_default(ImageClass::Sysext);
        let open = |verity: &[u8]| {
            let (dir, img) = image(&[
                ("a.raw", &fs),
                ("a.roothash", RH.as_bytes()),
                ("a.verity", verity),
            ]);
            let e = open_protected(&img, &[], &policy, MountFlags::default()).unwrap_err();
            (
                dir.path().join("a.verity").display().to_string(),
                e.to_string(),
            )
        };
        let (sidecar, e) = open(&sb[..100]);
        assert_eq!(
            e,
            format!("{sidecar}: the verity hash tree is 100 bytes, too short to hold its 512-byte superblock at byte 0 (truncated?)")
        );
        let (sidecar, e) = open(&sb);
        assert_eq!(
            e,
            format!("{sidecar}: verity superblock declares 1000 data blocks of 4096 bytes (4096000 bytes), but the data is only 8192 bytes: refusing")
        );
    }
}
