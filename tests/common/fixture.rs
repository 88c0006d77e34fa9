//! The one root fixture, extension builders and binary invocation every integration test uses.

use super::{enter_private_mount_ns, mountinfo, write_files, LeakCheck};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// os-release of the test roots' base OS.
pub const DEBIAN: &str = "ID=debian\nVERSION_ID=13\n";

/// extmerge itself, logging at debug level to stderr (never to the journal).
pub fn extmerge_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_extmerge"));
    cmd.env("EXTMERGE_LOG", "debug")
        .env_remove("JOURNAL_STREAM")
        .env_remove("EXTMERGE_FAILPOINT")
        .env_remove("EXTMERGE_FAILPOINT_TRACE");
    cmd
}

/// A directory sysext at `dir`: its extension-release (`release`) and `files`.
pub fn sysext_dir(dir: &Path, name: &str, release: &str, files: &[(&str, &str)]) {
    let rel = format!("usr/lib/extension-release.d/extension-release.{name}");
    let mut all: Vec<(&str, &str)> = vec![(rel.as_str(), release)];
    all.extend_from_slice(files);
    write_files(dir, &all);
}

/// A directory confext at `dir`: its extension-release (`release`) and `files`.
pub fn confext_dir(dir: &Path, name: &str, release: &str, files: &[(&str, &str)]) {
    let rel = format!("etc/extension-release.d/extension-release.{name}");
    let mut all: Vec<(&str, &str)> = vec![(rel.as_str(), release)];
    all.extend_from_slice(files);
    write_files(dir, &all);
}

/// A temporary tree in a private mount namespace: `base` (canonical, the leak check's scope)
/// holds `root` (the `--root`) and scratch space next to it.
pub struct TestRoot {
    _t: tempfile::TempDir,
    /// The canonical temporary directory.
    pub base: PathBuf,
    /// The root passed with `--root`.
    pub path: PathBuf,
    /// Nothing may stay mounted or attached below `base`.
    pub leak: LeakCheck,
}

impl TestRoot {
    /// Enter a private mount namespace and make a root holding `host_files` (its base OS).
    pub fn new(host_files: &[(&str, &str)]) -> TestRoot {
        enter_private_mount_ns();
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("creating a temporary dir: {e}"));
        let base = std::fs::canonicalize(t.path())
            .unwrap_or_else(|e| panic!("resolving {}: {e}", t.path().display()));
        let path = base.join("root");
        write_files(&path, host_files);
        let leak = LeakCheck::new(&base);
        TestRoot {
            _t: t,
            base,
            path,
            leak,
        }
    }

    /// A path below the root.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// A scratch path next to the root (image sources, things outside the root).
    pub fn scratch(&self, rel: &str) -> PathBuf {
        self.base.join(rel)
    }

    /// A file below the root, if it can be read.
    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.p(rel)).ok()
    }

    /// Run extmerge on this root (`--root` appended).
    pub fn run(&self, args: &[&str]) -> Output {
        extmerge_command()
            .args(args)
            .arg(format!("--root={}", self.path.display()))
            .output()
            .unwrap_or_else(|e| panic!("running extmerge: {e}"))
    }

    /// Run extmerge on this root; it must succeed. Returns its stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "extmerge {args:?} failed: {stderr}");
        stderr
    }

    /// The mountinfo lines of mounts exactly at `rel` below the root, bottom first.
    pub fn mounts_at(&self, rel: &str) -> Vec<String> {
        let target = self.p(rel).to_string_lossy().into_owned();
        mountinfo()
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(target.as_str()))
            .map(str::to_string)
            .collect()
    }

    /// The mountinfo line of the topmost mount at `rel`, if any.
    pub fn mount_line(&self, rel: &str) -> Option<String> {
        self.mounts_at(rel).pop()
    }

    /// Unmerge everything and check nothing is left mounted or attached.
    pub fn finish(self) {
        self.ok(&["unmerge"]);
        self.leak.assert_clean();
    }
}
