//! The meta directory (`.systemd-sysext` / `.systemd-confext`) systemd places on top of a merged
//! hierarchy, byte-compatible with systemd's `store_info_in_meta()` so that `systemd-sysext status`,
//! `unmerge` and `refresh` work on our mounts and we work on theirs.

use crate::class::ImageClass;
use crate::kernel::root::{Found, Root};
use crate::limits;
use crate::ondisk::cescape::{cescape, cunescape};
use anyhow::{bail, Context};
use rustix::fs::AtFlags;
use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Contents of the meta dir (.systemd-sysext / .systemd-confext), byte-compatible with systemd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaContents {
    /// Accepted extension names, already in sorted order (systemd lists every merged extension,
    /// not only those populating this hierarchy).
    pub extensions: Vec<String>,
    /// `st_dev` of the freshly mounted overlay, as (major, minor).
    pub dev: (u32, u32),
    /// Workdir relative to the root (with or without leading `/`); only for a persistent upper.
    pub work_dir: Option<PathBuf>,
    /// The refresh-skip record, written as is (systemd's ends in a newline); `None` writes no
    /// `origin` file, as systemd without skip logic (257) does.
    pub origin: Option<String>,
    /// Backing block device of the host hierarchy when it is a lowerdir; `(0, 0)` means none.
    pub backing: Option<(u32, u32)>,
}

/// `FORMAT_DEVNUM`: `"%u:%u"`.
fn format_devnum((major, minor): (u32, u32)) -> String {
    format!("{major}:{minor}")
}

/// `write_string_file()` without `WRITE_STRING_FILE_AVOID_NEWLINE`: append `\n` unless present.
fn with_newline(mut s: Vec<u8>) -> Vec<u8> {
    if s.last() != Some(&b'\n') {
        s.push(b'\n');
    }
    s
}

/// `path_startswith()` drops every leading `/`, so systemd stores e.g. `.systemd-etc-workdir`.
fn strip_leading_slashes(p: &Path) -> &[u8] {
    let b = p.as_os_str().as_bytes();
    let n = b.iter().take_while(|c| **c == b'/').count();
    &b[n..]
}

/// File name -> bytes exactly as systemd writes them, in systemd's write order.
///
/// * list file (`extensions` / `confexts`): each name followed by `\n`; empty when none
///   (`WRITE_STRING_FILE_AVOID_NEWLINE`, newline added by hand).
/// * `origin`: as is (`AVOID_NEWLINE`), when the root's systemd reads one.
/// * `dev`: `MAJOR:MINOR\n` (no `AVOID_NEWLINE`, so `write_string_file` appends `\n`).
/// * `work_dir`: `cescape(<root-relative path without leading '/'>)\n`, only when set.
/// * `backing`: `MAJOR:MINOR\n`, only when set and not `0:0`.
pub fn render(class: ImageClass, c: &MetaContents) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::with_capacity(5);

    let mut list = Vec::new();
    for name in &c.extensions {
        list.extend_from_slice(name.as_bytes());
        list.push(b'\n');
    }
    files.push((class.list_file_name().to_string(), list));

    if let Some(origin) = &c.origin {
        files.push(("origin".to_string(), origin.clone().into_bytes()));
    }

    files.push((
        "dev".to_string(),
        with_newline(format_devnum(c.dev).into_bytes()),
    ));

    if let Some(wd) = &c.work_dir {
        let escaped = cescape(strip_leading_slashes(wd));
        files.push(("work_dir".to_string(), with_newline(escaped.into_bytes())));
    }

    if let Some(b) = c.backing.filter(|b| *b != (0, 0)) {
        files.push((
            "backing".to_string(),
            with_newline(format_devnum(b).into_bytes()),
        ));
    }

    files
}

/// Write render() into `<meta_root>/<class meta dir>/` (creating it 0755), then touch `meta_root`.
///
/// `meta_root` is the top lowerdir itself (systemd's `meta_path`); its mtime becomes the merged
/// hierarchy's mtime in read-only mode, which `status` shows as "since".
pub fn write(meta_root: &Path, class: ImageClass, c: &MetaContents) -> anyhow::Result<()> {
    let dir = meta_root.join(class.meta_dir_name());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("Failed to create meta directory '{}'", dir.display()))?;
    for (name, bytes) in render(class, c) {
        let path = dir.join(&name);
        // systemd writes into a fresh tmpfs dir without O_TRUNC; we truncate so a reused dir
        // cannot keep stale trailing bytes.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o666)
            .open(&path)
            .with_context(|| format!("Failed to write meta file '{}'", path.display()))?;
        f.write_all(&bytes)
            .with_context(|| format!("Failed to write meta file '{}'", path.display()))?;
    }
    let now = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, meta_root, &now, AtFlags::SYMLINK_NOFOLLOW)
        .with_context(|| format!("Failed to fix mtime of '{}'", meta_root.display()))?;
    Ok(())
}

/// systemd `parse_devnum()`: `MAJOR:MINOR`, each parsed by `safe_atou()` (strtoul base 0, so
/// `010` is octal and `0x10` hex), major < 2^12 and minor < 2^20.
pub fn parse_devnum(s: &str) -> Option<(u32, u32)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    // DECIMAL_STR_MAX(dev_t) for a 64-bit unsigned type is 22.
    if n == 0 || n > 22 || s.as_bytes().get(n) != Some(&b':') {
        return None;
    }
    let major = safe_atou(&s[..n])?;
    let minor = safe_atou(&s[n + 1..])?;
    if major >= 1 << 12 || minor >= 1 << 20 {
        return None;
    }
    Some((major, minor))
}

/// systemd `safe_atou()`: leading whitespace, optional sign, C base prefix, whole string, fits u32.
fn safe_atou(s: &str) -> Option<u32> {
    // strspn(WHITESPACE) and then strtoul's own isspace() skipping.
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let b = s.as_bytes();
    let (radix, digits) =
        if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
            (16, &s[2..])
        } else if b.first() == Some(&b'0') {
            (8, s)
        } else {
            (10, s)
        };
    if digits.is_empty() {
        return None;
    }
    let v = u64::from_str_radix(digits, radix).ok()?;
    if neg && v != 0 {
        return None;
    }
    u32::try_from(v).ok()
}

/// `read_one_line_file()`: the first line, without its terminator (`\n`, `\r` or NUL).
fn first_line(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|b| matches!(b, b'\n' | b'\r' | 0))
        .unwrap_or(bytes.len());
    &bytes[..end]
}

/// A merge found on a hierarchy: its top (the merged tree's root) and what its meta dir says.
#[derive(Debug)]
pub struct Merged {
    /// The hierarchy as configured (in-root, e.g. `/usr`).
    pub hierarchy: PathBuf,
    /// `O_PATH` fd of the merged tree's root, resolved inside the root.
    pub top: Found,
    /// How messages name it (root-prefixed).
    pub shown: PathBuf,
    /// What the meta dir says.
    pub info: MetaInfo,
}

/// The meta dir files of the tree whose root is `top`, read without leaving that tree.
fn tree_of(top: &Found, shown: &Path) -> anyhow::Result<Root> {
    let fd = top
        .fd
        .try_clone()
        .with_context(|| format!("duplicating the fd of {}", shown.display()))?;
    Root::from_fd(fd, shown.to_path_buf())
        .with_context(|| format!("opening {} as a tree", shown.display()))
}

/// systemd is_our_mount_point on a resolved hierarchy: it is a mount point, `<meta dir>/dev`
/// parses as MAJOR:MINOR, and the hierarchy's st_dev equals it. An unparsable `dev` is an error,
/// as upstream. Returns the `dev` file's bytes when it is ours, so [`inspect`] reads it once.
fn ours_dev(top: &Found, shown: &Path, class: ImageClass) -> anyhow::Result<Option<Vec<u8>>> {
    let mp = crate::kernel::mounts::is_mount_point_fd(top.fd.as_fd()).with_context(|| {
        format!(
            "Failed to determine whether '{}' is a mount point",
            shown.display()
        )
    })?;
    if !mp {
        tracing::debug!(
            "Hierarchy '{}' is not a mount point, skipping.",
            shown.display()
        );
        return Ok(None);
    }
    let tree = tree_of(top, shown)?;
    let f = Path::new(class.meta_dir_name()).join("dev");
    let Some(buf) = tree.read_optional(&f, limits::META_FILE)? else {
        tracing::debug!(
            "Hierarchy '{}' does not carry a {}/dev file, not a merged tree.",
            shown.display(),
            class.meta_dir_name()
        );
        return Ok(None);
    };
    let line = String::from_utf8_lossy(first_line(&buf)).into_owned();
    let Some(dev) = parse_devnum(&line) else {
        bail!(
            "Failed to parse device major/minor '{}' stored in '{}/dev' file on '{}'",
            line.escape_debug(),
            class.meta_dir_name(),
            shown.display()
        );
    };
    let st = top.stat.st_dev;
    if (rustix::fs::major(st), rustix::fs::minor(st)) != dev {
        tracing::debug!(
            "Hierarchy '{}' reports a different device major/minor than what we are seeing, assuming offline copy.",
            shown.display()
        );
        return Ok(None);
    }
    Ok(Some(buf))
}

/// The merge on `hierarchy` inside `root`, if there is one of ours (or systemd's); its meta
/// files read and validated. A malformed `work_dir` is an error: such a merge is not touched.
pub fn inspect(root: &Root, hierarchy: &Path, class: ImageClass) -> anyhow::Result<Option<Merged>> {
    let Some((top, shown, dev)) = find_ours(root, hierarchy, class)? else {
        return Ok(None);
    };
    let info = read_info_with(&tree_of(&top, &shown)?, class, hierarchy, Some(dev))?;
    Ok(Some(Merged {
        hierarchy: hierarchy.to_path_buf(),
        top,
        shown,
        info,
    }))
}

/// The resolved top of `hierarchy`, how it is shown, and its `dev` file's bytes, when the
/// merge on it is ours (or systemd's).
fn find_ours(
    root: &Root,
    hierarchy: &Path,
    class: ImageClass,
) -> anyhow::Result<Option<(Found, PathBuf, Vec<u8>)>> {
    let top = match root.resolve(hierarchy) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("resolving hierarchy {}", hierarchy.display()))
        }
    };
    let shown = root.show(&top.in_root);
    Ok(ours_dev(&top, &shown, class)?.map(|dev| (top, shown, dev)))
}

/// The top of the merge on `hierarchy` if there is one of ours (or systemd's), without reading
/// its meta files beyond `dev`: for callers that only peel it.
pub fn probe(root: &Root, hierarchy: &Path, class: ImageClass) -> anyhow::Result<Option<Found>> {
    Ok(find_ours(root, hierarchy, class)?.map(|(top, _, _)| top))
}

/// Read back what a merged hierarchy says (extensions list, work_dir unescaped, origin text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaInfo {
    /// Names from the list file, in file order, empty lines dropped.
    pub extensions: Vec<String>,
    /// Unescaped workdir as an in-root absolute path (`/` + the stored root-relative path).
    pub work_dir: Option<PathBuf>,
    /// The `origin` file as is.
    pub origin: Option<String>,
    /// The overlay device recorded in `dev`.
    pub dev: (u32, u32),
}

/// Check a recorded work dir: an in-root absolute path without `.`/`..` whose last component is
/// the name systemd (`.systemd-<hierarchy>-workdir`) or extmerge (that name plus `-` and 16 hex
/// digits for a refresh) gives it. A merged tree's meta files are data, not instructions: a
/// path that does not look like this is never used for anything.
pub fn validate_work_dir(work: &Path, hierarchy: &Path) -> Result<(), String> {
    let bytes = work.as_os_str().as_bytes();
    if !bytes.starts_with(b"/") {
        return Err("not an absolute path".into());
    }
    if work
        .components()
        .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
        || bytes.windows(2).any(|w| w == b"//")
    {
        return Err("not a normalized path (it has '.' or '..' components)".into());
    }
    let want = crate::decide::mutable::work_dir_name(hierarchy);
    let name = work
        .file_name()
        .map(|n| n.as_bytes())
        .ok_or_else(|| "no file name".to_string())?;
    let suffix_ok = |rest: &[u8]| {
        rest.is_empty()
            || (rest.len() == 17 && rest[0] == b'-' && rest[1..].iter().all(u8::is_ascii_hexdigit))
    };
    match name.strip_prefix(want.as_bytes()) {
        Some(rest) if suffix_ok(rest) => Ok(()),
        _ => Err(format!(
            "its name is not {want} (or {want}-<16 hex digits>)"
        )),
    }
}

/// Parse the meta files of the merged tree `tree` (split out so it is testable unprivileged).
pub fn read_info(tree: &Root, class: ImageClass, hierarchy: &Path) -> anyhow::Result<MetaInfo> {
    read_info_with(tree, class, hierarchy, None)
}

/// [`read_info`] with the `dev` file's bytes already read (by [`ours_dev`]), if they were.
fn read_info_with(
    tree: &Root,
    class: ImageClass,
    hierarchy: &Path,
    dev: Option<Vec<u8>>,
) -> anyhow::Result<MetaInfo> {
    let dir = Path::new(class.meta_dir_name());
    let read = |name: &str| -> anyhow::Result<Option<Vec<u8>>> {
        tree.read_optional(&dir.join(name), limits::META_FILE)
            .with_context(|| format!("Failed to read '{}'", tree.show(&dir.join(name)).display()))
    };

    let dev_path = tree.show(&dir.join("dev"));
    let dev_raw = match dev {
        Some(d) => d,
        None => read("dev")?.with_context(|| format!("Failed to read '{}'", dev_path.display()))?,
    };
    let dev_line = String::from_utf8_lossy(first_line(&dev_raw)).into_owned();
    let dev = parse_devnum(&dev_line).with_context(|| {
        format!(
            "Failed to parse device major/minor '{}' in '{}'",
            dev_line.escape_debug(),
            dev_path.display()
        )
    })?;

    // systemd's status/need_reload fail when the list file is missing; so do we.
    let list_path = tree.show(&dir.join(class.list_file_name()));
    let list = read(class.list_file_name())?
        .with_context(|| format!("Failed to open '{}'", list_path.display()))?;
    let extensions = String::from_utf8_lossy(&list)
        .split(['\n', '\r'])
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();

    let wd_path = tree.show(&dir.join("work_dir"));
    let work_dir = match read("work_dir")? {
        None => None,
        Some(raw) => {
            let line = String::from_utf8_lossy(first_line(&raw)).into_owned();
            let bytes = cunescape(&line).with_context(|| {
                format!(
                    "Failed to unescape work directory path in '{}'",
                    wd_path.display()
                )
            })?;
            let rel = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
            let work = Path::new("/").join(rel);
            if let Err(why) = validate_work_dir(&work, hierarchy) {
                bail!(
                    "'{}' names the work directory {}, which extmerge does not accept: {why}",
                    wd_path.display(),
                    crate::ondisk::cescape::cescape(work.as_os_str().as_bytes())
                );
            }
            Some(work)
        }
    };

    let origin_path = tree.show(&dir.join("origin"));
    let origin = match read("origin")? {
        None => None,
        Some(raw) => Some(
            String::from_utf8(raw)
                .with_context(|| format!("'{}' is not valid UTF-8", origin_path.display()))?,
        ),
    };

    Ok(MetaInfo {
        extensions,
        work_dir,
        origin,
        dev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> MetaContents {
        MetaContents {
            extensions: vec!["00-flatcar-default".into(), "docker".into()],
            dev: (0, 123),
            work_dir: Some(PathBuf::from(
                "/var/lib/extensions.mutable/.systemd-usr-workdir",
            )),
            origin: Some("{\n\t\"mutable\" : {\n\t\t\"mode\" : \"yes\"\n\t}\n}\n".into()),
            backing: Some((254, 3)),
        }
    }

    fn get<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }

    #[test]
    fn render_is_byte_exact_in_systemd_write_order() {
        let files = render(ImageClass::Sysext, &contents());
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["extensions", "origin", "dev", "work_dir", "backing"]
        );
        assert_eq!(
            get(&files, "extensions"),
            Some(&b"00-flatcar-default\ndocker\n"[..])
        );
        assert_eq!(
            get(&files, "origin"),
            Some(&b"{\n\t\"mutable\" : {\n\t\t\"mode\" : \"yes\"\n\t}\n}\n"[..])
        );
        assert_eq!(get(&files, "dev"), Some(&b"0:123\n"[..]));
        // path_startswith() drops the leading '/'.
        assert_eq!(
            get(&files, "work_dir"),
            Some(&b"var/lib/extensions.mutable/.systemd-usr-workdir\n"[..])
        );
        assert_eq!(get(&files, "backing"), Some(&b"254:3\n"[..]));
    }

    #[test]
    fn confext_list_file_is_confexts() {
        let files = render(ImageClass::Confext, &contents());
        assert_eq!(
            get(&files, "confexts"),
            Some(&b"00-flatcar-default\ndocker\n"[..])
        );
        assert_eq!(get(&files, "extensions"), None);
    }

    #[test]
    fn mutable_merge_without_extensions_writes_empty_list_file() {
        let mut c = contents();
        c.extensions.clear();
        assert_eq!(
            get(&render(ImageClass::Sysext, &c), "extensions"),
            Some(&b""[..])
        );
    }

    #[test]
    fn origin_is_written_as_is_or_not_at_all() {
        let mut c = contents();
        c.origin = None;
        let names: Vec<String> = render(ImageClass::Sysext, &c)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["extensions", "dev", "work_dir", "backing"]);
        c.origin = Some("{}".into());
        assert_eq!(
            get(&render(ImageClass::Sysext, &c), "origin"),
            Some(&b"{}"[..])
        );
    }

    #[test]
    fn work_dir_only_for_persistent_upper_and_cescaped() {
        let mut c = contents();
        c.work_dir = None;
        assert_eq!(get(&render(ImageClass::Sysext, &c), "work_dir"), None);
        // Flatcar's self-upper /etc: the workdir sits at the root of the root.
        c.work_dir = Some(PathBuf::from("/.systemd-etc-workdir"));
        assert_eq!(
            get(&render(ImageClass::Confext, &c), "work_dir"),
            Some(&b".systemd-etc-workdir\n"[..])
        );
        c.work_dir = Some(PathBuf::from("/a b/new\nline/é\\"));
        assert_eq!(
            get(&render(ImageClass::Sysext, &c), "work_dir"),
            Some(&b"a b/new\\nline/\\303\\251\\\\\n"[..])
        );
    }

    #[test]
    fn backing_skipped_when_zero_or_absent() {
        let mut c = contents();
        c.backing = Some((0, 0));
        assert_eq!(get(&render(ImageClass::Sysext, &c), "backing"), None);
        c.backing = None;
        assert_eq!(get(&render(ImageClass::Sysext, &c), "backing"), None);
    }

    #[test]
    fn write_creates_dir_files_and_read_back_round_trips() {
        let t = tempfile::tempdir().unwrap();
        let meta_root = t.path().join("meta/usr");
        write(&meta_root, ImageClass::Sysext, &contents()).unwrap();
        let dir = meta_root.join(".systemd-sysext");
        assert!(dir.is_dir());
        assert_eq!(fs::read(dir.join("dev")).unwrap(), b"0:123\n");
        let info = read_info(
            &Root::open(&meta_root).unwrap(),
            ImageClass::Sysext,
            Path::new("/usr"),
        )
        .unwrap();
        assert_eq!(info.extensions, ["00-flatcar-default", "docker"]);
        assert_eq!(info.dev, (0, 123));
        assert_eq!(
            info.work_dir,
            Some(PathBuf::from(
                "/var/lib/extensions.mutable/.systemd-usr-workdir"
            ))
        );
        assert_eq!(info.origin.as_deref(), contents().origin.as_deref());
        // Rewriting with fewer bytes leaves no stale tail.
        let mut c = contents();
        c.extensions = vec!["a".into()];
        write(&meta_root, ImageClass::Sysext, &c).unwrap();
        assert_eq!(fs::read(dir.join("extensions")).unwrap(), b"a\n");
    }

    #[test]
    fn write_touches_meta_root_mtime() {
        let t = tempfile::tempdir().unwrap();
        let meta_root = t.path().join("m");
        fs::create_dir(&meta_root).unwrap();
        let old = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1000,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(rustix::fs::CWD, &meta_root, &old, AtFlags::empty()).unwrap();
        write(&meta_root, ImageClass::Confext, &contents()).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(fs::metadata(&meta_root).unwrap().mtime() > 1000);
    }

    #[test]
    fn inspect_on_plain_or_missing_directory_is_none() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("usr");
        fs::create_dir_all(d.join(".systemd-sysext")).unwrap();
        fs::write(d.join(".systemd-sysext/dev"), "0:1\n").unwrap();
        let root = Root::open(t.path()).unwrap();
        assert!(inspect(&root, Path::new("/usr"), ImageClass::Sysext)
            .unwrap()
            .is_none());
        assert!(inspect(&root, Path::new("/missing"), ImageClass::Sysext)
            .unwrap()
            .is_none());
    }

    #[test]
    fn work_dirs_must_look_like_work_dirs() {
        let h = Path::new("/usr");
        for good in [
            "/var/lib/extensions.mutable/.systemd-usr-workdir",
            "/.systemd-usr-workdir",
            "/x/.systemd-usr-workdir-0123456789abcdef",
        ] {
            assert_eq!(validate_work_dir(Path::new(good), h), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("/../../outside/.systemd-usr-workdir", "normalized"),
            ("/var/lib/extensions.mutable/..", "normalized"),
            ("/home/user", "its name is not .systemd-usr-workdir"),
            ("/x/.systemd-opt-workdir", "its name is not"),
            ("/x/.systemd-usr-workdir-zz", "its name is not"),
            ("relative/.systemd-usr-workdir", "absolute"),
        ] {
            let e = validate_work_dir(Path::new(bad), h).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_hostile_work_dir_is_refused_when_reading() {
        let t = tempfile::tempdir().unwrap();
        let meta_root = t.path().join("m");
        let mut c = contents();
        c.work_dir = Some(PathBuf::from("/../../../../outside"));
        write(&meta_root, ImageClass::Sysext, &c).unwrap();
        let e = read_info(
            &Root::open(&meta_root).unwrap(),
            ImageClass::Sysext,
            Path::new("/usr"),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("which extmerge does not accept"),
            "{e:#}"
        );
    }

    #[test]
    fn parse_devnum_follows_systemd_safe_atou() {
        assert_eq!(parse_devnum("253:0"), Some((253, 0)));
        assert_eq!(parse_devnum("0:0"), Some((0, 0)));
        assert_eq!(parse_devnum("4095:1048575"), Some((4095, 1_048_575)));
        // strtoul base 0: octal and hex prefixes.
        assert_eq!(parse_devnum("010:1"), Some((8, 1)));
        assert_eq!(parse_devnum("1:0x10"), Some((1, 16)));
        // The minor may carry whitespace and a sign; -0 is fine, -1 is ERANGE.
        assert_eq!(parse_devnum("1: 2"), Some((1, 2)));
        assert_eq!(parse_devnum("1:+2"), Some((1, 2)));
        assert_eq!(parse_devnum("1:-0"), Some((1, 0)));
        for bad in [
            "",
            ":1",
            "1:",
            "a:1",
            " 1:2",
            "1:2x",
            "1:-1",
            "4096:0",
            "1:1048576",
            "09:1",
            "1:0x",
            "1:2 ",
        ] {
            assert_eq!(parse_devnum(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn first_line_stops_at_any_line_terminator() {
        assert_eq!(first_line(b"1:2\n"), b"1:2");
        assert_eq!(first_line(b"1:2\r\n"), b"1:2");
        assert_eq!(first_line(b"1:2"), b"1:2");
        assert_eq!(first_line(b""), b"");
    }
}
