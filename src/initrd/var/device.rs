//! Finding the block device a `/var` spec names: udev's `/dev/disk/by-*` links when they
//! exist, else a scan of `/sys/class/block` that reads ext4/xfs/btrfs superblocks
//! ([`crate::ondisk::superblock`]) and GPT entries ([`crate::ondisk::gpt`]) itself (so it
//! works before, or without, udev). Polls with a bounded deadline.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::spec::What;
use crate::ondisk::bytes::format_uuid;
use crate::ondisk::gpt::{self, Gpt};
use crate::ondisk::superblock::{self, FsType, Probed};

/// Bytes that cover every superblock field we read (the btrfs label ends at 0x1022b).
pub const SB_PROBE_LEN: usize = superblock::HEAD_LEN;
/// First and longest pause between two looks; short first, since devices often appear fast.
const POLL_FIRST: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(250);
/// How many devices the timeout error lists before it summarises.
const REPORT_MAX: usize = 24;

/// What a superblock says about a filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsInfo {
    /// Kernel filesystem type to mount it with (`ext4` also for ext2/ext3).
    pub fstype: &'static str,
    /// Volume label, `None` when unset.
    pub label: Option<String>,
    /// Filesystem UUID as blkid prints it (lowercase), `None` when all zero.
    pub uuid: Option<String>,
}

/// Recognise ext2/3/4, btrfs or xfs from the first [`SB_PROBE_LEN`] bytes of a device.
///
/// The read-only image formats the prober also knows (squashfs, erofs) are not candidates:
/// `/var` is mounted writable.
pub fn probe_superblock(head: &[u8]) -> Option<FsInfo> {
    let sb = superblock::probe(head);
    let Probed::Filesystem(fs @ (FsType::Ext4 | FsType::Btrfs | FsType::Xfs)) = sb.kind else {
        return None;
    };
    Some(FsInfo {
        fstype: fs.kernel_name(),
        uuid: sb.uuid_text(),
        label: sb.label,
    })
}

/// Read the superblock area of a file or block device and probe it.
pub fn probe_path(path: &Path) -> Result<Option<FsInfo>> {
    Ok(probe_superblock(&read_head(path)?))
}

/// Read up to [`SB_PROBE_LEN`] bytes from the start of `path` (regular file or block device);
/// anything else (a FIFO, a directory) is refused without blocking.
pub fn read_head(path: &Path) -> Result<Vec<u8>> {
    // O_NONBLOCK so that a FIFO planted in an extension directory cannot hang us in
    // open(); it is rejected by the type check right after.
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", path.display()))?;
    let stat = rustix::fs::fstat(&fd).with_context(|| format!("stat of {}", path.display()))?;
    use rustix::fs::FileType;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile | FileType::BlockDevice => {}
        other => bail!(
            "{} is not a regular file or block device (it is {:?})",
            path.display(),
            other
        ),
    }
    let mut head = Vec::with_capacity(SB_PROBE_LEN);
    File::from(fd)
        .take(SB_PROBE_LEN as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("reading the first bytes of {}", path.display()))?;
    Ok(head)
}

/// One GPT partition entry: what PARTUUID= and PARTLABEL= match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptEntry {
    /// Unique partition GUID (lowercase, printed order).
    pub partuuid: String,
    /// Partition name (UTF-16LE on disk).
    pub partlabel: String,
}

/// The tags of partition `number` (1-based, sysfs `partition`); `None` when the number is
/// out of range or the entry unused.
pub(super) fn entry_tags(table: &Gpt, number: u32) -> Option<GptEntry> {
    let p = table.partitions.iter().find(|p| p.number == number)?;
    Some(GptEntry {
        partuuid: format_uuid(&p.part_uuid),
        partlabel: p.label.clone(),
    })
}

/// The primary GPT of a whole disk, read once per scan for all its partitions.
fn read_disk_gpt(disk: &Path, sector_size: u32) -> Result<Gpt> {
    let mut file = File::open(disk).with_context(|| format!("opening {}", disk.display()))?;
    // metadata().len() is 0 for block devices; seeking to the end works for both.
    let size = file
        .seek(SeekFrom::End(0))
        .with_context(|| format!("finding the size of {}", disk.display()))?;
    let mut read_at = |off: u64, buf: &mut [u8]| file.read_exact_at(buf, off);
    gpt::read_gpt(&mut read_at, size, Some(sector_size))
        .with_context(|| format!("GPT of {}", disk.display()))
}

/// udev's `encode_devnode_name()`: the name of a `/dev/disk/by-*` link for a tag value.
pub fn encode_devnode_name(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        // Valid multi-byte UTF-8 stays; ASCII outside the allow-list becomes \xNN.
        if !c.is_ascii() || c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
    }
    out
}

/// The reverse of [`encode_devnode_name`] for `\xNN` escapes (a by-* link name to a tag value).
fn decode_devnode_name(name: &str) -> String {
    let mut out = Vec::with_capacity(name.len());
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (
            b[i],
            b.get(i + 1),
            hex.and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'\\', Some(b'x'), Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `/dev/disk/by-{label,uuid,partuuid,partlabel}/NAME` path as the tag it stands for, so a
/// path spec also works when udev has not made the link.
fn path_as_tag(path: &Path) -> Option<What> {
    let dir = path.parent()?.to_str()?;
    let name = decode_devnode_name(path.file_name()?.to_str()?);
    match dir {
        "/dev/disk/by-label" => Some(What::Label(name)),
        "/dev/disk/by-uuid" => Some(What::Uuid(name)),
        "/dev/disk/by-partuuid" => Some(What::PartUuid(name)),
        "/dev/disk/by-partlabel" => Some(What::PartLabel(name)),
        _ => None,
    }
}

/// `Some(canonical node)` if `path` leads to a block device, `None` if it does not exist.
fn block_node(path: &Path) -> Result<Option<PathBuf>> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_block_device() => {
            Ok(Some(std::fs::canonicalize(path).with_context(|| {
                format!("resolving {}", path.display())
            })?))
        }
        Ok(_) => bail!("{} exists but is not a block device", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("stat {}", path.display())),
    }
}

/// One entry of `/sys/class/block`.
struct SysBlock {
    /// Kernel name (`vda1`).
    name: String,
    /// Device node, checked to be the right block device.
    node: PathBuf,
    /// For a partition: its number and the node and logical sector size of its disk.
    partition: Option<(u32, PathBuf, u32)>,
}

fn uevent_field(uevent: &str, key: &str) -> Option<String> {
    uevent
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

/// The node and sysfs dir of a `/sys/class/block` entry, if its node exists and matches.
fn sys_block(sys: &Path) -> Option<(String, PathBuf, PathBuf)> {
    let dir = std::fs::canonicalize(sys).ok()?;
    let uevent = std::fs::read_to_string(dir.join("uevent")).ok()?;
    let name = uevent_field(&uevent, "DEVNAME")?;
    let major: u32 = uevent_field(&uevent, "MAJOR")?.parse().ok()?;
    let minor: u32 = uevent_field(&uevent, "MINOR")?.parse().ok()?;
    let node = Path::new("/dev").join(&name);
    // devtmpfs makes the node; a stale or foreign node with another number is not it.
    let meta = std::fs::metadata(&node).ok()?;
    let rdev = rustix::fs::makedev(major, minor);
    (meta.file_type().is_block_device() && meta.rdev() == rdev).then_some((name, node, dir))
}

fn list_block_devices() -> Vec<SysBlock> {
    let Ok(entries) = std::fs::read_dir("/sys/class/block") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some((name, node, dir)) = sys_block(&entry.path()) else {
            continue;
        };
        // Nothing to read on an unbound loop device or an empty drive.
        let size = std::fs::read_to_string(dir.join("size")).unwrap_or_default();
        if size.trim() == "0" {
            continue;
        }
        let partition = std::fs::read_to_string(dir.join("partition"))
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .and_then(|n| {
                let parent = dir.parent()?;
                let (_, disk_node, _) = sys_block(parent)?;
                let sector = std::fs::read_to_string(parent.join("queue/logical_block_size"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(512);
                Some((n, disk_node, sector))
            });
        out.push(SysBlock {
            name,
            node,
            partition,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// One look for a tag among the block devices: matches, and one line per device looked at.
fn scan_sysfs(what: &What) -> (Vec<PathBuf>, Vec<String>) {
    let mut matches = Vec::new();
    let mut seen = Vec::new();
    // One read of each disk's table per look, however many of its partitions are listed.
    let mut tables: HashMap<PathBuf, Result<Gpt, String>> = HashMap::new();
    for dev in list_block_devices() {
        let found = match what {
            What::Label(_) | What::Uuid(_) => match probe_path(&dev.node) {
                Ok(Some(fs)) => {
                    seen.push(format!(
                        "{} ({} LABEL={:?} UUID={})",
                        dev.name,
                        fs.fstype,
                        fs.label.as_deref().unwrap_or(""),
                        fs.uuid.as_deref().unwrap_or("-")
                    ));
                    match what {
                        What::Label(l) => fs.label.as_deref() == Some(l.as_str()),
                        What::Uuid(u) => fs.uuid.is_some_and(|x| x.eq_ignore_ascii_case(u)),
                        _ => false,
                    }
                }
                Ok(None) => {
                    seen.push(format!("{} (no ext4/xfs/btrfs superblock)", dev.name));
                    false
                }
                Err(e) => {
                    seen.push(format!("{} (unreadable: {e:#})", dev.name));
                    false
                }
            },
            What::PartUuid(_) | What::PartLabel(_) => {
                let Some((number, disk, sector)) = &dev.partition else {
                    seen.push(format!("{} (not a partition)", dev.name));
                    continue;
                };
                let table = tables
                    .entry(disk.clone())
                    .or_insert_with(|| read_disk_gpt(disk, *sector).map_err(|e| format!("{e:#}")));
                match table.as_ref().map(|t| entry_tags(t, *number)) {
                    Ok(Some(e)) => {
                        seen.push(format!(
                            "{} (PARTUUID={} PARTLABEL={:?})",
                            dev.name, e.partuuid, e.partlabel
                        ));
                        match what {
                            What::PartUuid(u) => e.partuuid.eq_ignore_ascii_case(u),
                            What::PartLabel(l) => &e.partlabel == l,
                            _ => false,
                        }
                    }
                    Ok(None) => {
                        seen.push(format!("{} (no GPT entry {number})", dev.name));
                        false
                    }
                    Err(e) => {
                        seen.push(format!("{} (no GPT entry: {e})", dev.name));
                        false
                    }
                }
            }
            What::Path(_) => false,
        };
        if found {
            matches.push(dev.node);
        }
    }
    (matches, seen)
}

/// One attempt: `Ok(Some(node))` when found, `Ok(None)` (with what was seen) to retry.
fn find_once(what: &What, seen: &mut Vec<String>) -> Result<Option<PathBuf>> {
    let tag = match what {
        What::Path(p) => {
            if let Some(node) = block_node(p)? {
                return Ok(Some(node));
            }
            seen.push(format!("{} (missing)", p.display()));
            match path_as_tag(p) {
                Some(tag) => tag,
                None => return Ok(None),
            }
        }
        other => other.clone(),
    };
    let Some((_, dir, value)) = tag.tag() else {
        return Ok(None);
    };
    let link = Path::new("/dev/disk")
        .join(format!("by-{dir}"))
        .join(encode_devnode_name(value));
    // A dangling link (device gone) is as good as none: fall through to the scan.
    if let Ok(Some(node)) = block_node(&link) {
        return Ok(Some(node));
    }
    seen.push(format!("{} (missing)", link.display()));
    let (matches, scanned) = scan_sysfs(&tag);
    match matches.as_slice() {
        [] => {
            seen.push(format!(
                "/sys/class/block: {}",
                summarise(&scanned, "no block devices with a node")
            ));
            Ok(None)
        }
        [one] => Ok(Some(one.clone())),
        many => bail!(
            "{tag} matches several devices ({}); name one unambiguously (e.g. by path)",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn summarise(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        return empty.to_string();
    }
    let mut text = items
        .iter()
        .take(REPORT_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > REPORT_MAX {
        text.push_str(&format!(", … and {} more", items.len() - REPORT_MAX));
    }
    text
}

/// Resolve `what` to a device node (symlinks resolved), polling until `timeout` has passed.
///
/// Looks at the path itself or udev's `/dev/disk/by-*` link, then scans `/sys/class/block`
/// (superblock labels/UUIDs, GPT partition UUIDs/names). A `timeout` of zero looks once.
/// The error after the deadline names the spec, the timeout and what was looked at.
pub fn resolve_device(what: &What, timeout: Duration) -> Result<PathBuf> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut pause = POLL_FIRST;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let mut seen = Vec::new();
        if let Some(node) =
            find_once(what, &mut seen).with_context(|| format!("looking for {what}"))?
        {
            tracing::debug!(%what, node = %node.display(), attempts, "found the /var device");
            return Ok(node);
        }
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "device {what} did not appear within {:.1?} ({attempts} looks); last look: {}",
                timeout,
                seen.join("; ")
            );
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(POLL_MAX);
    }
}
