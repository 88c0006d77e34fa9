//! Which filesystem the kernel command line names for `/var`, parsed with the rules of
//! systemd-fstab-generator (`src/fstab-generator/fstab-generator.c`, `mount_array_add()`).

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::initrd::cmdline::{get, Param};
use crate::ondisk::cescape::{cunescape, split_unescaped};

/// The generator's key; matched exactly, as its `parse_proc_cmdline_item()` uses `streq`.
const MOUNT_EXTRA: &str = "systemd.mount-extra";
/// Our own initrd-only setting; it wins over `systemd.mount-extra=`.
const RD_VAR: &str = "rd.extmerge.var";

/// Filesystem types that are not on a block device (or need the network): not ours to mount.
const NOT_BLOCK_FSTYPES: &[&str] = &[
    "tmpfs",
    "ramfs",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "virtiofs",
    "9p",
    "ceph",
    "glusterfs",
    "overlay",
    "none",
    "bind",
    "rbind",
    "swap",
];

/// The filesystem to mount at `<root>/var`, from one kernel command line parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarSpec {
    /// Which device.
    pub what: What,
    /// Filesystem type; `None` = probe (`auto` and an empty field mean the same).
    pub fstype: Option<String>,
    /// Mount options as written (comma-separated); `None` = defaults (read-write).
    pub options: Option<String>,
    /// Where it came from, for messages: the parameter as written (`key=value`), or the
    /// file and line of the root's configuration (`/sysroot/etc/fstab:3`).
    pub source_param: String,
}

/// How the device is named: like fstab, a path or a udev tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// A device node or a symlink to one (`/dev/vdb`, `/dev/disk/by-path/…`).
    Path(PathBuf),
    /// `LABEL=`: filesystem label.
    Label(String),
    /// `UUID=`: filesystem UUID.
    Uuid(String),
    /// `PARTUUID=`: GPT partition UUID.
    PartUuid(String),
    /// `PARTLABEL=`: GPT partition name.
    PartLabel(String),
}

impl What {
    /// The fstab tag and the `/dev/disk/by-*` directory, or `None` for a path.
    pub fn tag(&self) -> Option<(&'static str, &'static str, &str)> {
        match self {
            What::Path(_) => None,
            What::Label(v) => Some(("LABEL", "label", v)),
            What::Uuid(v) => Some(("UUID", "uuid", v)),
            What::PartUuid(v) => Some(("PARTUUID", "partuuid", v)),
            What::PartLabel(v) => Some(("PARTLABEL", "partlabel", v)),
        }
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.tag()) {
            (What::Path(p), _) => write!(f, "{}", p.display()),
            (_, Some((tag, _, value))) => write!(f, "{tag}={value}"),
            (_, None) => Ok(()),
        }
    }
}

/// What the kernel command line says about `/var`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineVar {
    /// Nothing names `/var`.
    Unnamed,
    /// The parameter (as written) names a `/var` that is not a block device filesystem (tmpfs,
    /// network, bind): the booted system's business.
    NotBlock(String),
    /// The `/var` to mount.
    Spec(VarSpec),
}

/// The `/var` spec on the command line: `rd.extmerge.var=` (initrd only, last one wins),
/// else the first `systemd.mount-extra=` entry for `/var` (see the module docs for why first).
///
/// `Ok(None)`: nothing names `/var`, or the entry that does is not a block device (tmpfs,
/// network, bind) and is left to the booted system. A malformed spec is an `Err`.
pub fn spec_from_cmdline(params: &[Param], in_initrd: bool) -> Result<Option<VarSpec>, String> {
    Ok(match var_from_cmdline(params, in_initrd)? {
        CmdlineVar::Spec(spec) => Some(spec),
        CmdlineVar::Unnamed | CmdlineVar::NotBlock(_) => None,
    })
}

/// [`spec_from_cmdline`], telling "not named" from "named but not a block device".
pub fn var_from_cmdline(params: &[Param], in_initrd: bool) -> Result<CmdlineVar, String> {
    if in_initrd {
        if let Some(value) = get(params, RD_VAR, false) {
            let source = format!("{RD_VAR}={}", value.unwrap_or(""));
            let value = value.ok_or_else(|| {
                format!("{RD_VAR} needs a value: {RD_VAR}=WHAT[:FSTYPE[:OPTIONS]]")
            })?;
            return parse_rd_var(value, source).map(CmdlineVar::Spec);
        }
    }
    for param in params.iter().filter(|p| p.key == MOUNT_EXTRA) {
        // systemd ignores a value-less entry (proc_cmdline_value_missing), so do we.
        let Some(value) = param.value.as_deref() else {
            continue;
        };
        let source = format!("{MOUNT_EXTRA}={value}");
        match parse_mount_extra(value, &source)? {
            Entry::OtherWhere => continue,
            Entry::NotBlock => return Ok(CmdlineVar::NotBlock(source)),
            Entry::Var(spec) => return Ok(CmdlineVar::Spec(spec)),
        }
    }
    Ok(CmdlineVar::Unnamed)
}

/// What one `systemd.mount-extra=` entry means for us.
enum Entry {
    /// Its WHERE is not `/var` (or systemd would ignore it anyway).
    OtherWhere,
    /// It is for `/var` but not a block device filesystem.
    NotBlock,
    /// It is for `/var`.
    Var(VarSpec),
}

fn parse_rd_var(value: &str, source: String) -> Result<VarSpec, String> {
    let fields = split_fields(value, 3)
        .map_err(|e| format!("{source}: {e} (expected {RD_VAR}=WHAT[:FSTYPE[:OPTIONS]])"))?;
    let mut fields = fields.into_iter();
    let what = fields.next().unwrap_or_default();
    let fstype = fields.next();
    let options = fields.next();
    build(what, fstype, options, source)
}

fn parse_mount_extra(value: &str, source: &str) -> Result<Entry, String> {
    let fields = match split_fields(value, 4) {
        Ok(f) if f.len() >= 2 => f,
        // systemd logs "Failed to parse systemd.mount-extra= option, ignoring" and the booted
        // system gets no var.mount either; refuse loudly when it was evidently meant for /var.
        result => {
            let raw_where = raw_fields(value).get(1).copied().unwrap_or("");
            if simplify(raw_where.as_bytes()) == b"/var" {
                let why = result.err().unwrap_or_else(|| "missing WHERE".to_string());
                return Err(format!(
                    "{source}: {why}; systemd-fstab-generator ignores this entry too \
                     (expected {MOUNT_EXTRA}=WHAT:/var[:FSTYPE[:OPTIONS]], at most 4 fields, \
                     a ':' inside WHAT written as \\x3a)"
                ));
            }
            return Ok(Entry::OtherWhere);
        }
    };
    let mut fields = fields.into_iter();
    let what = fields.next().unwrap_or_default();
    let where_ = fields.next().unwrap_or_default();
    let fstype = fields.next();
    let options = fields.next();
    if simplify(&where_) != b"/var" {
        return Ok(Entry::OtherWhere);
    }
    let fstype_str = fstype.as_deref().map(String::from_utf8_lossy);
    let options_str = options.as_deref().map(String::from_utf8_lossy);
    if not_block(fstype_str.as_deref(), options_str.as_deref()) {
        return Ok(Entry::NotBlock);
    }
    build(what, fstype, options, source.to_string()).map(Entry::Var)
}

/// tmpfs, network and bind mounts are the booted system's business, not the initrd's.
pub(super) fn not_block(fstype: Option<&str>, options: Option<&str>) -> bool {
    let fstype_virtual =
        fstype.is_some_and(|t| NOT_BLOCK_FSTYPES.contains(&t) || t.starts_with("fuse"));
    let options_virtual = options.is_some_and(|o| {
        o.split(',')
            .any(|w| matches!(w, "bind" | "rbind" | "_netdev"))
    });
    fstype_virtual || options_virtual
}

/// A [`VarSpec`] from the raw fields; errors are prefixed with `source`.
pub(super) fn build(
    what: Vec<u8>,
    fstype: Option<Vec<u8>>,
    options: Option<Vec<u8>>,
    source: String,
) -> Result<VarSpec, String> {
    let what = parse_what(what).map_err(|e| format!("{source}: {e}"))?;
    let text = |field: Option<Vec<u8>>, name: &str| -> Result<Option<String>, String> {
        match field {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => String::from_utf8(v)
                .map(Some)
                .map_err(|_| format!("{source}: {name} is not valid UTF-8")),
        }
    };
    let fstype = text(fstype, "FSTYPE")?.filter(|t| t != "auto");
    let options = text(options, "OPTIONS")?;
    if let Some(opts) = &options {
        super::mount::MountPlan::from_options(opts).map_err(|e| format!("{source}: {e}"))?;
    }
    Ok(VarSpec {
        what,
        fstype,
        options,
        source_param: source,
    })
}

/// Builds a [`What`] from a tag value.
type MakeWhat = fn(String) -> What;

/// `fstab_node_to_udev_node()`'s tags, in its order.
const TAGS: &[(&str, MakeWhat)] = &[
    ("LABEL=", What::Label),
    ("UUID=", What::Uuid),
    ("PARTUUID=", What::PartUuid),
    ("PARTLABEL=", What::PartLabel),
];

fn parse_what(raw: Vec<u8>) -> Result<What, String> {
    if raw.is_empty() {
        return Err("WHAT is empty".to_string());
    }
    if raw[0] == b'/' {
        return Ok(What::Path(PathBuf::from(OsString::from_vec(raw))));
    }
    let text = String::from_utf8(raw).map_err(|_| "WHAT is not valid UTF-8".to_string())?;
    for (prefix, make) in TAGS {
        if let Some(value) = text.strip_prefix(prefix) {
            let value = unquote(value);
            if value.is_empty() {
                return Err(format!("{prefix} has an empty value"));
            }
            return Ok(make(value.to_string()));
        }
    }
    let looks_like_tag = text
        .split_once('=')
        .is_some_and(|(t, _)| !t.is_empty() && t.bytes().all(|b| b.is_ascii_uppercase()));
    if looks_like_tag {
        return Err(format!(
            "unknown tag in WHAT '{text}' (known: LABEL=, UUID=, PARTUUID=, PARTLABEL=)"
        ));
    }
    Err(format!(
        "WHAT '{text}' is neither an absolute device path nor LABEL=, UUID=, PARTUUID=, PARTLABEL="
    ))
}

/// systemd's `unquote()` in `tag_to_udev_node()`: one pair of surrounding quotes goes.
fn unquote(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && matches!(b[0], b'"' | b'\'') && b[b.len() - 1] == b[0] {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// `s` cut at every ':' that is not part of a backslash escape (fields still escaped). An
/// escape never contains ':' itself, except the invalid `\:` that cunescape refuses later.
fn raw_fields(s: &str) -> Vec<&str> {
    // The cuts are at ASCII ':' (or the ends), so every piece is a valid `str` slice.
    split_unescaped(s.as_bytes(), b':')
        .into_iter()
        .map(|r| &s[r])
        .collect()
}

/// `extract_many_words(&s, ":", EXTRACT_CUNESCAPE|EXTRACT_DONT_COALESCE_SEPARATORS, …)` for
/// up to `max` words, then "text left over" is an error as in `mount_array_add()`.
///
/// Empty fields are kept, a trailing `:` yields a last empty field, C escapes are decoded
/// (`\x3a` is how a colon gets into a field; `\:` is an invalid escape, as upstream).
pub(super) fn split_fields(s: &str, max: usize) -> Result<Vec<Vec<u8>>, String> {
    let raw = raw_fields(s);
    // Only an empty remainder after the last wanted field is fine ("a:b:c:d:").
    if raw.len() > max + 1 || (raw.len() == max + 1 && !raw[max].is_empty()) {
        return Err(format!("more than {max} ':'-separated fields"));
    }
    raw.iter()
        .take(max)
        .map(|f| cunescape(f).map_err(|e| format!("field '{f}': {e}")))
        .collect()
}

/// systemd's `path_simplify()` for comparing WHERE: duplicate slashes, `.` components and a
/// trailing slash go (`..` stays, as upstream).
pub(super) fn simplify(path: &[u8]) -> Vec<u8> {
    let absolute = path.first() == Some(&b'/');
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let mut out = Vec::with_capacity(path.len());
    if absolute {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    out
}
