//! Hostile input (issue 12): one table of attacks on extmerge, each with the exact outcome it must
//! have. The table's `point` says which numbered point of issue 12 a case checks.
//!
//! Every case gets a fresh root (`<tmp>/root`, with a good sysext in `run/extensions` and a good
//! confext in `run/confexts`) and, next to it, a sentinel tree `<tmp>/outside` that hostile links
//! and meta files point at: files, directories, a symlink, directories named like overlay work
//! dirs, a valid extension, config files, a unit mask, certificates and cache directories. The
//! harness
//!
//! 1. lets the case place its inputs (in the root, and in the sentinel tree where it needs to);
//! 2. snapshots the sentinel tree (paths, types, modes, owners, sizes, contents, mtimes, ctimes);
//! 3. runs the case: the real binary under resource limits (CPU seconds and data size, so a size
//!    bomb shows up as a kill or an allocation failure, never as a slow or swapping machine), with
//!    exact assertions on exit codes, output and log lines;
//! 4. unmerges, then compares the sentinel tree with the snapshot and checks that no mount or loop
//!    device below the temporary directory is left ([`LeakCheck`]).
//!
//! A failure reports all three (the case's own assertion, changes outside the root, leaks), so the
//! test output is the defect report. Root, each case in its own private mount namespace (nextest
//! runs every test in its own process).

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Exit status of a refresh that found nothing changed.
const EXIT_SKIPPED: i32 = 77;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Size of the sparse "bomb" files: far more than the data limit the binary runs with.
const BOMB: u64 = 8 * GIB;
/// Words a refusal by size cap uses (any one of them).
const SIZE_REASONS: &[&str] = &[
    "too large",
    "too big",
    "larger than",
    "exceeds",
    "at most",
    "limit",
];
/// Default resource limits of every run: generous for real work (the 505-layer case needs a few
/// CPU seconds), fatal for unbounded work.
const CPU_SECONDS: u64 = 60;
/// CPU limit of the runs that meet a size bomb: a bounded run needs well under a second.
const BOMB_CPU_SECONDS: u64 = 20;
const DATA_BYTES: u64 = GIB;

// ---------------------------------------------------------------------------------------------
// The fixture: a root, a sentinel tree outside it, scratch space.
// ---------------------------------------------------------------------------------------------

/// One case's temporary directory: `root/` (the `--root`), `outside/` (sentinel), `scratch/`.
struct Ctx {
    t: TestRoot,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
}

impl std::ops::Deref for Ctx {
    type Target = TestRoot;
    fn deref(&self) -> &TestRoot {
        &self.t
    }
}

impl Ctx {
    fn new() -> Ctx {
        let t = TestRoot::new(&[
            ("usr/lib/os-release", DEBIAN),
            ("usr/bin/host-tool", "host\n"),
            ("usr/share/host-data", "host\n"),
            ("etc/hostname", "box\n"),
            ("etc/host.conf", "host\n"),
        ]);
        let (base, root) = (t.base.clone(), t.path.clone());
        // Some cases run extmerge as an unprivileged user, which must be able to reach the root.
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let outside = base.join("outside");
        sysext_tree(
            &root.join("run/extensions/good-sys"),
            "good-sys",
            &[("usr/share/good-sys", "good-sys\n")],
        );
        confext_tree(
            &root.join("run/confexts/good-conf"),
            "good-conf",
            &[("etc/good-conf.conf", "good-conf\n")],
        );
        let c = Ctx {
            t,
            base,
            root,
            outside,
        };
        c.build_sentinel();
        c
    }

    /// The tree outside the root that hostile inputs aim at.
    fn build_sentinel(&self) {
        let o = &self.outside;
        write_files(
            o,
            &[
                ("file", "sentinel\n"),
                ("dir/nested/file", "nested\n"),
                (".systemd-usr-workdir/work/keep", "precious\n"),
                (".systemd-etc-workdir/work/keep", "precious\n"),
                (".systemd-usr-workdir-0123456789abcdef/keep", "precious\n"),
                ("os-release", DEBIAN),
                ("sysext.conf", "[SysExt]\nRequire=outside-required\n"),
                ("confext.conf", "[ConfExt]\nRequire=outside-required\n"),
                ("opt/outside-opt-file", "outside\n"),
                ("meta/dev", "0:1\n"),
                ("meta/extensions", "forged\n"),
                ("meta/work_dir", "../outside/.systemd-usr-workdir\n"),
            ],
        );
        sysext_tree(
            &o.join("extensions/evil"),
            "evil",
            &[("usr/share/evil-marker", "evil\n")],
        );
        confext_tree(
            &o.join("confexts/evil-conf"),
            "evil-conf",
            &[("etc/evil-marker.conf", "evil\n")],
        );
        for d in ["verity.d", "cache", "mutable/usr", "mutable/etc", "system"] {
            mkdirs(&o.join(d));
        }
        symlink("file", o.join("link")).unwrap();
        symlink("/dev/null", o.join("system/systemd-sysext.service")).unwrap();
        symlink("/dev/null", o.join("system/systemd-confext.service")).unwrap();
    }

    /// Path in the sentinel tree.
    fn o(&self, rel: &str) -> PathBuf {
        self.outside.join(rel)
    }

    /// Scratch path (image sources, keys), outside the root and outside the sentinel tree.
    fn s(&self, rel: &str) -> PathBuf {
        let p = self.base.join("scratch").join(rel);
        mkdirs(p.parent().unwrap());
        p
    }

    /// Mountinfo lines of mounts exactly at `path`.
    fn mounts_at_path(&self, path: &Path) -> Vec<String> {
        let target = path.to_string_lossy().into_owned();
        mountinfo()
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(target.as_str()))
            .map(str::to_string)
            .collect()
    }

    /// Mount options of the top mount at `rel`.
    fn mount_opts(&self, rel: &str) -> Vec<String> {
        let lines = self.mounts_at(rel);
        let line = lines
            .last()
            .unwrap_or_else(|| panic!("/{rel} is not a mount point"));
        line.split(' ')
            .nth(5)
            .unwrap_or("")
            .split(',')
            .map(str::to_string)
            .collect()
    }

    /// The extension list of the merged hierarchy `rel` (meta `extensions`/`confexts`), if merged.
    fn merged_list(&self, rel: &str) -> Option<Vec<String>> {
        let (meta, list) = if rel == "etc" {
            (".systemd-confext", "confexts")
        } else {
            (".systemd-sysext", "extensions")
        };
        if self.mounts_at(rel).is_empty() {
            return None;
        }
        self.read(&format!("{rel}/{meta}/{list}"))
            .map(|t| t.lines().map(str::to_string).collect())
    }
}

fn mkdirs(p: &Path) {
    std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", p.display()));
}

fn sysext_tree(dir: &Path, name: &str, files: &[(&str, &str)]) {
    sysext_dir(dir, name, DEBIAN, files);
}

fn confext_tree(dir: &Path, name: &str, files: &[(&str, &str)]) {
    confext_dir(dir, name, DEBIAN, files);
}

/// A squashfs sysext `name` at `out` with `files` (built from a scratch tree).
fn squashfs_sysext(c: &Ctx, out: &Path, name: &str, files: &[(&str, &str)]) {
    let src = c.s(&format!(
        "src-{}",
        out.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&src);
    sysext_tree(&src, name, files);
    mkdirs(out.parent().unwrap());
    mkfs_squashfs(&src, out);
}

/// Extend `p` (sparse) to `len` bytes.
fn set_len(p: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn link(target: impl AsRef<Path>, at: &Path) {
    mkdirs(at.parent().unwrap());
    symlink(target.as_ref(), at)
        .unwrap_or_else(|e| panic!("ln -s {} {}: {e}", target.as_ref().display(), at.display()));
}

fn sha256_file(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// IEEE CRC-32, as GPT uses it (kept here so the test does not depend on the crate's internals).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A GPT header at LBA 1 (512-byte sectors) of `p`, with a valid header CRC.
fn write_gpt_header(p: &Path, entries_lba: u64, count: u32, entry_size: u32) {
    use std::os::unix::fs::FileExt;
    let len = std::fs::metadata(p).unwrap().len();
    let last = len / 512 - 1;
    let mut h = vec![0u8; 92];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&1u64.to_le_bytes());
    h[32..40].copy_from_slice(&last.to_le_bytes());
    h[40..48].copy_from_slice(&34u64.to_le_bytes());
    h[48..56].copy_from_slice(&(last - 34).to_le_bytes());
    h[56..72].copy_from_slice(&[0x5a; 16]);
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&count.to_le_bytes());
    h[84..88].copy_from_slice(&entry_size.to_le_bytes());
    let crc = crc32(&h);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    // Protective MBR: one 0xEE partition and the boot signature.
    let mut mbr = [0u8; 512];
    mbr[446 + 4] = 0xee;
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    f.write_all_at(&mbr, 0).unwrap();
    f.write_all_at(&h, 512).unwrap();
}

/// Create `depth` nested directories named `name` below `dir`, fd-relative (the path is longer
/// than PATH_MAX); returns the deepest directory.
fn deep_chain(dir: &Path, name: &str, depth: usize) -> OwnedFd {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let mut fd = openat(rustix::fs::CWD, dir, OFlags::DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..depth {
        match mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => panic!("mkdirat {name}: {e}"),
        }
        fd = openat(&fd, name, OFlags::DIRECTORY, Mode::empty()).unwrap();
    }
    fd
}

/// Write `content` to `name` in the directory `dirfd`.
fn write_at(dirfd: &OwnedFd, name: &str, content: &str) {
    use rustix::fs::{openat, Mode, OFlags};
    let fd = openat(
        dirfd,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let mut f = std::fs::File::from(fd);
    f.write_all(content.as_bytes()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Snapshot of the sentinel tree.
// ---------------------------------------------------------------------------------------------

/// Every entry below `dir`: type, mode, owner, size, mtime, ctime, content digest or link target.
fn snapshot(dir: &Path) -> BTreeMap<Vec<u8>, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let rel = p
                .strip_prefix(base)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                walk(base, &p, out);
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("-> {:?}", std::fs::read_link(&p).unwrap())
            } else if ft.is_file() && m.len() <= 16 * MIB {
                format!("file {}", sha256_file(&p))
            } else {
                format!("{:?}", ft)
            };
            out.insert(
                rel,
                format!(
                    "{what} mode={:o} owner={}:{} size={} mtime={}.{} ctime={}.{}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec()
                ),
            );
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Human-readable differences between two snapshots (empty: untouched).
fn snapshot_diff(
    before: &BTreeMap<Vec<u8>, String>,
    after: &BTreeMap<Vec<u8>, String>,
) -> Vec<String> {
    let name = |k: &Vec<u8>| String::from_utf8_lossy(k).into_owned();
    let mut d = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push(format!("removed {}: was {v}", name(k))),
            Some(w) if w != v => d.push(format!("changed {}: {v} -> {w}", name(k))),
            Some(_) => {}
        }
    }
    for (k, v) in after {
        if !before.contains_key(k) {
            d.push(format!("created {}: {v}", name(k)));
        }
    }
    d
}

// ---------------------------------------------------------------------------------------------
// Running the binary.
// ---------------------------------------------------------------------------------------------

/// What one run of extmerge did.
#[derive(Debug)]
struct Out {
    what: String,
    code: Option<i32>,
    signal: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panic with the whole run unless it exited with `code`.
    fn expect(&self, code: i32) -> &Out {
        assert!(
            self.code == Some(code),
            "{}: expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.describe_end(),
            self.stdout(),
            self.stderr
        );
        self
    }

    fn describe_end(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown end".into(),
        }
    }

    /// Lines naming the extension `name` (quoted, as extmerge logs names).
    fn lines_naming(&self, name: &str) -> Vec<&str> {
        let q = format!("'{name}'");
        self.stderr.lines().filter(|l| l.contains(&q)).collect()
    }

    /// Lines naming the extension `name` other than the "Using …" lines of accepted ones.
    fn reports_naming(&self, name: &str) -> Vec<&str> {
        self.lines_naming(name)
            .into_iter()
            .filter(|l| !l.contains("Using "))
            .collect()
    }

    /// Panic unless some log line names `needle` and gives one of `reasons`.
    fn expect_line(&self, needle: &str, reasons: &[&str]) -> &Out {
        let ok = self
            .stderr
            .lines()
            .any(|l| l.contains(needle) && reasons.iter().any(|r| l.contains(r)));
        assert!(
            ok,
            "{}: no log line names {needle:?} with one of {reasons:?}:\n{}",
            self.what, self.stderr
        );
        self
    }

    /// Panic unless the extension `name` is refused with one of `reasons` on a line naming it.
    fn expect_refused(&self, name: &str, reasons: &[&str]) -> &Out {
        let lines = self.lines_naming(name);
        assert!(
            lines
                .iter()
                .any(|l| !l.contains("Using ") && reasons.iter().any(|r| l.contains(r))),
            "{}: no line refuses '{name}' with one of {reasons:?}:\n{}",
            self.what,
            self.stderr
        );
        assert!(
            !self
                .stderr
                .lines()
                .any(|l| l.contains("Using extensions") && l.contains(&format!("'{name}'"))),
            "{}: '{name}' is among the merged extensions:\n{}",
            self.what,
            self.stderr
        );
        self
    }

    fn expect_no_panic(&self) -> &Out {
        assert!(
            !self.stderr.contains("panicked") && self.signal.is_none(),
            "{}: panicked or killed ({}):\n{}",
            self.what,
            self.describe_end(),
            self.stderr
        );
        self
    }
}

/// One invocation: arguments, environment, privileges, limits.
#[derive(Clone)]
struct Run {
    args: Vec<String>,
    env: Vec<(String, String)>,
    root: Option<PathBuf>,
    no_dac_caps: bool,
    as_nobody: bool,
    by_systemd: bool,
    cpu_seconds: u64,
    data_bytes: u64,
    /// Where stdout goes: captured (None), or this file (e.g. /dev/full).
    stdout_file: Option<PathBuf>,
}

fn em(args: &[&str]) -> Run {
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        root: None,
        no_dac_caps: false,
        as_nobody: false,
        by_systemd: false,
        cpu_seconds: CPU_SECONDS,
        data_bytes: DATA_BYTES,
        stdout_file: None,
    }
}

impl Run {
    fn env(mut self, k: &str, v: &str) -> Run {
        self.env.push((k.into(), v.into()));
        self
    }
    fn root(mut self, r: &Path) -> Run {
        self.root = Some(r.to_path_buf());
        self
    }
    fn no_dac_caps(mut self) -> Run {
        self.no_dac_caps = true;
        self
    }
    fn unprivileged(mut self) -> Run {
        self.as_nobody = true;
        self
    }
    fn by_systemd(mut self) -> Run {
        self.by_systemd = true;
        self
    }
    fn cpu(mut self, s: u64) -> Run {
        self.cpu_seconds = s;
        self
    }
    fn data(mut self, b: u64) -> Run {
        self.data_bytes = b;
        self
    }
    fn stdout_to(mut self, p: &Path) -> Run {
        self.stdout_file = Some(p.to_path_buf());
        self
    }

    fn command(&self, c: &Ctx) -> Command {
        let bin = env!("CARGO_BIN_EXE_extmerge");
        let mut argv: Vec<String> = Vec::new();
        if self.by_systemd {
            // $SYSTEMD_EXEC_PID must be extmerge's own pid: the shell's, kept across exec.
            argv.extend([
                "sh".into(),
                "-c".into(),
                "SYSTEMD_EXEC_PID=$$ exec \"$@\"".into(),
                "sh".into(),
            ]);
        }
        if self.no_dac_caps {
            argv.extend([
                "setpriv".into(),
                "--inh-caps=-dac_override,-dac_read_search".into(),
                "--bounding-set=-dac_override,-dac_read_search".into(),
                "--".into(),
            ]);
        }
        if self.as_nobody {
            argv.extend([
                "setpriv".into(),
                "--reuid=65534".into(),
                "--regid=65534".into(),
                "--clear-groups".into(),
                "--".into(),
            ]);
        }
        argv.push(bin.into());
        argv.extend(self.args.iter().cloned());
        let root = self.root.clone().unwrap_or_else(|| c.root.clone());
        argv.push(format!("--root={}", root.display()));
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_remove("EXTMERGE_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("SYSTEMD_EXEC_PID")
            .env_remove("EXTMERGE_FAILPOINT")
            .env_remove("EXTMERGE_FAILPOINT_TRACE")
            .env_remove("SYSTEMD_SYSEXT_HIERARCHIES")
            .env_remove("SYSTEMD_CONFEXT_HIERARCHIES")
            .env_remove("SYSTEMD_SYSEXT_MUTABLE_MODE")
            .env_remove("SYSTEMD_CONFEXT_MUTABLE_MODE")
            .env_remove("SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS")
            .env_remove("SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS")
            .env("SYSTEMD_PROC_CMDLINE", "")
            .env("RUST_BACKTRACE", "0");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let (cpu, data) = (self.cpu_seconds, self.data_bytes);
        // SAFETY: only async-signal-safe setrlimit calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let set = |res, cur: u64, max: u64| {
                    let l = libc::rlimit {
                        rlim_cur: cur,
                        rlim_max: max,
                    };
                    if libc::setrlimit(res, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                set(libc::RLIMIT_CPU, cpu, cpu + 5)?;
                set(libc::RLIMIT_DATA, data, data)
            });
        }
        cmd
    }

    fn describe(&self) -> String {
        let mut s = String::from("extmerge");
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        for (k, v) in &self.env {
            s.push_str(&format!(" [{k}={v}]"));
        }
        if self.no_dac_caps {
            s.push_str(" [no DAC caps]");
        }
        if self.as_nobody {
            s.push_str(" [uid 65534]");
        }
        if self.by_systemd {
            s.push_str(" [as started by systemd]");
        }
        s
    }

    fn go(&self, c: &Ctx) -> Out {
        let mut cmd = self.command(c);
        if let Some(f) = &self.stdout_file {
            let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
            cmd.stdout(Stdio::from(file));
        }
        let o = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.describe()));
        finish(self.describe(), o)
    }

    /// Run with stdout on a pipe whose read end is already closed.
    fn go_broken_pipe(&self, c: &Ctx) -> Out {
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        let mut cmd = self.command(c);
        cmd.stdout(Stdio::from(w));
        let o = cmd.output().unwrap();
        finish(self.describe() + " [stdout: closed pipe]", o)
    }

    /// Start in the background, output to files in scratch.
    fn spawn(&self, c: &Ctx, tag: &str) -> Bg {
        let out = c.s(&format!("{tag}.stdout"));
        let err = c.s(&format!("{tag}.stderr"));
        let mut cmd = self.command(c);
        cmd.stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&err).unwrap()));
        let child = cmd.spawn().unwrap();
        Bg {
            child,
            what: self.describe(),
            out,
            err,
        }
    }
}

fn finish(what: String, o: std::process::Output) -> Out {
    let out = Out {
        what,
        code: o.status.code(),
        signal: o.status.signal(),
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    eprintln!(
        "$ {} -> {}\n{}",
        out.what,
        out.describe_end(),
        out.stderr.trim_end()
    );
    out
}

/// A run in the background.
struct Bg {
    child: Child,
    what: String,
    out: PathBuf,
    err: PathBuf,
}

impl Bg {
    fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn wait(mut self) -> Out {
        let status = self.child.wait().unwrap();
        let o = std::process::Output {
            status,
            stdout: std::fs::read(&self.out).unwrap_or_default(),
            stderr: std::fs::read(&self.err).unwrap_or_default(),
        };
        finish(self.what, o)
    }
}

/// The good extensions are merged and the root's own files show through.
fn assert_goods(c: &Ctx, what: &str) {
    assert_eq!(
        c.read("usr/share/good-sys").as_deref(),
        Some("good-sys\n"),
        "good sysext not merged ({what})"
    );
    assert_eq!(
        c.read("etc/good-conf.conf").as_deref(),
        Some("good-conf\n"),
        "good confext not merged ({what})"
    );
    assert_eq!(c.read("usr/bin/host-tool").as_deref(), Some("host\n"));
    assert_eq!(c.read("etc/hostname").as_deref(), Some("box\n"));
}

fn status_json(c: &Ctx, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["status", "--json=short"];
    args.extend_from_slice(extra);
    let o = em(&args).go(c);
    o.expect(0);
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", o.stdout()))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The `extensions` field of `status --json` for `hierarchy`.
fn status_of(c: &Ctx, extra: &[&str], hierarchy: &str) -> Value {
    status_json(c, extra)
        .into_iter()
        .find(|r| r["hierarchy"] == hierarchy)
        .map(|r| r["extensions"].clone())
        .unwrap_or(Value::Null)
}

fn unmerge_ok(c: &Ctx) {
    em(&["unmerge"]).go(c).expect(0);
    assert!(c.mounts_at("usr").is_empty(), "/usr still merged");
    assert!(c.mounts_at("etc").is_empty(), "/etc still merged");
}

// ---------------------------------------------------------------------------------------------
// Pausing the binary at an exact point: fanotify permission events on one file.
// ---------------------------------------------------------------------------------------------

/// Holds every `open()` of one file until the test allows it (FAN_OPEN_PERM), so a test can act
/// at an exact point of a run: between two opens of an image, or while a run holds its lock.
struct OpenTrap {
    fd: OwnedFd,
    pending: Vec<(OwnedFd, i32)>,
}

/// An open of the trapped file, blocked until [`OpenTrap::allow`].
struct HeldOpen {
    fd: i32,
}

impl OpenTrap {
    fn new(file: &Path) -> OpenTrap {
        // SAFETY: plain syscalls with valid arguments; the returned fd is owned right away.
        let raw = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_LARGEFILE) as u32,
            )
        };
        assert!(
            raw >= 0,
            "fanotify_init: {} (the kernel needs CONFIG_FANOTIFY_ACCESS_PERMISSIONS)",
            std::io::Error::last_os_error()
        );
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let c = std::ffi::CString::new(file.as_os_str().as_bytes()).unwrap();
        let r = unsafe {
            libc::fanotify_mark(
                fd.as_raw_fd(),
                libc::FAN_MARK_ADD,
                libc::FAN_OPEN_PERM,
                libc::AT_FDCWD,
                c.as_ptr(),
            )
        };
        assert!(
            r == 0,
            "fanotify_mark {}: {}",
            file.display(),
            std::io::Error::last_os_error()
        );
        OpenTrap {
            fd,
            pending: Vec::new(),
        }
    }

    /// The next open of the file, or `None` once `child` has exited without one.
    fn next(&mut self, child: &mut Child) -> Option<HeldOpen> {
        loop {
            if let Some((event_fd, _pid)) = self.pending.pop() {
                let fd = event_fd.as_raw_fd();
                std::mem::forget(event_fd);
                return Some(HeldOpen { fd });
            }
            let mut buf = [0u8; 4096];
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                let mut off = 0usize;
                let size = std::mem::size_of::<libc::fanotify_event_metadata>();
                while off + size <= n as usize {
                    // SAFETY: the kernel wrote whole event records into buf.
                    let m: libc::fanotify_event_metadata =
                        unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
                    if m.fd >= 0 {
                        let efd = unsafe { OwnedFd::from_raw_fd(m.fd) };
                        self.pending.insert(0, (efd, m.pid));
                    }
                    off += m.event_len as usize;
                }
                continue;
            }
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            unsafe { libc::poll(&mut pfd, 1, 20) };
        }
    }

    /// Let a held open proceed.
    fn allow(&self, h: HeldOpen) {
        let resp = libc::fanotify_response {
            fd: h.fd,
            response: libc::FAN_ALLOW,
        };
        let n = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&resp as *const libc::fanotify_response).cast(),
                std::mem::size_of::<libc::fanotify_response>(),
            )
        };
        assert!(
            n > 0,
            "fanotify response: {}",
            std::io::Error::last_os_error()
        );
        unsafe { libc::close(h.fd) };
    }
}

// ---------------------------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------------------------

/// One attack: `setup` places it (before the sentinel snapshot), `check` runs and asserts.
struct Case {
    name: &'static str,
    /// The point of issue 12 it checks (1–8).
    point: u8,
    setup: fn(&Ctx),
    check: fn(&Ctx),
}

const fn case(name: &'static str, point: u8, setup: fn(&Ctx), check: fn(&Ctx)) -> Case {
    Case {
        name,
        point,
        setup,
        check,
    }
}

fn nothing(_: &Ctx) {}

/// A plain merge of both classes: exit 0, the good extensions merged.
fn merge_ok(c: &Ctx) -> Out {
    let o = em(&["merge"]).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    o
}

// ---- point 1: everything resolves inside the root ----

fn setup_search_dir_links(c: &Ctx) {
    link(c.o("extensions"), &c.p("etc/extensions"));
    link("../../outside/extensions", &c.p("var/lib/extensions"));
    link("../../../outside/confexts", &c.p("var/lib/confexts"));
}

fn check_search_dir_links(c: &Ctx) {
    let o = merge_ok(c);
    assert!(
        c.read("usr/share/evil-marker").is_none() && c.read("etc/evil-marker.conf").is_none(),
        "an extension outside the root was merged:\n{}",
        o.stderr
    );
    assert_eq!(c.merged_list("usr"), Some(vec!["good-sys".to_string()]));
    assert_eq!(c.merged_list("etc"), Some(vec!["good-conf".to_string()]));
    unmerge_ok(c);
}

fn setup_image_links(c: &Ctx) {
    link(c.o("extensions/evil"), &c.p("var/lib/extensions/evil-abs"));
    link(
        "../../../../outside/extensions/evil",
        &c.p("var/lib/extensions/evil-rel"),
    );
}

fn check_image_links(c: &Ctx) {
    let o = merge_ok(c);
    assert!(c.read("usr/share/evil-marker").is_none(), "{}", o.stderr);
    assert_eq!(c.merged_list("usr"), Some(vec!["good-sys".to_string()]));
    o.expect_line("evil-abs", &["dangling"]);
    o.expect_line("evil-rel", &["dangling"]);
    unmerge_ok(c);
}

fn setup_os_release_links(c: &Ctx) {
    std::fs::remove_file(c.p("usr/lib/os-release")).unwrap();
    link(c.o("os-release"), &c.p("usr/lib/os-release"));
    link("../../outside/os-release", &c.p("etc/os-release"));
}

fn check_os_release_links(c: &Ctx) {
    let o = em(&["merge"]).go(c);
    o.expect(1);
    for class in ["confext", "sysext"] {
        assert!(
            o.stderr
                .lines()
                .any(|l| l.contains("ERROR") && l.contains(class) && l.contains("os-release")),
            "no {class} error about the root's os-release:\n{}",
            o.stderr
        );
    }
    assert!(c.mounts_at("usr").is_empty() && c.mounts_at("etc").is_empty());
}

fn setup_config_links(c: &Ctx) {
    link(
        c.o("sysext.conf"),
        &c.p("etc/systemd/sysext.conf.d/50-outside.conf"),
    );
    link(
        "../../../../../outside/sysext.conf",
        &c.p("usr/lib/systemd/sysext.conf.d/60-outside.conf"),
    );
    link(c.o("confext.conf"), &c.p("etc/systemd/confext.conf"));
}

fn check_config_links(c: &Ctx) {
    let o = em(&["merge"]).go(c);
    assert!(
        !o.stderr.contains("outside-required"),
        "a configuration file outside the root was read:\n{}",
        o.stderr
    );
    o.expect(0);
    assert_goods(c, "merge");
    unmerge_ok(c);
}

fn setup_unit_mask_link(c: &Ctx) {
    link(c.o("system"), &c.p("etc/systemd/system"));
}

fn check_unit_mask_link(c: &Ctx) {
    // The absolute link, then a relative one climbing out with `..`.
    for relative in [false, true] {
        if relative {
            std::fs::remove_file(c.p("etc/systemd/system")).unwrap();
            link("../../../outside/system", &c.p("etc/systemd/system"));
        }
        // Masks count only when systemd started extmerge.
        let o = em(&["merge"]).by_systemd().go(c);
        o.expect(0);
        assert!(
            !o.stderr.contains("is masked"),
            "a unit mask outside the root was honoured (relative link: {relative}):\n{}",
            o.stderr
        );
        assert_goods(c, "merge as started by systemd");
        unmerge_ok(c);
    }
}

/// A squashfs sysext `name` in `dir` (root-relative) with verity sidecars and, when `signed`, a
/// `.roothash.p7s` made with a fresh key; returns the certificate (in scratch).
fn verity_image(c: &Ctx, dir: &str, name: &str, signed: bool) -> PathBuf {
    let img = c.p(&format!("{dir}/{name}.raw"));
    squashfs_sysext(
        c,
        &img,
        name,
        &[(&format!("usr/share/{name}-marker"), "x\n")],
    );
    let out = Command::new("veritysetup")
        .arg("format")
        .arg(&img)
        .arg(c.p(&format!("{dir}/{name}.verity")))
        .output()
        .expect("veritysetup (cryptsetup-bin) is installed by make test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(c.p(&format!("{dir}/{name}.roothash")), format!("{hash}\n")).unwrap();
    let key = c.s(&format!("{name}.key"));
    let crt = c.s(&format!("{name}.crt"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "3", "-subj"])
        .arg(format!("/CN=hostile {name}"))
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt));
    if signed {
        sign_roothash(c, dir, name, &hash, &key, &crt);
    }
    crt
}

fn sign_roothash(c: &Ctx, dir: &str, name: &str, hash: &str, key: &Path, crt: &Path) {
    let h = c.s(&format!("{name}.hash"));
    std::fs::write(&h, hash).unwrap();
    run(Command::new("openssl")
        .args(["smime", "-sign", "-nocerts", "-noattr", "-binary", "-in"])
        .arg(&h)
        .arg("-inkey")
        .arg(key)
        .arg("-signer")
        .arg(crt)
        .args(["-outform", "der", "-out"])
        .arg(c.p(&format!("{dir}/{name}.roothash.p7s"))));
}

const SIGNED_POLICY: &str = "--image-policy=root=signed+absent:usr=signed+absent";

fn setup_verity_d_links(c: &Ctx) {
    let crt = verity_image(c, "var/lib/extensions", "sig", true);
    std::fs::copy(&crt, c.o("verity.d/sig.crt")).unwrap();
    link(c.o("verity.d"), &c.p("etc/verity.d"));
    link("../../../outside/verity.d", &c.p("usr/lib/verity.d"));
}

fn check_verity_d_links(c: &Ctx) {
    let o = em(&["merge", SIGNED_POLICY]).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    o.expect_refused("sig", &["not trusted"]);
    unmerge_ok(c);
}

fn setup_mutable_dir_link(c: &Ctx) {
    link(c.o("mutable"), &c.p("var/lib/extensions.mutable"));
}

fn check_mutable_dir_link(c: &Ctx) {
    // The absolute link resolves to <root><outside>/mutable, the relative one (`..` clamped at
    // the root) to <root>/outside/mutable.
    let abs_upper = c.root.join(c.o("mutable/usr").strip_prefix("/").unwrap());
    let rel_upper = c.p("outside/mutable/usr");
    for (relative, upper) in [(false, abs_upper), (true, rel_upper)] {
        if relative {
            std::fs::remove_file(c.p("var/lib/extensions.mutable")).unwrap();
            link(
                "../../../outside/mutable",
                &c.p("var/lib/extensions.mutable"),
            );
        }
        em(&["merge", "--class=sysext", "--mutable=yes"])
            .go(c)
            .expect(0);
        assert_eq!(c.read("usr/share/good-sys").as_deref(), Some("good-sys\n"));
        // Writes through the merged /usr land in the upper dir, which must be inside the root.
        std::fs::write(c.p("usr/share/written"), "w\n").expect("the merged /usr is writable");
        assert_eq!(
            std::fs::read_to_string(upper.join("share/written"))
                .ok()
                .as_deref(),
            Some("w\n"),
            "the write did not land in {} (relative link: {relative})",
            upper.display()
        );
        em(&["unmerge"]).go(c).expect(0);
    }
}

fn setup_var_link(c: &Ctx) {
    sysext_tree(
        &c.o("var/lib/extensions/evil"),
        "evil",
        &[("usr/share/evil-marker", "evil\n")],
    );
    write_files(
        &c.o("var"),
        &[
            ("cache/keep", "precious\n"),
            ("lib/extensions.mutable/usr/keep", "precious\n"),
        ],
    );
    std::fs::set_permissions(
        c.o("var/lib/extensions.mutable/usr"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    // A raw image, so that the hash cache below /var is written.
    squashfs_sysext(
        c,
        &c.p("etc/extensions/raw-sys.raw"),
        "raw-sys",
        &[("usr/share/raw-sys", "raw-sys\n")],
    );
    link("../outside/var", &c.p("var"));
}

fn check_var_link(c: &Ctx) {
    for refresh in [false, true] {
        let verb = if refresh { "refresh" } else { "merge" };
        let o = em(&[verb, "--class=sysext", "--mutable=yes"]).go(c);
        assert!(
            o.code == Some(0) || (refresh && o.code == Some(EXIT_SKIPPED)),
            "{verb}: {}\n{}",
            o.describe_end(),
            o.stderr
        );
        assert_eq!(c.read("usr/share/good-sys").as_deref(), Some("good-sys\n"));
        assert_eq!(c.read("usr/share/raw-sys").as_deref(), Some("raw-sys\n"));
        assert!(c.read("usr/share/evil-marker").is_none(), "{}", o.stderr);
    }
    em(&["unmerge"]).go(c).expect(0);
}

fn setup_cache_link(c: &Ctx) {
    squashfs_sysext(
        c,
        &c.p("var/lib/extensions/raw-sys.raw"),
        "raw-sys",
        &[("usr/share/raw-sys", "raw-sys\n")],
    );
    link(c.o("cache"), &c.p("var/cache/extmerge"));
}

fn check_cache_link(c: &Ctx) {
    for relative in [false, true] {
        if relative {
            std::fs::remove_file(c.p("var/cache/extmerge")).unwrap();
            link("../../../outside/cache", &c.p("var/cache/extmerge"));
        }
        merge_ok(c);
        assert_eq!(c.read("usr/share/raw-sys").as_deref(), Some("raw-sys\n"));
        em(&["refresh"]).go(c).expect(EXIT_SKIPPED);
        unmerge_ok(c);
    }
}

fn setup_hierarchy_link(c: &Ctx) {
    write_files(
        &c.p("run/extensions/good-sys"),
        &[("opt/good-sys-opt", "opt\n")],
    );
    link(c.o("opt"), &c.p("opt"));
}

fn check_hierarchy_link(c: &Ctx) {
    merge_ok(c);
    assert!(
        c.mounts_at_path(&c.o("opt")).is_empty(),
        "an overlay was mounted outside the root: {:#?}",
        c.mounts_at_path(&c.o("opt"))
    );
    let inside = c.root.join(c.o("opt").strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(inside.join("good-sys-opt"))
            .ok()
            .as_deref(),
        Some("opt\n"),
        "/opt (a link resolved inside the root) was not merged at {}",
        inside.display()
    );
    unmerge_ok(c);
    assert!(c.mounts_at_path(&inside).is_empty());
}

fn setup_meta_dir_link(c: &Ctx) {
    link(c.o("meta"), &c.p("usr/.systemd-sysext"));
}

fn check_meta_dir_link(c: &Ctx) {
    merge_ok(c);
    assert_eq!(status_of(c, &[], "/usr"), serde_json::json!(["good-sys"]));
    em(&["refresh"]).go(c).expect(EXIT_SKIPPED);
    unmerge_ok(c);
    assert_eq!(
        std::fs::read_link(c.p("usr/.systemd-sysext")).ok(),
        Some(c.o("meta")),
        "the root's own link must be left as it is"
    );
}

// ---- point 2: never trust what a merged tree says about itself ----

const META_REASONS: &[&str] = &[".systemd-sysext"];
const CONF_META_REASONS: &[&str] = &[".systemd-confext"];

fn setup_ext_work_dir(c: &Ctx) {
    sysext_tree(
        &c.p("var/lib/extensions/evil"),
        "evil",
        &[
            ("usr/share/evil-marker", "evil\n"),
            (
                "usr/.systemd-sysext/work_dir",
                "../outside/.systemd-usr-workdir\n",
            ),
        ],
    );
}

fn check_ext_work_dir(c: &Ctx) {
    let o = merge_ok(c);
    o.expect_refused("evil", META_REASONS);
    assert!(c.read("usr/share/evil-marker").is_none());
    unmerge_ok(c);
}

fn setup_image_work_dir(c: &Ctx) {
    squashfs_sysext(
        c,
        &c.p("var/lib/extensions/evil-img.raw"),
        "evil-img",
        &[
            ("usr/share/evil-marker", "evil\n"),
            (
                "usr/.systemd-sysext/work_dir",
                "../outside/.systemd-usr-workdir-0123456789abcdef\n",
            ),
        ],
    );
}

fn check_image_work_dir(c: &Ctx) {
    let o = merge_ok(c);
    o.expect_refused("evil-img", META_REASONS);
    let o = em(&["refresh", "--always-refresh=yes"]).go(c);
    o.expect(0);
    assert_goods(c, "refresh");
    unmerge_ok(c);
}

fn setup_ext_meta_files(c: &Ctx) {
    sysext_tree(
        &c.p("var/lib/extensions/evil"),
        "evil",
        &[
            ("usr/share/evil-marker", "evil\n"),
            ("usr/.systemd-sysext/dev", "0:1\n"),
            ("usr/.systemd-sysext/extensions", "forged\n"),
            ("usr/.systemd-sysext/origin", "{}\n"),
            ("usr/.systemd-sysext/extmerge-state.json", "{}\n"),
        ],
    );
}

fn check_ext_meta_files(c: &Ctx) {
    let o = merge_ok(c);
    o.expect_refused("evil", META_REASONS);
    assert_eq!(status_of(c, &[], "/usr"), serde_json::json!(["good-sys"]));
    em(&["refresh"]).go(c).expect(EXIT_SKIPPED);
    unmerge_ok(c);
}

fn setup_ext_meta_as_file(c: &Ctx) {
    sysext_tree(
        &c.p("var/lib/extensions/evil"),
        "evil",
        &[
            ("usr/share/evil-marker", "evil\n"),
            ("usr/.systemd-sysext", "not a directory\n"),
        ],
    );
}

fn check_ext_meta_as_file(c: &Ctx) {
    let o = merge_ok(c);
    o.expect_refused("evil", META_REASONS);
    unmerge_ok(c);
}

fn setup_confext_work_dir(c: &Ctx) {
    confext_tree(
        &c.p("var/lib/confexts/evil-conf"),
        "evil-conf",
        &[
            ("etc/evil-marker.conf", "evil\n"),
            (
                "etc/.systemd-confext/work_dir",
                "../outside/.systemd-etc-workdir\n",
            ),
        ],
    );
}

fn check_confext_work_dir(c: &Ctx) {
    let o = merge_ok(c);
    o.expect_refused("evil-conf", CONF_META_REASONS);
    assert!(c.read("etc/evil-marker.conf").is_none());
    em(&["refresh", "--always-refresh=yes"]).go(c).expect(0);
    unmerge_ok(c);
}

/// Flatcar's layout: `/var/lib/extensions.mutable/etc -> /etc`, the real /etc its own upper dir.
fn flatcar_etc(c: &Ctx) {
    link("/etc", &c.p("var/lib/extensions.mutable/etc"));
}

fn setup_stale_confext_meta(c: &Ctx) {
    flatcar_etc(c);
    write_files(
        &c.root,
        &[
            ("etc/.systemd-confext/dev", "0:1\n"),
            ("etc/.systemd-confext/confexts", "stale\n"),
        ],
    );
}

fn check_stale_confext_meta(c: &Ctx) {
    let args = ["--class=confext", "--mutable=auto"];
    let o = em(&["merge", args[0], args[1]]).go(c);
    o.expect(0);
    assert_eq!(c.read("etc/good-conf.conf").as_deref(), Some("good-conf\n"));
    assert_eq!(
        status_of(c, &["--class=confext"], "/etc"),
        serde_json::json!(["good-conf"]),
        "status must show the merge, not the stale meta dir in the real /etc"
    );
    em(&["refresh", args[0], args[1]])
        .go(c)
        .expect(EXIT_SKIPPED);
    em(&["unmerge", "--class=confext"]).go(c).expect(0);
    assert!(
        c.mounts_at("etc").is_empty(),
        "/etc still merged after unmerge: {:#?}",
        c.mounts_at("etc")
    );
}

fn setup_stale_confext_work_dir(c: &Ctx) {
    setup_stale_confext_meta(c);
    write_files(
        &c.root,
        &[(
            "etc/.systemd-confext/work_dir",
            "../outside/.systemd-etc-workdir\n",
        )],
    );
}

fn check_stale_confext_work_dir(c: &Ctx) {
    let args = ["--class=confext", "--mutable=auto"];
    em(&["merge", args[0], args[1]]).go(c).expect(0);
    em(&["refresh", args[0], args[1], "--always-refresh=yes"])
        .go(c)
        .expect(0);
    assert_eq!(c.read("etc/good-conf.conf").as_deref(), Some("good-conf\n"));
    em(&["unmerge", "--class=confext"]).go(c).expect(0);
    assert!(c.mounts_at("etc").is_empty(), "{:#?}", c.mounts_at("etc"));
}

// ---- point 3: host identity from the base ----

fn setup_confext_os_release(c: &Ctx) {
    link("../usr/lib/os-release", &c.p("etc/os-release"));
    confext_tree(
        &c.p("var/lib/confexts/os-conf"),
        "os-conf",
        &[("etc/os-release", "ID=fedora\nVERSION_ID=40\n")],
    );
}

fn check_confext_os_release(c: &Ctx) {
    let o = merge_ok(c);
    assert_eq!(
        c.merged_list("etc"),
        Some(vec!["good-conf".to_string(), "os-conf".to_string()]),
        "{}",
        o.stderr
    );
    assert_eq!(c.merged_list("usr"), Some(vec!["good-sys".to_string()]));
    for i in 1..=2 {
        let o = em(&["refresh"]).go(c);
        o.expect(EXIT_SKIPPED);
        assert_goods(c, &format!("refresh {i}"));
    }
    unmerge_ok(c);
}

fn setup_os_release_dangling(c: &Ctx) {
    sysext_tree(
        &c.p("var/lib/extensions/osrel"),
        "osrel",
        &[("usr/share/osrel-marker", "x\n")],
    );
    link(
        "/nonexistent/os-release",
        &c.p("var/lib/extensions/osrel/usr/lib/os-release"),
    );
}

fn check_os_release_refused(c: &Ctx) {
    let o = merge_ok(c);
    o.expect_refused("osrel", &["usr/lib/os-release"]);
    assert!(c.read("usr/share/osrel-marker").is_none());
    unmerge_ok(c);
}

fn setup_os_release_link(c: &Ctx) {
    sysext_tree(
        &c.p("var/lib/extensions/osrel"),
        "osrel",
        &[
            ("usr/share/osrel-marker", "x\n"),
            ("usr/share/osrel/os-release", "ID=evil\n"),
        ],
    );
    link(
        "../share/osrel/os-release",
        &c.p("var/lib/extensions/osrel/usr/lib/os-release"),
    );
}

fn setup_image_os_release_dangling(c: &Ctx) {
    let src = c.s("src-osrel");
    sysext_tree(&src, "osrel", &[("usr/share/osrel-marker", "x\n")]);
    link("/nonexistent/os-release", &src.join("usr/lib/os-release"));
    let img = c.p("var/lib/extensions/osrel.raw");
    mkdirs(img.parent().unwrap());
    mkfs_squashfs(&src, &img);
}

// ---- point 4: bounded reads and work ----

fn setup_sparse_zero_image(c: &Ctx) {
    let p = c.p("var/lib/extensions/sparse.raw");
    mkdirs(p.parent().unwrap());
    std::fs::File::create(&p).unwrap();
    set_len(&p, 100 * GIB);
}

fn check_sparse_zero_image(c: &Ctx) {
    let o = em(&["merge"]).cpu(BOMB_CPU_SECONDS).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    let mut reasons = vec!["unrecognized image format", "sparse"];
    reasons.extend_from_slice(SIZE_REASONS);
    o.expect_refused("sparse", &reasons);
    em(&["refresh"])
        .cpu(BOMB_CPU_SECONDS)
        .go(c)
        .expect(EXIT_SKIPPED);
    unmerge_ok(c);
}

fn setup_sparse_padded_squashfs(c: &Ctx) {
    let p = c.p("var/lib/extensions/padded.raw");
    squashfs_sysext(c, &p, "padded", &[("usr/share/padded", "padded\n")]);
    set_len(&p, 100 * GIB);
}

fn check_sparse_padded_squashfs(c: &Ctx) {
    let o = em(&["merge"]).cpu(BOMB_CPU_SECONDS).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    assert_eq!(
        c.read("usr/share/padded").as_deref(),
        Some("padded\n"),
        "{}",
        o.stderr
    );
    em(&["refresh"])
        .cpu(BOMB_CPU_SECONDS)
        .go(c)
        .expect(EXIT_SKIPPED);
    unmerge_ok(c);
}

fn setup_huge_extension_release(c: &Ctx) {
    sysext_tree(
        &c.p("var/lib/extensions/bigrel"),
        "bigrel",
        &[("usr/share/bigrel", "x\n")],
    );
    // Not 8 GiB: a directory extension's files are hashed for its identity, and this case is
    // about the read of extension-release (the 100 GiB cases are about hashing sparse files).
    set_len(
        &c.p("var/lib/extensions/bigrel/usr/lib/extension-release.d/extension-release.bigrel"),
        128 * MIB,
    );
}

fn check_huge_extension_release(c: &Ctx) {
    // The default CPU limit: a 128 MiB file inside a directory extension costs nothing to identify.
    let o = em(&["merge"]).data(64 * MIB).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    o.expect_refused("bigrel", SIZE_REASONS);
    unmerge_ok(c);
}

fn setup_huge_os_release(c: &Ctx) {
    set_len(&c.p("usr/lib/os-release"), BOMB);
}

fn check_huge_os_release(c: &Ctx) {
    let o = em(&["merge"]).cpu(BOMB_CPU_SECONDS).go(c);
    o.expect(1);
    for class in ["confext", "sysext"] {
        assert!(
            o.stderr.lines().any(|l| l.contains("ERROR")
                && l.contains(class)
                && l.contains("os-release")
                && SIZE_REASONS.iter().any(|r| l.contains(r))),
            "no {class} error naming os-release and its size:\n{}",
            o.stderr
        );
    }
}

fn setup_huge_config(c: &Ctx) {
    write_files(&c.root, &[("etc/systemd/sysext.conf", "[SysExt]\n")]);
    set_len(&c.p("etc/systemd/sysext.conf"), BOMB);
}

fn check_huge_config(c: &Ctx) {
    let o = em(&["merge"]).cpu(BOMB_CPU_SECONDS).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    o.expect_line("sysext.conf", SIZE_REASONS);
    unmerge_ok(c);
}

/// A Flatcar-like root for `flatcar-select`.
fn flatcar_root(c: &Ctx) {
    write_files(
        &c.root,
        &[
            (
                "usr/lib/os-release",
                "ID=flatcar\nID_LIKE=coreos\nVERSION=4081.2.0\nVERSION_ID=4081.2.0\n",
            ),
            ("usr/share/flatcar/enabled-sysext.conf", ""),
            (
                "etc/flatcar/sysext/flatcar-docker-4081.2.0.raw",
                "not really an image\n",
            ),
        ],
    );
}

fn setup_huge_enabled_sysext(c: &Ctx) {
    flatcar_root(c);
    write_files(&c.root, &[("etc/flatcar/enabled-sysext.conf", "docker\n")]);
    set_len(&c.p("etc/flatcar/enabled-sysext.conf"), BOMB);
}

fn check_huge_enabled_sysext(c: &Ctx) {
    let o = em(&["flatcar-select"]).cpu(BOMB_CPU_SECONDS).go(c);
    // A failed selection under the default missing-image policy (warn): exit 3, which the
    // initrd unit boots past.
    o.expect(extmerge::verbs::flatcar_select::EXIT_FAILED_WARN);
    o.expect_line("enabled-sysext.conf", SIZE_REASONS);
}

fn check_huge_state(c: &Ctx) {
    merge_ok(c);
    // The merged /usr is read-only: bind a copy of its meta dir with a huge state file over it;
    // the refresh detaches it with the old overlay.
    let copy = c.s("meta-copy");
    run(Command::new("cp")
        .arg("-a")
        .arg(c.p("usr/.systemd-sysext"))
        .arg(&copy));
    set_len(&copy.join("extmerge-state.json"), BOMB);
    run(Command::new("mount")
        .arg("--bind")
        .arg(&copy)
        .arg(c.p("usr/.systemd-sysext")));
    let o = em(&["refresh", "--class=sysext"])
        .cpu(BOMB_CPU_SECONDS)
        .go(c);
    o.expect(0);
    o.expect_line("state", SIZE_REASONS);
    assert_eq!(c.mounts_at("usr").len(), 1, "one overlay on /usr");
    em(&["refresh", "--class=sysext"])
        .go(c)
        .expect(EXIT_SKIPPED);
    unmerge_ok(c);
}

fn check_os_release_dev_zero(c: &Ctx) {
    let o = em(&["check", "--os-release=/dev/zero"])
        .cpu(BOMB_CPU_SECONDS)
        .go(c);
    o.expect(1);
    let mut reasons = vec!["not a regular file"];
    reasons.extend_from_slice(SIZE_REASONS);
    o.expect_line("/dev/zero", &reasons);
    assert!(
        o.stdout.is_empty(),
        "no verdict may be printed: {}",
        o.stdout()
    );
}

fn setup_gpt_big_array(c: &Ctx) {
    // 1024 entries of 128 KiB: a 128 MiB entry array (the spec's entries are 128 bytes, and the
    // header's own first usable LBA 34 leaves room for 16 KiB), inside a 130 MiB file.
    let p = c.p("var/lib/extensions/gptbomb.raw");
    mkdirs(p.parent().unwrap());
    std::fs::File::create(&p).unwrap();
    set_len(&p, 130 * MIB);
    write_gpt_header(&p, 2, 1024, 128 << 10);
}

fn check_gpt_big_array(c: &Ctx) {
    // Twice the binary's normal need, half the entry array.
    let o = em(&["merge"]).data(64 * MIB).cpu(BOMB_CPU_SECONDS).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    o.expect_refused("gptbomb", &["entry array", "entry size", "entries"]);
    unmerge_ok(c);
}

fn setup_gpt_array_beyond(c: &Ctx) {
    let p = c.p("var/lib/extensions/gptfar.raw");
    mkdirs(p.parent().unwrap());
    std::fs::File::create(&p).unwrap();
    set_len(&p, MIB);
    write_gpt_header(&p, 1 << 40, 128, 128);
}

fn check_gpt_array_beyond(c: &Ctx) {
    let o = em(&["merge"]).data(64 * MIB).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    o.expect_refused("gptfar", &["entry array", "outside", "beyond"]);
    unmerge_ok(c);
}

const DEEP_NAME: &str = "d123456789abcdefghijklmnopqrst";
const DEEP: usize = 200;

fn setup_deep_tree(c: &Ctx) {
    // Two extensions that conflict: the deep one must not stop their conflict being seen.
    setup_conflicting(c);
    let dir = c.p("var/lib/extensions/deep");
    sysext_tree(&dir, "deep", &[("usr/share/deep/top", "top\n")]);
    let bottom = deep_chain(&dir.join("usr/share/deep"), DEEP_NAME, DEEP);
    write_at(&bottom, "bottom", "one\n");
}

fn check_deep_tree(c: &Ctx) {
    let o = em(&["merge"]).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    assert!(
        !o.stderr.contains("merge failed"),
        "a deep tree must not fail the class:\n{}",
        o.stderr
    );
    o.expect_line("/usr/share/clash", &["same-file"]);
    let merged = c.read("usr/share/deep/top").is_some();
    if !merged {
        assert!(
            !o.reports_naming("deep").is_empty(),
            "'deep' neither merged nor reported:\n{}",
            o.stderr
        );
    } else {
        em(&["refresh"]).go(c).expect(EXIT_SKIPPED);
        // An edit at the bottom of the deep tree is a change.
        let bottom = deep_chain(
            &c.p("var/lib/extensions/deep/usr/share/deep"),
            DEEP_NAME,
            DEEP,
        );
        write_at(&bottom, "bottom", "two\n");
        em(&["refresh"]).go(c).expect(0);
    }
    unmerge_ok(c);
}

// ---- point 5: the recorded identity is of what was mounted ----

/// The `dev:ino` recorded for extension `name` in the state record of the merged /usr: the
/// file it was identified by (an image without verity is identified by its inode and times).
fn recorded_inode(c: &Ctx, name: &str) -> Option<String> {
    let text = c.read("usr/.systemd-sysext/extmerge-state.json")?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["state"]["images"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == name)?["inode"]
        .as_str()
        .map(str::to_string)
}

fn inode_of(p: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).unwrap();
    format!("{}:{}", m.dev(), m.ino())
}

fn setup_replaced_image(c: &Ctx) {
    squashfs_sysext(c, &c.s("a/swap.raw"), "swap", &[("usr/share/swap", "A\n")]);
    squashfs_sysext(c, &c.s("b/swap.raw"), "swap", &[("usr/share/swap", "B\n")]);
}

fn check_replaced_image(c: &Ctx) {
    let (a, b) = (c.s("a/swap.raw"), c.s("b/swap.raw"));
    let img = c.p("var/lib/extensions/swap.raw");
    let staged = c.p("var/lib/stage/swap.raw");
    mkdirs(img.parent().unwrap());
    mkdirs(staged.parent().unwrap());
    let mut problems = Vec::new();
    // Replace the image at its 1st, 2nd, … open: whatever the binary does between identifying
    // and mounting, the record must match what got mounted.
    for n in 1..=8usize {
        let _ = std::fs::remove_file(&img);
        std::fs::copy(&a, &img).unwrap();
        std::fs::copy(&b, &staged).unwrap();
        let (ino_a, ino_b) = (inode_of(&img), inode_of(&staged));
        let mut trap = OpenTrap::new(&img);
        let mut bg = em(&["merge", "--class=sysext"]).spawn(c, &format!("replace-{n}"));
        let mut opens = 0;
        let mut replaced = false;
        while let Some(h) = trap.next(&mut bg.child) {
            opens += 1;
            if opens == n {
                std::fs::rename(&staged, &img).unwrap();
                replaced = true;
            }
            trap.allow(h);
            if replaced {
                break;
            }
        }
        drop(trap);
        let o = bg.wait();
        o.expect(0);
        if !replaced {
            eprintln!("the merge opens swap.raw {opens} time(s): done");
            em(&["unmerge"]).go(c).expect(0);
            break;
        }
        let mounted = c.read("usr/share/swap");
        let recorded = recorded_inode(c, "swap");
        let consistent = match mounted.as_deref() {
            Some("A\n") => recorded.as_ref() == Some(&ino_a),
            Some("B\n") => recorded.as_ref() == Some(&ino_b),
            _ => true,
        };
        if !consistent {
            problems.push(format!(
                "replaced at open #{n}: mounted {:?}, recorded {:?} (A={ino_a}, B={ino_b})",
                mounted, recorded
            ));
        }
        // On disk is B now: a refresh must end with B merged.
        let r = em(&["refresh", "--class=sysext"]).go(c);
        assert!(
            r.code == Some(0) || r.code == Some(EXIT_SKIPPED),
            "refresh: {}",
            r.describe_end()
        );
        if c.read("usr/share/swap").as_deref() != Some("B\n") {
            problems.push(format!(
                "replaced at open #{n}: after a refresh /usr/share/swap is {:?}, not the image on disk (B)",
                c.read("usr/share/swap")
            ));
        }
        em(&["unmerge"]).go(c).expect(0);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

fn setup_xattr_opaque(c: &Ctx) {
    sysext_tree(
        &c.p("var/lib/extensions/zz-opaque"),
        "zz-opaque",
        &[("usr/share/zz-opaque", "x\n")],
    );
}

fn check_xattr_opaque(c: &Ctx) {
    merge_ok(c);
    assert_eq!(c.read("usr/share/host-data").as_deref(), Some("host\n"));
    run(Command::new("setfattr")
        .args(["-n", "trusted.overlay.opaque", "-v", "y"])
        .arg(c.p("var/lib/extensions/zz-opaque/usr/share")));
    em(&["refresh"]).go(c).expect(0);
    assert!(
        c.read("usr/share/host-data").is_none(),
        "the now opaque usr/share of 'zz-opaque' must hide the host's files"
    );
    em(&["refresh"]).go(c).expect(EXIT_SKIPPED);
    unmerge_ok(c);
}

fn setup_xattr_strict(c: &Ctx) {
    let dir = c.p("var/lib/extensions/strict");
    write_files(
        &dir,
        &[
            (
                "usr/lib/extension-release.d/extension-release.other",
                DEBIAN,
            ),
            ("usr/share/strict-marker", "x\n"),
        ],
    );
    run(Command::new("setfattr")
        .args(["-n", "user.extension-release.strict", "-v", "0"])
        .arg(dir.join("usr/lib/extension-release.d/extension-release.other")));
}

fn check_xattr_strict(c: &Ctx) {
    let o = merge_ok(c);
    assert_eq!(
        c.read("usr/share/strict-marker").as_deref(),
        Some("x\n"),
        "user.extension-release.strict=0 accepts it:\n{}",
        o.stderr
    );
    run(Command::new("setfattr")
        .args(["-x", "user.extension-release.strict"])
        .arg(c.p("var/lib/extensions/strict/usr/lib/extension-release.d/extension-release.other")));
    em(&["refresh"]).go(c).expect(0);
    assert!(
        c.read("usr/share/strict-marker").is_none(),
        "without the xattr 'strict' has no extension-release and must go"
    );
    unmerge_ok(c);
}

fn setup_non_utf8_name(c: &Ctx) {
    let dir = c.p("var/lib/extensions/bytes");
    sysext_tree(&dir, "bytes", &[("usr/share/bytes/top", "x\n")]);
    std::fs::write(
        dir.join("usr/share/bytes")
            .join(OsStr::from_bytes(b"n\xff")),
        "x\n",
    )
    .unwrap();
}

fn check_non_utf8_name(c: &Ctx) {
    merge_ok(c);
    let d = c.p("var/lib/extensions/bytes/usr/share/bytes");
    std::fs::rename(
        d.join(OsStr::from_bytes(b"n\xff")),
        d.join(OsStr::from_bytes(b"n\xfe")),
    )
    .unwrap();
    em(&["refresh"]).go(c).expect(0);
    assert!(
        c.p("usr/share/bytes")
            .join(OsStr::from_bytes(b"n\xfe"))
            .exists(),
        "the renamed file must show after the refresh"
    );
    unmerge_ok(c);
}

fn setup_unreadable_subdir(c: &Ctx) {
    let dir = c.p("var/lib/extensions/locked");
    sysext_tree(
        &dir,
        "locked",
        &[("usr/share/locked/secret/file", "secret\n")],
    );
    std::fs::set_permissions(
        dir.join("usr/share/locked/secret"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
}

fn check_unreadable_subdir(c: &Ctx) {
    let o = em(&["merge"]).no_dac_caps().go(c);
    o.expect(0);
    assert_goods(c, "merge");
    o.expect_refused("locked", &["Permission denied"]);
    em(&["unmerge"]).no_dac_caps().go(c).expect(0);
}

// ---- point 6: the state records every input that changes the result ----

fn setup_conflicting(c: &Ctx) {
    for (n, v) in [("clash-a", "a\n"), ("clash-b", "b\n")] {
        sysext_tree(
            &c.p(&format!("var/lib/extensions/{n}")),
            n,
            &[("usr/share/clash", v)],
        );
    }
}

fn check_conflict_policy_change(c: &Ctx) {
    merge_ok(c);
    assert_eq!(
        c.merged_list("usr"),
        Some(vec!["clash-a".into(), "clash-b".into(), "good-sys".into()])
    );
    em(&["refresh", "--check-conflicts=refuse"]).go(c).expect(0);
    assert_eq!(
        c.merged_list("usr"),
        Some(vec!["clash-a".into(), "good-sys".into()]),
        "refuse drops the later of the two"
    );
    unmerge_ok(c);
}

fn setup_plain_image(c: &Ctx) {
    squashfs_sysext(
        c,
        &c.p("var/lib/extensions/plain.raw"),
        "plain",
        &[("usr/share/plain", "plain\n")],
    );
}

fn check_image_policy_change(c: &Ctx) {
    merge_ok(c);
    assert_eq!(c.read("usr/share/plain").as_deref(), Some("plain\n"));
    em(&["refresh", SIGNED_POLICY]).go(c).expect(0);
    assert!(c.read("usr/share/plain").is_none());
    unmerge_ok(c);
}

fn setup_signed_untrusted(c: &Ctx) {
    let crt = verity_image(c, "var/lib/extensions", "sig", true);
    std::fs::copy(crt, c.s("sig-later.crt")).unwrap();
}

fn check_new_certificate(c: &Ctx) {
    merge_ok(c);
    em(&["refresh"]).go(c).expect(EXIT_SKIPPED);
    // /etc and /usr are merged (read-only): trust arrives in /run/verity.d.
    write_files(&c.root, &[("run/verity.d/.keep", "")]);
    std::fs::copy(c.s("sig-later.crt"), c.p("run/verity.d/sig.crt")).unwrap();
    let o = em(&["refresh"]).go(c);
    o.expect(0);
    unmerge_ok(c);
}

fn setup_unsigned_verity(c: &Ctx) {
    let crt = verity_image(c, "var/lib/extensions", "sig", false);
    write_files(&c.root, &[("etc/verity.d/.keep", "")]);
    std::fs::copy(crt, c.p("etc/verity.d/sig.crt")).unwrap();
}

fn check_signature_added(c: &Ctx) {
    merge_ok(c);
    em(&["refresh"]).go(c).expect(EXIT_SKIPPED);
    let hash = c.read("var/lib/extensions/sig.roothash").unwrap();
    sign_roothash(
        c,
        "var/lib/extensions",
        "sig",
        hash.trim(),
        &c.s("sig.key"),
        &c.s("sig.crt"),
    );
    em(&["refresh"]).go(c).expect(0);
    unmerge_ok(c);
}

fn check_mutable_change(c: &Ctx) {
    merge_ok(c);
    em(&["refresh", "--mutable=ephemeral"]).go(c).expect(0);
    std::fs::write(c.p("usr/share/written"), "w\n").expect("/usr is writable now");
    unmerge_ok(c);
}

fn setup_opt_content(c: &Ctx) {
    write_files(
        &c.p("run/extensions/good-sys"),
        &[("opt/good-sys-opt", "opt\n")],
    );
}

fn check_hierarchies_change(c: &Ctx) {
    em(&["merge"])
        .env("SYSTEMD_SYSEXT_HIERARCHIES", "/usr")
        .go(c)
        .expect(0);
    assert!(c.mounts_at("opt").is_empty());
    em(&["refresh"])
        .env("SYSTEMD_SYSEXT_HIERARCHIES", "/usr:/opt")
        .go(c)
        .expect(0);
    assert_eq!(c.read("opt/good-sys-opt").as_deref(), Some("opt\n"));
    unmerge_ok(c);
    assert!(c.mounts_at("opt").is_empty());
}

fn check_mount_options_change(c: &Ctx) {
    merge_ok(c);
    assert!(!c.mount_opts("usr").contains(&"noatime".to_string()));
    em(&["refresh"])
        .env("SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS", "noatime")
        .go(c)
        .expect(0);
    assert!(c.mount_opts("usr").contains(&"noatime".to_string()));
    unmerge_ok(c);
}

fn check_noexec_change(c: &Ctx) {
    merge_ok(c);
    assert!(!c.mount_opts("usr").contains(&"noexec".to_string()));
    em(&["refresh", "--noexec=yes"]).go(c).expect(0);
    assert!(c.mount_opts("usr").contains(&"noexec".to_string()));
    unmerge_ok(c);
}

fn setup_confext_cert(c: &Ctx) {
    let crt = verity_image(c, "var/lib/extensions", "sig", true);
    confext_tree(&c.p("var/lib/confexts/certs"), "certs", &[]);
    let d = c.p("var/lib/confexts/certs/etc/verity.d");
    mkdirs(&d);
    std::fs::copy(crt, d.join("sig.crt")).unwrap();
}

fn check_confext_cert(c: &Ctx) {
    let o = em(&["merge", SIGNED_POLICY]).go(c);
    o.expect(0);
    assert_goods(c, "merge");
    assert!(
        c.p("etc/verity.d/sig.crt").exists(),
        "the confext is merged"
    );
    o.expect_refused("sig", &["not trusted"]);
    unmerge_ok(c);
}

// ---- point 7: one bad thing stays one bad thing ----

fn setup_many_layers(c: &Ctx) {
    for i in 0..505 {
        let name = format!("many-{i:03}");
        sysext_tree(
            &c.p(&format!("var/lib/extensions/{name}")),
            &name,
            &[(&format!("usr/share/many/{name}"), "x")],
        );
    }
}

fn check_many_layers(c: &Ctx) {
    let o = em(&["merge", "--class=sysext"]).go(c);
    o.expect(0);
    // overlayfs takes 500 lower layers: the meta layer, the host /usr and 498 extensions, the
    // highest names (good-sys sorts below every many-NNN).
    let want: Vec<String> = (7..505).map(|i| format!("many-{i:03}")).collect();
    assert_eq!(c.merged_list("usr").as_ref(), Some(&want), "{}", o.stderr);
    for left in
        std::iter::once("good-sys".to_string()).chain((0..7).map(|i| format!("many-{i:03}")))
    {
        assert!(
            !o.reports_naming(&left).is_empty(),
            "'{left}' is left out without a word:\n{}",
            o.stderr
        );
    }
    em(&["unmerge"]).go(c).expect(0);
}

fn check_mutable_nothing(c: &Ctx, mode: &str) {
    let o = em(&["merge", "--class=sysext", mode]).go(c);
    o.expect(0);
    assert_eq!(c.read("usr/share/good-sys").as_deref(), Some("good-sys\n"));
    assert!(
        c.mounts_at("opt").is_empty(),
        "/opt has nothing to merge and must be left alone: {:#?}",
        c.mounts_at("opt")
    );
    em(&["refresh", "--class=sysext", mode])
        .go(c)
        .expect(EXIT_SKIPPED);
    em(&["unmerge"]).go(c).expect(0);
}

fn setup_unjudgeable(c: &Ctx) {
    setup_conflicting(c);
    let dir = c.p("var/lib/extensions/unjudgeable");
    sysext_tree(
        &dir,
        "unjudgeable",
        &[("usr/share/unjudgeable/locked/file", "x\n")],
    );
    std::fs::set_permissions(
        dir.join("usr/share/unjudgeable/locked"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
}

fn check_unjudgeable(c: &Ctx) {
    let o = em(&["merge", "--check-conflicts=refuse"])
        .no_dac_caps()
        .go(c);
    o.expect(0);
    assert_goods(c, "merge");
    assert_eq!(
        c.merged_list("usr"),
        Some(vec!["clash-a".into(), "good-sys".into()]),
        "only 'unjudgeable' and the conflicting 'clash-b' are dropped:\n{}",
        o.stderr
    );
    assert!(!o.reports_naming("unjudgeable").is_empty(), "{}", o.stderr);
    em(&["unmerge"]).no_dac_caps().go(c).expect(0);
}

fn setup_enabled_sysext_bad_lines(c: &Ctx) {
    flatcar_root(c);
    let mut conf = b"docker\n../../../../outside/evil\nbad\x01name\n".to_vec();
    conf.extend_from_slice(b"\xff\xfe\n");
    let p = c.p("etc/flatcar/enabled-sysext.conf");
    std::fs::write(&p, conf).unwrap();
}

fn check_enabled_sysext_bad_lines(c: &Ctx) {
    let o = em(&["flatcar-select"]).go(c);
    o.expect(0);
    assert_eq!(
        std::fs::read_link(c.p("etc/extensions/flatcar-docker.raw")).ok(),
        Some(PathBuf::from(
            "/etc/flatcar/sysext/flatcar-docker-4081.2.0.raw"
        )),
        "the good line is applied"
    );
    o.expect_line("../../../../outside/evil", &["'/'", "slash"]);
    o.expect_line("bad", &["control"]);
    assert!(
        o.stderr.lines().any(|l| l.contains("\\xff")
            || l.contains("\\377")
            || l.contains("UTF-8")
            || l.contains("\u{fffd}")),
        "the non-UTF-8 line is reported:\n{}",
        o.stderr
    );
    let entries: Vec<_> = std::fs::read_dir(c.p("etc/extensions"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("flatcar-docker.raw")]
    );
}

fn check_duplicate_hierarchies(c: &Ctx) {
    let env = ("SYSTEMD_SYSEXT_HIERARCHIES", "/usr:/usr:/opt");
    let o = em(&["merge", "--class=sysext"]).env(env.0, env.1).go(c);
    o.expect(0);
    assert_eq!(c.mounts_at("usr").len(), 1, "{:#?}", c.mounts_at("usr"));
    let st = status_json(c, &["--class=sysext"]);
    assert_eq!(
        st.iter().filter(|r| r["hierarchy"] == "/usr").count(),
        1,
        "{st:?}"
    );
    em(&["refresh", "--class=sysext"])
        .env(env.0, env.1)
        .go(c)
        .expect(EXIT_SKIPPED);
    em(&["unmerge", "--class=sysext"])
        .env(env.0, env.1)
        .go(c)
        .expect(0);
    assert!(c.mounts_at("usr").is_empty(), "{:#?}", c.mounts_at("usr"));
}

// ---- point 8: output and process hygiene ----

fn setup_control_names(c: &Ctx) {
    for name in ["bad\nname", "esc\x1b[31mred"] {
        sysext_tree(
            &c.p("var/lib/extensions").join(name),
            name,
            &[("usr/share/ctl-marker", "x\n")],
        );
    }
}

fn check_control_names(c: &Ctx) {
    let json = em(&["list", "--json=short"]).go(c);
    json.expect(0);
    let rows = serde_json::from_slice::<Value>(&json.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    let table = em(&["list"]).go(c);
    table.expect(0);
    let text = table.stdout();
    assert_eq!(
        text.lines().count(),
        rows + 1,
        "one header and one line per row, no forged rows:\n{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "a raw escape sequence reaches the terminal:\n{text:?}"
    );
    assert!(
        text.contains("bad\\nname"),
        "escaped as systemd does:\n{text}"
    );
    // A hierarchy name with a newline (the environment is as untrusted as the tree).
    mkdirs(&c.p("o\npt"));
    let hier = ("SYSTEMD_SYSEXT_HIERARCHIES", "/usr:/o\npt");
    let json = em(&["status", "--json=short", "--class=sysext"])
        .env(hier.0, hier.1)
        .go(c);
    json.expect(0);
    let rows = serde_json::from_slice::<Value>(&json.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    let table = em(&["status", "--class=sysext"]).env(hier.0, hier.1).go(c);
    table.expect(0);
    assert_eq!(
        table.stdout().lines().count(),
        rows + 1,
        "status: one header and one line per hierarchy:\n{}",
        table.stdout()
    );
    let merge = em(&["merge"]).go(c);
    merge.expect(0);
    for l in merge.stderr.lines() {
        let t = l.trim_start();
        assert!(
            ["INFO", "WARN", "ERROR", "DEBUG"]
                .iter()
                .any(|p| t.starts_with(p)),
            "a log line was forged by a name: {l:?}"
        );
        assert!(!l.contains('\x1b'), "raw escape in the log: {l:?}");
    }
    unmerge_ok(c);
}

fn setup_non_utf8_entries(c: &Ctx) {
    for name in [&b"n\xffx"[..], &b"n\xfex"[..]] {
        let dir = c.p("var/lib/extensions").join(OsStr::from_bytes(name));
        sysext_tree(&dir, "nx", &[("usr/share/nx", "x\n")]);
    }
}

fn check_non_utf8_entries(c: &Ctx) {
    let o = em(&["list", "--json=short"]).go(c);
    o.expect(0);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", o.stdout()));
    let rows: Vec<&Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] != "good-sys" && r["name"] != "good-conf")
        .collect();
    assert_eq!(rows.len(), 2, "both entries listed: {v}");
    assert_ne!(
        rows[0], rows[1],
        "a lossless encoding keeps n\\xffx and n\\xfex apart"
    );
}

fn check_stdout_full(c: &Ctx) {
    merge_ok(c);
    for args in [
        &["list"][..],
        &["status", "--json=short"],
        &["status"],
        &["check"],
    ] {
        let o = em(args).stdout_to(Path::new("/dev/full")).go(c);
        o.expect_no_panic();
        o.expect(1);
        o.expect_line("No space left on device", &["ERROR", "rror"]);
    }
    let o = em(&["list"]).go_broken_pipe(c);
    o.expect_no_panic();
    o.expect(1);
    unmerge_ok(c);
}

fn setup_raw_for_nobody(c: &Ctx) {
    squashfs_sysext(
        c,
        &c.p("var/lib/extensions/plain.raw"),
        "plain",
        &[("usr/share/plain", "plain\n")],
    );
}

fn check_failing_check(c: &Ctx) {
    let o = em(&["check"]).unprivileged().go(c);
    o.expect(1);
    o.expect_line("'plain'", &["root"]);
    assert!(
        !o.stdout().contains("No conflicts found."),
        "a failed check must not say all is well:\n{}",
        o.stdout()
    );
}

fn check_long_root(c: &Ctx) {
    // A root path whose lock name would be longer than NAME_MAX.
    let long = c
        .base
        .join("a".repeat(200))
        .join("b".repeat(100))
        .join("root");
    mkdirs(long.parent().unwrap());
    run(Command::new("cp").arg("-a").arg(&c.root).arg(&long));
    let o = em(&["merge"]).root(&long).go(c);
    o.expect(0);
    assert_eq!(
        std::fs::read_to_string(long.join("usr/share/good-sys"))
            .ok()
            .as_deref(),
        Some("good-sys\n")
    );
    em(&["refresh"]).root(&long).go(c).expect(EXIT_SKIPPED);
    em(&["unmerge"]).root(&long).go(c).expect(0);
    assert!(c.mounts_at_path(&long.join("usr")).is_empty());
}

fn check_two_roots(c: &Ctx) {
    // Two different roots whose names differ only by '/' versus '-'.
    let a = c.base.join("x-y");
    let b = c.base.join("x").join("y");
    mkdirs(&c.base.join("x"));
    for r in [&a, &b] {
        run(Command::new("cp").arg("-a").arg(&c.root).arg(r));
    }
    let hold = a.join("var/lib/extensions/hold.raw");
    squashfs_sysext(c, &hold, "hold", &[("usr/share/hold", "hold\n")]);
    let mut trap = OpenTrap::new(&hold);
    let mut run_a = em(&["merge", "--class=sysext"]).root(&a).spawn(c, "root-a");
    // Run A now holds its lock and waits for its image.
    let held = trap.next(&mut run_a.child).expect("run A opens its image");
    let mut run_b = em(&["merge", "--class=sysext"]).root(&b).spawn(c, "root-b");
    let waited = loop {
        if run_b.child.try_wait().unwrap().is_some() {
            break false;
        }
        if run_b
            .stderr_now()
            .contains("Waiting for another extmerge run")
        {
            run_b.child.kill().unwrap();
            break true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    trap.allow(held);
    drop(trap);
    let out_b = run_b.wait();
    let out_a = run_a.wait();
    let unmerged: Vec<Out> = [&a, &b]
        .iter()
        .map(|r| em(&["unmerge"]).root(r).go(c))
        .collect();
    out_a.expect(0);
    assert!(
        !waited,
        "run B on {} waited for run A on {}",
        b.display(),
        a.display()
    );
    out_b.expect(0);
    for u in &unmerged {
        u.expect(0);
    }
}

fn check_chroot(c: &Ctx) {
    let bin = env!("CARGO_BIN_EXE_extmerge");
    std::fs::copy(bin, c.p("extmerge")).unwrap();
    let ldd = Command::new("ldd").arg(bin).output().unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let to = c.root.join(lib.trim_start_matches('/'));
        mkdirs(to.parent().unwrap());
        std::fs::copy(lib, &to).unwrap();
    }
    for d in ["proc", "dev", "run", "tmp"] {
        mkdirs(&c.p(d));
    }
    run(Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(c.p("proc")));
    run(Command::new("mount")
        .arg("--rbind")
        .arg("/dev")
        .arg(c.p("dev")));
    let chrooted = |verb: &str| {
        let o = Command::new("chroot")
            .arg(&c.root)
            .args(["/extmerge", verb])
            .env_remove("EXTMERGE_LOG")
            .env_remove("JOURNAL_STREAM")
            .env("SYSTEMD_PROC_CMDLINE", "")
            .output()
            .unwrap();
        finish(format!("chroot extmerge {verb}"), o)
    };
    let merged = chrooted("merge");
    let unmerged = chrooted("unmerge");
    run(Command::new("umount").arg("-R").arg(c.p("dev")));
    run(Command::new("umount").arg(c.p("proc")));
    merged.expect_no_panic();
    match merged.code {
        Some(0) => {
            unmerged.expect(0);
        }
        Some(1) => assert!(
            merged.stderr.lines().all(|l| !l.contains("ERROR")
                || l.contains("not a mount point")
                || l.contains("chroot")),
            "the error must say that / is not a mount point:\n{}",
            merged.stderr
        ),
        _ => panic!("chroot merge: {}", merged.describe_end()),
    }
}

fn cases() -> Vec<Case> {
    vec![
        // point 1
        case(
            "p1_search_dirs_linked_outside",
            1,
            setup_search_dir_links,
            check_search_dir_links,
        ),
        case(
            "p1_images_linked_outside",
            1,
            setup_image_links,
            check_image_links,
        ),
        case(
            "p1_os_release_linked_outside",
            1,
            setup_os_release_links,
            check_os_release_links,
        ),
        case(
            "p1_config_files_linked_outside",
            1,
            setup_config_links,
            check_config_links,
        ),
        case(
            "p1_unit_mask_dir_linked_outside",
            1,
            setup_unit_mask_link,
            check_unit_mask_link,
        ),
        case(
            "p1_verity_d_linked_outside",
            1,
            setup_verity_d_links,
            check_verity_d_links,
        ),
        case(
            "p1_mutable_dir_linked_outside",
            1,
            setup_mutable_dir_link,
            check_mutable_dir_link,
        ),
        case("p1_var_linked_outside", 1, setup_var_link, check_var_link),
        case(
            "p1_hash_cache_dir_linked_outside",
            1,
            setup_cache_link,
            check_cache_link,
        ),
        case(
            "p1_hierarchy_linked_outside",
            1,
            setup_hierarchy_link,
            check_hierarchy_link,
        ),
        case(
            "p1_meta_dir_linked_outside",
            1,
            setup_meta_dir_link,
            check_meta_dir_link,
        ),
        // point 2
        case(
            "p2_extension_ships_work_dir",
            2,
            setup_ext_work_dir,
            check_ext_work_dir,
        ),
        case(
            "p2_image_ships_work_dir_then_refresh",
            2,
            setup_image_work_dir,
            check_image_work_dir,
        ),
        case(
            "p2_extension_ships_dev_and_extensions",
            2,
            setup_ext_meta_files,
            check_ext_meta_files,
        ),
        case(
            "p2_extension_ships_meta_path_as_file",
            2,
            setup_ext_meta_as_file,
            check_ext_meta_as_file,
        ),
        case(
            "p2_confext_ships_work_dir",
            2,
            setup_confext_work_dir,
            check_confext_work_dir,
        ),
        case(
            "p2_stale_confext_meta_in_flatcar_etc",
            2,
            setup_stale_confext_meta,
            check_stale_confext_meta,
        ),
        case(
            "p2_stale_confext_work_dir_in_flatcar_etc",
            2,
            setup_stale_confext_work_dir,
            check_stale_confext_work_dir,
        ),
        // point 3
        case(
            "p3_confext_ships_os_release",
            3,
            setup_confext_os_release,
            check_confext_os_release,
        ),
        case(
            "p3_sysext_os_release_dangling_link",
            3,
            setup_os_release_dangling,
            check_os_release_refused,
        ),
        case(
            "p3_sysext_os_release_link",
            3,
            setup_os_release_link,
            check_os_release_refused,
        ),
        case(
            "p3_sysext_image_os_release_dangling_link",
            3,
            setup_image_os_release_dangling,
            check_os_release_refused,
        ),
        // point 4
        case(
            "p4_sparse_100g_zero_image",
            4,
            setup_sparse_zero_image,
            check_sparse_zero_image,
        ),
        case(
            "p4_sparse_100g_padded_squashfs",
            4,
            setup_sparse_padded_squashfs,
            check_sparse_padded_squashfs,
        ),
        case(
            "p4_huge_extension_release",
            4,
            setup_huge_extension_release,
            check_huge_extension_release,
        ),
        case(
            "p4_huge_os_release",
            4,
            setup_huge_os_release,
            check_huge_os_release,
        ),
        case(
            "p4_huge_config_file",
            4,
            setup_huge_config,
            check_huge_config,
        ),
        case(
            "p4_huge_enabled_sysext_conf",
            4,
            setup_huge_enabled_sysext,
            check_huge_enabled_sysext,
        ),
        case("p4_huge_state_json", 4, nothing, check_huge_state),
        case(
            "p4_check_os_release_dev_zero",
            4,
            nothing,
            check_os_release_dev_zero,
        ),
        case(
            "p4_gpt_entry_array_too_big",
            4,
            setup_gpt_big_array,
            check_gpt_big_array,
        ),
        case(
            "p4_gpt_entry_array_beyond_the_file",
            4,
            setup_gpt_array_beyond,
            check_gpt_array_beyond,
        ),
        case(
            "p4_tree_deeper_than_path_max",
            4,
            setup_deep_tree,
            check_deep_tree,
        ),
        // point 5
        case(
            "p5_image_replaced_between_identify_and_mount",
            5,
            setup_replaced_image,
            check_replaced_image,
        ),
        case(
            "p5_directory_xattr_overlay_opaque_added",
            5,
            setup_xattr_opaque,
            check_xattr_opaque,
        ),
        case(
            "p5_directory_xattr_release_strict_removed",
            5,
            setup_xattr_strict,
            check_xattr_strict,
        ),
        case(
            "p5_directory_non_utf8_file_renamed",
            5,
            setup_non_utf8_name,
            check_non_utf8_name,
        ),
        case(
            "p5_unreadable_directory_extension_refused",
            5,
            setup_unreadable_subdir,
            check_unreadable_subdir,
        ),
        // point 6
        case(
            "p6_conflict_policy_change_refreshes",
            6,
            setup_conflicting,
            check_conflict_policy_change,
        ),
        case(
            "p6_image_policy_change_refreshes",
            6,
            setup_plain_image,
            check_image_policy_change,
        ),
        case(
            "p6_new_certificate_refreshes",
            6,
            setup_signed_untrusted,
            check_new_certificate,
        ),
        case(
            "p6_new_signature_file_refreshes",
            6,
            setup_unsigned_verity,
            check_signature_added,
        ),
        case(
            "p6_mutable_mode_change_refreshes",
            6,
            nothing,
            check_mutable_change,
        ),
        case(
            "p6_hierarchy_list_change_refreshes",
            6,
            setup_opt_content,
            check_hierarchies_change,
        ),
        case(
            "p6_mount_options_change_refreshes",
            6,
            nothing,
            check_mount_options_change,
        ),
        case(
            "p6_noexec_change_refreshes",
            6,
            nothing,
            check_noexec_change,
        ),
        case(
            "p6_confext_certificate_does_not_authorise_sysext",
            6,
            setup_confext_cert,
            check_confext_cert,
        ),
        // point 7
        case(
            "p7_more_extensions_than_overlayfs_layers",
            7,
            setup_many_layers,
            check_many_layers,
        ),
        case(
            "p7_mutable_auto_hierarchy_with_nothing_to_merge",
            7,
            nothing,
            |c| check_mutable_nothing(c, "--mutable=auto"),
        ),
        case(
            "p7_mutable_import_hierarchy_with_nothing_to_merge",
            7,
            nothing,
            |c| check_mutable_nothing(c, "--mutable=import"),
        ),
        case(
            "p7_refuse_conflicts_with_an_unjudgeable_extension",
            7,
            setup_unjudgeable,
            check_unjudgeable,
        ),
        case(
            "p7_enabled_sysext_conf_bad_lines",
            7,
            setup_enabled_sysext_bad_lines,
            check_enabled_sysext_bad_lines,
        ),
        case(
            "p7_duplicate_hierarchy_entries",
            7,
            nothing,
            check_duplicate_hierarchies,
        ),
        // point 8
        case(
            "p8_control_characters_in_names",
            8,
            setup_control_names,
            check_control_names,
        ),
        case(
            "p8_non_utf8_names_in_json",
            8,
            setup_non_utf8_entries,
            check_non_utf8_entries,
        ),
        case("p8_stdout_full_or_closed", 8, nothing, check_stdout_full),
        case(
            "p8_failing_check_is_not_all_clear",
            8,
            setup_raw_for_nobody,
            check_failing_check,
        ),
        case("p8_lock_for_a_long_root_path", 8, nothing, check_long_root),
        case(
            "p8_two_roots_never_share_a_lock",
            8,
            nothing,
            check_two_roots,
        ),
        case(
            "p8_chroot_whose_root_is_not_a_mount_point",
            8,
            nothing,
            check_chroot,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Harness.
// ---------------------------------------------------------------------------------------------

fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

fn run_case(case: &Case) -> Result<(), String> {
    let c = Ctx::new();
    let leak = &c.leak;
    (case.setup)(&c);
    let before = snapshot(&c.outside);
    let body = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.check)(&c)));
    // Whatever happened: unmerge (as root, every class), then look outside and for leaks.
    let cleanup = em(&["unmerge"]).go(&c);
    let mut problems = Vec::new();
    if let Err(e) = body {
        problems.push(format!("case: {}", panic_text(e)));
    }
    if cleanup.code != Some(0) {
        problems.push(format!(
            "clean-up unmerge: {}: {}",
            cleanup.describe_end(),
            cleanup.stderr
        ));
    }
    let diff = snapshot_diff(&before, &snapshot(&c.outside));
    if !diff.is_empty() {
        problems.push(format!(
            "touched outside the root ({}):\n  {}",
            c.outside.display(),
            diff.join("\n  ")
        ));
    }
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| leak.assert_clean())) {
        problems.push(format!("leak: {}", panic_text(e)));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n\n"))
    }
}

macro_rules! hostile {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                enter_private_mount_ns();
                let all = cases();
                let case = all
                    .iter()
                    .find(|c| c.name == stringify!($name))
                    .expect("case defined in the table");
                if let Err(e) = run_case(case) {
                    panic!("hostile case {} (issue 12 point {}):\n{e}", case.name, case.point);
                }
            }
        )*
        /// Every case has its own test, there are at least 30, and every point 1–8 has one.
        #[test]
        fn every_case_has_a_test_and_every_point_a_case() {
            let tests = [$(stringify!($name)),*];
            let all = cases();
            assert!(all.len() >= 30, "issue 12 asks for at least 30 cases");
            for c in &all {
                assert!(tests.contains(&c.name), "case {} has no test", c.name);
            }
            for t in tests {
                assert!(all.iter().any(|c| c.name == t), "test {t} has no case");
            }
            for p in 1..=8 {
                assert!(all.iter().any(|c| c.point == p), "no case for point {p}");
            }
            let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), all.len(), "duplicate case names");
        }
    };
}

hostile!(
    p1_search_dirs_linked_outside,
    p1_images_linked_outside,
    p1_os_release_linked_outside,
    p1_config_files_linked_outside,
    p1_unit_mask_dir_linked_outside,
    p1_verity_d_linked_outside,
    p1_mutable_dir_linked_outside,
    p1_var_linked_outside,
    p1_hash_cache_dir_linked_outside,
    p1_hierarchy_linked_outside,
    p1_meta_dir_linked_outside,
    p2_extension_ships_work_dir,
    p2_image_ships_work_dir_then_refresh,
    p2_extension_ships_dev_and_extensions,
    p2_extension_ships_meta_path_as_file,
    p2_confext_ships_work_dir,
    p2_stale_confext_meta_in_flatcar_etc,
    p2_stale_confext_work_dir_in_flatcar_etc,
    p3_confext_ships_os_release,
    p3_sysext_os_release_dangling_link,
    p3_sysext_os_release_link,
    p3_sysext_image_os_release_dangling_link,
    p4_sparse_100g_zero_image,
    p4_sparse_100g_padded_squashfs,
    p4_huge_extension_release,
    p4_huge_os_release,
    p4_huge_config_file,
    p4_huge_enabled_sysext_conf,
    p4_huge_state_json,
    p4_check_os_release_dev_zero,
    p4_gpt_entry_array_too_big,
    p4_gpt_entry_array_beyond_the_file,
    p4_tree_deeper_than_path_max,
    p5_image_replaced_between_identify_and_mount,
    p5_directory_xattr_overlay_opaque_added,
    p5_directory_xattr_release_strict_removed,
    p5_directory_non_utf8_file_renamed,
    p5_unreadable_directory_extension_refused,
    p6_conflict_policy_change_refreshes,
    p6_image_policy_change_refreshes,
    p6_new_certificate_refreshes,
    p6_new_signature_file_refreshes,
    p6_mutable_mode_change_refreshes,
    p6_hierarchy_list_change_refreshes,
    p6_mount_options_change_refreshes,
    p6_noexec_change_refreshes,
    p6_confext_certificate_does_not_authorise_sysext,
    p7_more_extensions_than_overlayfs_layers,
    p7_mutable_auto_hierarchy_with_nothing_to_merge,
    p7_mutable_import_hierarchy_with_nothing_to_merge,
    p7_refuse_conflicts_with_an_unjudgeable_extension,
    p7_enabled_sysext_conf_bad_lines,
    p7_duplicate_hierarchy_entries,
    p8_control_characters_in_names,
    p8_non_utf8_names_in_json,
    p8_stdout_full_or_closed,
    p8_failing_check_is_not_all_clear,
    p8_lock_for_a_long_root_path,
    p8_two_roots_never_share_a_lock,
    p8_chroot_whose_root_is_not_a_mount_point,
);
