//! `{sysext,confext}.conf` and their `.conf.d/` drop-ins, read inside the root through the root
//! handle: which files apply (systemd's `config_parse_standard_file_with_dropins_full()`), and
//! what each says (an ini subset where one bad line is one warning, never a lost file).

use crate::class::ImageClass;
use crate::decide::conflicts::ConflictPolicy;
use crate::decide::mutable::MutableMode;
use crate::gather::conffiles;
use crate::kernel::root::Root;
use crate::limits;
use anyhow::{Context, Result};
use rustix::fs::FileType;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Directories searched for configuration, highest priority first (systemd's CONF_PATHS).
pub const CONFIG_DIRS: [&str; 4] = ["/etc", "/run", "/usr/local/lib", "/usr/lib"];

/// Values a configuration file can set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConfigValues {
    /// `Mutable=`
    pub mutable: Option<MutableMode>,
    /// `ImagePolicy=`
    pub image_policy: Option<String>,
    /// `CheckConflicts=` (extmerge's own key; systemd ignores it with a warning it never sees)
    pub check_conflicts: Option<ConflictPolicy>,
    /// `Require=` (extmerge's own key): extension names that must be merged, e.g. Flatcar's
    /// `00-flatcar-default`. A list: assignments append, an empty one resets.
    pub require: Vec<String>,
    /// An empty `Require=` was seen in this text: earlier files' names are dropped.
    pub require_reset: bool,
}

impl ConfigValues {
    fn overlay(&mut self, later: ConfigValues) {
        if later.mutable.is_some() {
            self.mutable = later.mutable;
        }
        if later.check_conflicts.is_some() {
            self.check_conflicts = later.check_conflicts;
        }
        if later.image_policy.is_some() {
            self.image_policy = later.image_policy;
        }
        if later.require_reset {
            self.require.clear();
        }
        for name in later.require {
            if !self.require.contains(&name) {
                self.require.push(name);
            }
        }
    }
}

/// Parse one ini-style configuration text; only keys in `section` count. Returns warnings instead of failing,
/// as systemd only warns about a bad configuration file.
pub fn parse_config_text(text: &str, section: &str) -> (ConfigValues, Vec<String>) {
    parse_config_bytes(text.as_bytes(), section)
}

/// [`parse_config_text`] over raw bytes: a logical line that is not UTF-8 is one warning and is
/// ignored, the rest of the file still counts.
pub fn parse_config_bytes(bytes: &[u8], section: &str) -> (ConfigValues, Vec<String>) {
    let mut values = ConfigValues::default();
    let mut warnings = Vec::new();
    let mut current: Option<String> = None;
    let mut pending = String::new();
    let mut pending_bad = false;
    let mut start_line = 0usize;

    let mut physical: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if bytes.ends_with(b"\n") || bytes.is_empty() {
        // The empty piece after the final newline is not a line (as str::lines()).
        physical.pop();
    }
    for (idx, raw) in physical.into_iter().enumerate() {
        let lineno = idx + 1;
        if pending.is_empty() && !pending_bad {
            start_line = lineno;
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // A trailing backslash continues the logical line, as in systemd's config_parse().
        let (body, continued) = match raw.strip_suffix(b"\\") {
            Some(body) => (body, true),
            None => (raw, false),
        };
        match std::str::from_utf8(body) {
            Ok(s) => pending.push_str(s),
            Err(_) => pending_bad = true,
        }
        if continued {
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending);
        if std::mem::take(&mut pending_bad) {
            warnings.push(format!(
                "line {start_line}: not valid UTF-8, ignoring the line"
            ));
            continue;
        }
        parse_line(
            line.trim(),
            start_line,
            section,
            &mut current,
            &mut values,
            &mut warnings,
        );
    }
    if pending_bad {
        warnings.push(format!(
            "line {start_line}: not valid UTF-8, ignoring the line"
        ));
    } else if !pending.is_empty() {
        parse_line(
            pending.trim(),
            start_line,
            section,
            &mut current,
            &mut values,
            &mut warnings,
        );
    }
    (values, warnings)
}

/// One logical line: a comment, a section header or an assignment.
fn parse_line(
    line: &str,
    start_line: usize,
    section: &str,
    current: &mut Option<String>,
    values: &mut ConfigValues,
    warnings: &mut Vec<String>,
) {
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return;
    }
    if let Some(rest) = line.strip_prefix('[') {
        match rest.strip_suffix(']') {
            Some(name) => *current = Some(name.to_string()),
            None => {
                warnings.push(format!(
                    "line {start_line}: invalid section header '{line}'"
                ));
                *current = None;
            }
        }
        return;
    }
    let Some((key, value)) = line.split_once('=') else {
        warnings.push(format!("line {start_line}: missing '=', ignoring '{line}'"));
        return;
    };
    let (key, value) = (key.trim(), value.trim());
    match current.as_deref() {
        Some(s) if s == section => {}
        Some(_) => return,
        None => {
            warnings.push(format!(
                "line {start_line}: assignment outside of a section, ignoring"
            ));
            return;
        }
    }
    match key {
        "Mutable" => {
            if value.is_empty() {
                values.mutable = None;
            } else {
                match value.parse::<MutableMode>() {
                    Ok(m) => values.mutable = Some(m),
                    Err(e) => warnings.push(format!("line {start_line}: {e}, ignoring")),
                }
            }
        }
        "CheckConflicts" => {
            if value.is_empty() {
                values.check_conflicts = None;
            } else {
                match value.parse::<ConflictPolicy>() {
                    Ok(p) => values.check_conflicts = Some(p),
                    Err(e) => warnings.push(format!("line {start_line}: {e}, ignoring")),
                }
            }
        }
        "Require" => {
            if value.is_empty() {
                values.require.clear();
                values.require_reset = true;
            }
            for name in value.split_whitespace() {
                if name.contains('/') || name.starts_with('.') {
                    warnings.push(format!(
                        "line {start_line}: Require={name} is not an extension name, ignoring"
                    ));
                } else if !values.require.iter().any(|n| n == name) {
                    values.require.push(name.to_string());
                }
            }
        }
        "ImagePolicy" => {
            values.image_policy = if value.is_empty() {
                None
            } else {
                Some(value.to_string())
            };
        }
        other => warnings.push(format!(
            "line {start_line}: unknown key '{other}' in [{section}], ignoring"
        )),
    }
}

/// What the highest-priority main file candidate is.
enum MainFile {
    /// Nothing at this path: look in the next directory.
    Absent,
    /// A link to `/dev/null` (or a character device): no main file, and none below it counts.
    Masked,
    /// This regular file (in-root path) is the main file.
    File(PathBuf),
}

fn main_file(root: &Root, in_root: &Path) -> Result<MainFile> {
    let shown = || root.show(in_root).display().to_string();
    match root.resolve_nofollow(in_root) {
        Ok(link) if link.file_type() == FileType::Symlink => {
            let target = rustix::fs::readlinkat(&link.fd, "", Vec::new())
                .map_err(std::io::Error::from)
                .with_context(|| format!("reading link {}", shown()))?;
            if target.as_bytes() == b"/dev/null" {
                return Ok(MainFile::Masked);
            }
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(MainFile::Absent),
        Err(e) => return Err(anyhow::Error::new(e)),
    }
    let found = match root.resolve(in_root) {
        Ok(f) => f,
        // A dangling link: as if absent, as systemd's fopen() gets ENOENT.
        Err(e) if e.is_not_found() => return Ok(MainFile::Absent),
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    match found.file_type() {
        FileType::RegularFile => Ok(MainFile::File(found.in_root)),
        FileType::CharacterDevice => Ok(MainFile::Masked),
        other => anyhow::bail!(
            "configuration file {} is not a regular file ({})",
            root.show(&found.in_root).display(),
            crate::kernel::root::file_type_name(other)
        ),
    }
}

/// The drop-in directories of `base` that can be opened, highest priority first. One that
/// cannot be (unreadable, a link loop) is skipped with a warning, as systemd's
/// `conf_files_list()` does ("Failed to chase and open directory …, ignoring").
fn dropin_dirs(root: &Root, base: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    for d in CONFIG_DIRS {
        let dir = format!("{d}/systemd/{base}.conf.d");
        let opened = match root.resolve(Path::new(&dir)) {
            Ok(f) if f.is_dir() => f.open_dir().map(drop).map_err(anyhow::Error::new),
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(anyhow::Error::new(e)),
        };
        match opened {
            Ok(()) => dirs.push(dir),
            Err(e) => tracing::warn!(
                "Failed to open directory {}, ignoring: {e:#}",
                root.show(Path::new(&dir)).display()
            ),
        }
    }
    dirs
}

/// The configuration files that apply, as in-root paths in the order they are read: the first
/// main file found, then the drop-ins.
///
/// Drop-ins are collected from every directory; a name in a higher-priority directory hides the
/// same name below it, and a drop-in that is empty or a link to `/dev/null` masks that name
/// ([`conffiles::list`]). They are read in file-name order.
pub fn config_files(root: &Root, class: ImageClass) -> Result<Vec<PathBuf>> {
    let base = class.config_base();
    let mut files = Vec::new();
    for dir in CONFIG_DIRS {
        let p = Path::new(dir).join("systemd").join(format!("{base}.conf"));
        match main_file(root, &p)? {
            MainFile::Absent => continue,
            MainFile::Masked => break,
            MainFile::File(f) => {
                files.push(f);
                break;
            }
        }
    }
    let dirs = dropin_dirs(root, base);
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    files.extend(
        conffiles::list(root, &dirs, ".conf", conffiles::NonRegular::Fail)?
            .into_iter()
            .map(|(_, f)| f.in_root),
    );
    Ok(files)
}

/// Read every applicable configuration file of a class inside `root`; later files override
/// earlier ones. Returns the values and the files read (root-prefixed, for messages).
///
/// A bad line is a warning naming the file and the line. A file that cannot be read (larger
/// than [`limits::CONFIG_FILE`], not a regular file, unreadable) is an error naming it.
pub fn read_config(root: &Root, class: ImageClass) -> Result<(ConfigValues, Vec<PathBuf>)> {
    let mut merged = ConfigValues::default();
    let mut shown = Vec::new();
    for f in config_files(root, class)? {
        let Some(bytes) = root.read_optional(&f, limits::CONFIG_FILE)? else {
            // Removed since it was listed: as if it had never been there.
            continue;
        };
        let path = root.show(&f);
        let (v, warnings) = parse_config_bytes(&bytes, class.config_section());
        for w in warnings {
            tracing::warn!("{}: {w}", path.display());
        }
        merged.overlay(v);
        shown.push(path);
    }
    Ok((merged, shown))
}

/// The configuration of a class as systemd 262 applies it ([`read_config`]): when one applicable
/// file cannot be read, none counts. systemd's `parse_config_file()` logs "Failed to parse sysext
/// config file, ignoring" and goes on with the command line, environment and defaults; so does
/// this, with one warning that names the file and why (an oversized file names the cap, where
/// systemd's own limit is a line of 1 MiB).
pub fn load_config(root: &Root, class: ImageClass) -> (ConfigValues, Vec<PathBuf>) {
    read_config(root, class).unwrap_or_else(|e| {
        tracing::warn!(
            "Failed to parse {class} config file, ignoring the whole {class} configuration: {e:#}"
        );
        (ConfigValues::default(), Vec::new())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(root: &Path, rel: &str, text: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn load(r: &Path, class: ImageClass) -> Result<(ConfigValues, Vec<PathBuf>)> {
        read_config(&Root::open(r).unwrap(), class)
    }

    #[test]
    fn parse_reads_only_its_section_and_warns_on_junk() {
        let (v, w) = parse_config_text(
            "# comment\n[SysExt]\nMutable=auto\nImagePolicy=root=signed+absent\n[ConfExt]\nMutable=yes\nBogus\n",
            "SysExt",
        );
        assert_eq!(v.mutable, Some(MutableMode::Auto));
        assert_eq!(v.image_policy.as_deref(), Some("root=signed+absent"));
        assert_eq!(w, ["line 7: missing '=', ignoring 'Bogus'"]);
        let (v, _) = parse_config_text("[ConfExt]\nMutable = yes \n", "ConfExt");
        assert_eq!(v.mutable, Some(MutableMode::Yes));
    }

    #[test]
    fn parse_invalid_mutable_is_a_warning_and_booleans_work() {
        let (v, w) = parse_config_text("[SysExt]\nMutable=sometimes\n", "SysExt");
        assert_eq!(v.mutable, None);
        assert!(w[0].contains("sometimes"));
        let (v, _) = parse_config_text("[SysExt]\nMutable=false\n", "SysExt");
        assert_eq!(v.mutable, Some(MutableMode::No));
    }

    #[test]
    fn parse_continuation_lines_and_unknown_keys() {
        let (v, w) = parse_config_text(
            "[SysExt]\nImagePolicy=root=verity\\\n+signed\nFoo=bar\n",
            "SysExt",
        );
        assert_eq!(v.image_policy.as_deref(), Some("root=verity +signed"));
        assert_eq!(w, ["line 4: unknown key 'Foo' in [SysExt], ignoring"]);
        // No final newline, CRLF line ends.
        let (v, w) = parse_config_text("[SysExt]\r\nMutable=yes", "SysExt");
        assert_eq!((v.mutable, w.len()), (Some(MutableMode::Yes), 0));
    }

    /// One line that is not UTF-8 is one warning with its number; the lines around it count.
    #[test]
    fn a_line_that_is_not_utf8_is_one_warning() {
        let (v, w) = parse_config_bytes(
            b"[SysExt]\nMutable=yes\nImagePolicy=\xff\xfe\nCheckConflicts=off\n",
            "SysExt",
        );
        assert_eq!(w, ["line 3: not valid UTF-8, ignoring the line"]);
        assert_eq!(v.mutable, Some(MutableMode::Yes));
        assert_eq!(v.image_policy, None);
        assert_eq!(v.check_conflicts, Some(ConflictPolicy::Off));
        // A continued logical line is ignored as a whole and named by its first line.
        let (v, w) = parse_config_bytes(
            b"[SysExt]\nImagePolicy=a\\\n\xff\nMutable=auto\nImagePolicy=b\\\n\xc3",
            "SysExt",
        );
        assert_eq!(
            w,
            [
                "line 2: not valid UTF-8, ignoring the line",
                "line 5: not valid UTF-8, ignoring the line"
            ]
        );
        assert_eq!((v.mutable, v.image_policy), (Some(MutableMode::Auto), None));
    }

    #[test]
    fn first_main_file_wins_then_dropins_override_in_name_order() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "usr/lib/systemd/sysext.conf",
            b"[SysExt]\nMutable=yes\nImagePolicy=a\n",
        );
        write(r, "etc/systemd/sysext.conf", b"[SysExt]\nImagePolicy=b\n");
        // /usr/lib main file is not read because /etc has one: Mutable stays unset.
        let (v, files) = load(r, ImageClass::Sysext).unwrap();
        assert_eq!(v.mutable, None);
        assert_eq!(v.image_policy.as_deref(), Some("b"));
        assert_eq!(files, [r.join("etc/systemd/sysext.conf")]);

        write(
            r,
            "usr/lib/systemd/sysext.conf.d/10-a.conf",
            b"[SysExt]\nMutable=auto\n",
        );
        write(
            r,
            "run/systemd/sysext.conf.d/20-b.conf",
            b"[SysExt]\nMutable=import\n",
        );
        write(
            r,
            "etc/systemd/sysext.conf.d/10-a.conf",
            b"[SysExt]\nMutable=ephemeral\n",
        );
        let (v, files) = load(r, ImageClass::Sysext).unwrap();
        // 10-a.conf from /etc hides the /usr/lib one; 20-b is read last.
        assert_eq!(v.mutable, Some(MutableMode::Import));
        assert_eq!(
            files,
            [
                r.join("etc/systemd/sysext.conf"),
                r.join("etc/systemd/sysext.conf.d/10-a.conf"),
                r.join("run/systemd/sysext.conf.d/20-b.conf"),
            ]
        );
    }

    #[test]
    fn dropin_masked_by_dev_null_or_empty_file() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "usr/lib/systemd/confext.conf.d/50-x.conf",
            b"[ConfExt]\nMutable=yes\n",
        );
        write(
            r,
            "usr/lib/systemd/confext.conf.d/60-y.conf",
            b"[ConfExt]\nImagePolicy=y\n",
        );
        std::fs::create_dir_all(r.join("etc/systemd/confext.conf.d")).unwrap();
        symlink("/dev/null", r.join("etc/systemd/confext.conf.d/50-x.conf")).unwrap();
        write(r, "run/systemd/confext.conf.d/60-y.conf", b"");
        let (v, files) = load(r, ImageClass::Confext).unwrap();
        assert_eq!(v, ConfigValues::default());
        assert!(files.is_empty(), "{files:?}");
    }

    /// A main file that is a link to /dev/null masks the main files below it, as systemd's
    /// first-found rule reads /dev/null as an empty file.
    #[test]
    fn main_file_masked_by_dev_null() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "usr/lib/systemd/sysext.conf", b"[SysExt]\nMutable=yes\n");
        std::fs::create_dir_all(r.join("etc/systemd")).unwrap();
        symlink("/dev/null", r.join("etc/systemd/sysext.conf")).unwrap();
        let (v, files) = load(r, ImageClass::Sysext).unwrap();
        assert_eq!((v.mutable, files.len()), (None, 0));
        // A dangling link is as if absent: the next directory's file counts.
        std::fs::remove_file(r.join("etc/systemd/sysext.conf")).unwrap();
        symlink("/nowhere", r.join("etc/systemd/sysext.conf")).unwrap();
        let (v, _) = load(r, ImageClass::Sysext).unwrap();
        assert_eq!(v.mutable, Some(MutableMode::Yes));
    }

    #[test]
    fn config_is_read_inside_root_through_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "elsewhere/confext.conf", b"[ConfExt]\nMutable=auto\n");
        std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
        symlink(
            "/elsewhere/confext.conf",
            r.join("usr/lib/systemd/confext.conf"),
        )
        .unwrap();
        let (v, files) = load(r, ImageClass::Confext).unwrap();
        assert_eq!(v.mutable, Some(MutableMode::Auto));
        assert_eq!(files, [r.join("elsewhere/confext.conf")]);
    }

    /// Links out of the root (absolute, or `..` past the top) resolve inside it: the file with
    /// the same path outside is never read, for main files, drop-in directories and drop-ins.
    #[test]
    fn links_out_of_the_root_never_read_outside() {
        let outside = tempfile::tempdir().unwrap();
        let o = outside.path();
        write(o, "sysext.conf", b"[SysExt]\nMutable=yes\n");
        write(o, "d/10-out.conf", b"[SysExt]\nImagePolicy=outside\n");
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc/systemd/sysext.conf.d")).unwrap();
        std::fs::create_dir_all(r.join("run/systemd")).unwrap();
        symlink(o.join("sysext.conf"), r.join("etc/systemd/sysext.conf")).unwrap();
        symlink(o.join("d"), r.join("run/systemd/sysext.conf.d")).unwrap();
        let up = format!(
            "../../../../../../../../..{}",
            o.join("d/10-out.conf").display()
        );
        symlink(&up, r.join("etc/systemd/sysext.conf.d/20-up.conf")).unwrap();
        let (v, files) = load(r, ImageClass::Sysext).unwrap();
        assert_eq!(v, ConfigValues::default());
        assert!(files.is_empty(), "{files:?}");
    }

    /// systemd 262 reads no configuration at all when one applicable file cannot be read
    /// ("Failed to parse sysext config file, ignoring: …"): the strict reader names the file and
    /// why, the loader falls back to no configured values.
    #[test]
    fn an_oversized_or_odd_config_file_ignores_the_whole_configuration() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "etc/systemd/sysext.conf",
            b"[SysExt]\nImagePolicy=root=signed\n",
        );
        let mut big = b"[SysExt]\nMutable=yes\n".to_vec();
        big.resize(limits::CONFIG_FILE as usize + 1, b'#');
        write(r, "usr/lib/systemd/sysext.conf.d/10-big.conf", &big);
        let root = Root::open(r).unwrap();
        let e = format!("{:#}", read_config(&root, ImageClass::Sysext).unwrap_err());
        assert_eq!(
            e,
            format!(
                "reading {}: larger than the 1048576 bytes allowed",
                r.join("usr/lib/systemd/sysext.conf.d/10-big.conf")
                    .display()
            )
        );
        // Not just the oversized file: the main file's ImagePolicy= is dropped too.
        assert_eq!(
            load_config(&root, ImageClass::Sysext),
            (ConfigValues::default(), Vec::new())
        );
        big.truncate(limits::CONFIG_FILE as usize);
        write(r, "usr/lib/systemd/sysext.conf.d/10-big.conf", &big);
        let (v, files) = load(r, ImageClass::Sysext).unwrap();
        assert_eq!(
            (v.mutable, v.image_policy.as_deref(), files.len()),
            (Some(MutableMode::Yes), Some("root=signed"), 2)
        );
        // A main file that is a directory: systemd's fopen() fails with EISDIR.
        std::fs::remove_file(r.join("etc/systemd/sysext.conf")).unwrap();
        std::fs::create_dir_all(r.join("etc/systemd/sysext.conf")).unwrap();
        let e = format!("{:#}", read_config(&root, ImageClass::Sysext).unwrap_err());
        assert_eq!(
            e,
            format!(
                "configuration file {} is not a regular file (directory)",
                r.join("etc/systemd/sysext.conf").display()
            )
        );
        assert_eq!(
            load_config(&root, ImageClass::Sysext),
            (ConfigValues::default(), Vec::new())
        );
        // The other class reads other files.
        write(r, "etc/systemd/confext.conf", b"[ConfExt]\nMutable=auto\n");
        assert_eq!(
            load_config(&root, ImageClass::Confext).0.mutable,
            Some(MutableMode::Auto)
        );
    }

    /// `/usr/lib/systemd/sysext.conf` with `Mutable=yes`, `DIR/systemd/sysext.conf.d/10-a.conf`
    /// with `ImagePolicy=a`, and an empty `/etc/systemd`.
    fn main_and_dropin(r: &Path, dir: &str) {
        write(r, "usr/lib/systemd/sysext.conf", b"[SysExt]\nMutable=yes\n");
        let dropin = format!("{dir}/systemd/sysext.conf.d/10-a.conf");
        write(r, &dropin, b"[SysExt]\nImagePolicy=a\n");
        std::fs::create_dir_all(r.join("etc/systemd")).unwrap();
    }

    /// A main file that is a link loop is unreadable as in systemd (ELOOP): no configuration.
    #[test]
    fn a_main_file_link_loop_ignores_the_whole_configuration() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        main_and_dropin(r, "run");
        symlink("sysext.conf", r.join("etc/systemd/sysext.conf")).unwrap();
        let root = Root::open(r).unwrap();
        assert_eq!(
            format!("{:#}", read_config(&root, ImageClass::Sysext).unwrap_err()),
            format!(
                "{}: too many levels of symbolic links",
                r.join("etc/systemd/sysext.conf").display()
            )
        );
        assert_eq!(
            load_config(&root, ImageClass::Sysext),
            (ConfigValues::default(), Vec::new())
        );
    }

    /// A drop-in directory that cannot be opened is skipped (systemd: "Failed to chase and open
    /// directory …, ignoring"); the other files still count.
    #[test]
    fn an_unopenable_dropin_directory_is_skipped() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        main_and_dropin(r, "usr/lib");
        symlink("sysext.conf.d", r.join("etc/systemd/sysext.conf.d")).unwrap();
        let (v, files) = load(r, ImageClass::Sysext).unwrap();
        assert_eq!(
            (v.mutable, v.image_policy.as_deref()),
            (Some(MutableMode::Yes), Some("a"))
        );
        assert_eq!(
            files,
            [
                r.join("usr/lib/systemd/sysext.conf"),
                r.join("usr/lib/systemd/sysext.conf.d/10-a.conf")
            ]
        );
    }
}
