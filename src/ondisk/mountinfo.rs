//! `/proc/<pid>/mountinfo` lines, parsed from bytes, and which mounts a path lookup would reach.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of `/proc/<pid>/mountinfo`, with `\ooo` escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount ID (field 1).
    pub mount_id: u64,
    /// Parent mount ID (field 2).
    pub parent_id: u64,
    /// Device major number of the filesystem.
    pub major: u32,
    /// Device minor number of the filesystem.
    pub minor: u32,
    /// Directory of the filesystem that forms this mount's root.
    pub root: PathBuf,
    /// Mount point, relative to the process root.
    pub mount_point: PathBuf,
    /// Per-mount options (`ro,nodev,relatime`).
    pub options: String,
    /// Optional fields (`shared:1`, `master:2`, …).
    pub optional_fields: Vec<String>,
    /// Filesystem type (`overlay`).
    pub fstype: String,
    /// Mount source (`sysext`, `/dev/vda1`, `none`).
    pub source: String,
    /// Superblock options (`ro,lowerdir+=…`).
    pub super_options: String,
}

impl MountInfo {
    /// Whether the per-mount options contain `opt` exactly (e.g. "ro", "nodev").
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.split(',').any(|o| o == opt)
    }
}

/// Decode the kernel's `\ooo` octal escapes (space, tab, newline, backslash, comma).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let oct = field.get(i + 1..i + 4).filter(|d| {
            field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match oct {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

fn unescape_path(field: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

fn unescape_string(field: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

/// Parse mountinfo text (bytes: mount points need not be UTF-8).
pub fn parse_mountinfo(text: &[u8]) -> Result<Vec<MountInfo>> {
    let mut out = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = parse_line(line).with_context(|| {
            format!(
                "mountinfo line {}: {:?}",
                n + 1,
                String::from_utf8_lossy(line)
            )
        })?;
        out.push(parsed);
    }
    Ok(out)
}

fn parse_line(line: &[u8]) -> Result<MountInfo> {
    let fields: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let sep = fields
        .iter()
        .position(|f| *f == b"-")
        .context("no ' - ' separator")?;
    if sep < 6 || fields.len() < sep + 3 {
        bail!("too few fields");
    }
    let num = |f: &[u8], what: &str| -> Result<u64> {
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad {what}"))
    };
    let devno = std::str::from_utf8(fields[2])
        .ok()
        .and_then(|s| s.split_once(':'));
    let (major, minor) = devno
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .context("bad major:minor")?;
    Ok(MountInfo {
        mount_id: num(fields[0], "mount id")?,
        parent_id: num(fields[1], "parent id")?,
        major,
        minor,
        root: unescape_path(fields[3]),
        mount_point: unescape_path(fields[4]),
        options: unescape_string(fields[5]),
        optional_fields: fields[6..sep].iter().map(|f| unescape_string(f)).collect(),
        fstype: unescape_string(fields[sep + 1]),
        source: unescape_string(fields[sep + 2]),
        super_options: fields
            .get(sep + 3)
            .map(|f| unescape_string(f))
            .unwrap_or_default(),
    })
}

/// Whether a path lookup of `m.mount_point` would end on mount `m`, judged from the table.
fn visible(table: &[MountInfo], m: &MountInfo) -> bool {
    let mut cur = m;
    // The mount we came up from: it may sit on `cur` at the same path (a stack we are
    // looking *through*), which does not make `cur` unreachable.
    let mut below: Option<u64> = None;
    // Walk up the parent chain; the bound guards against a malformed (cyclic) table.
    for _ in 0..=table.len() {
        // Something stacked on top at the same mount point (incl. a beneath-mounted one).
        let covered = table.iter().any(|o| {
            o.parent_id == cur.mount_id
                && o.mount_id != cur.mount_id
                && Some(o.mount_id) != below
                && o.mount_point == cur.mount_point
        });
        // A sibling mounted over a directory on the way to our mount point hides us.
        let hidden = table.iter().any(|o| {
            o.parent_id == cur.parent_id
                && o.mount_id != cur.mount_id
                && o.mount_point != cur.mount_point
                && cur.mount_point.starts_with(&o.mount_point)
        });
        if covered || hidden {
            return false;
        }
        match table
            .iter()
            .find(|p| p.mount_id == cur.parent_id && p.mount_id != cur.mount_id)
        {
            Some(parent) => {
                below = Some(cur.mount_id);
                cur = parent;
            }
            None => return true, // reached the namespace root (its parent is not listed)
        }
    }
    false
}

/// Mounts strictly below `prefix` that are reachable, sorted by path, dropping any
/// nested inside an earlier one (systemd's `get_sub_mounts`; a recursive clone of
/// the outer one carries the nested ones along). Pure: works on a parsed table.
pub fn visible_submounts(table: &[MountInfo], prefix: &Path) -> Vec<MountInfo> {
    let mut found: Vec<&MountInfo> = table
        .iter()
        .filter(|m| m.mount_point != prefix && m.mount_point.starts_with(prefix))
        .filter(|m| visible(table, m))
        .collect();
    found.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    let mut out: Vec<MountInfo> = Vec::new();
    for m in found {
        if !out
            .iter()
            .any(|o| m.mount_point.starts_with(&o.mount_point))
        {
            out.push(m.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_handles_octal_and_stray_backslashes() {
        assert_eq!(unescape(b"a\\040b\\134c\\054"), b"a b\\c,".to_vec());
        assert_eq!(unescape(b"x\\9y\\"), b"x\\9y\\".to_vec());
    }
}
