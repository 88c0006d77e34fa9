//! Helpers shared by the integration tests (root, host kernel, private mount namespaces).
#![allow(dead_code)]

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::mount::{mount_change, MountPropagationFlags};

mod fixture;
#[allow(unused_imports)]
pub use fixture::*;

/// How long autoclear may take to release a loop device after its last close.
pub const LOOP_RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Panic unless running as root: these tests must run, never silently skip (CI is root).
pub fn require_root() {
    if !rustix::process::geteuid().is_root() {
        panic!("this test needs root (mount namespaces, loop devices, mounts); run it as root");
    }
}

// rustix only exposes unshare() behind its `thread` feature, which the crate does not
// enable; glibc's wrapper is linked into every test binary anyway.
extern "C" {
    fn unshare(flags: c_int) -> c_int;
}
const CLONE_NEWNS: c_int = 0x0002_0000;

/// Move the calling thread into a new mount namespace in which "/" is recursively
/// private, so nothing mounted by the test propagates to the host.
pub fn enter_private_mount_ns() {
    require_root();
    // SAFETY: unshare(CLONE_NEWNS) only changes this thread's namespace (and fs_struct),
    // it touches no memory.
    if unsafe { unshare(CLONE_NEWNS) } != 0 {
        panic!("unshare(CLONE_NEWNS): {}", std::io::Error::last_os_error());
    }
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .unwrap_or_else(|e| panic!("making / recursively private: {e}"));
}

/// The JSON array a command printed (`status --json`, `list --json`); it must have succeeded.
pub fn json_rows(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout) {
        Ok(serde_json::Value::Array(rows)) => rows,
        other => panic!(
            "not a JSON array ({other:?}): {}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}

/// Run a command, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (is the tool installed?)"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Create files (parents included) below `root`; paths are relative.
///
/// An absolute path would make `Path::join` discard `root` and write onto the host: refuse it.
pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (rel, contents) in files {
        assert!(
            !rel.starts_with('/') && !rel.split('/').any(|c| c == ".."),
            "write_files: '{rel}' must be relative and stay below {}",
            root.display()
        );
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("mkdir -p {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// Build a squashfs image of `src_dir` at `out`.
pub fn mkfs_squashfs(src_dir: &Path, out: &Path) {
    run(Command::new("mksquashfs").arg(src_dir).arg(out).args([
        "-noappend",
        "-all-root",
        "-quiet",
        "-no-progress",
    ]));
}

/// `len` pseudo-random bytes (xorshift): incompressible enough that squashfs and erofs keep
/// the size, no RNG crate needed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Build an erofs image of `src_dir` at `out`.
pub fn mkfs_erofs(src_dir: &Path, out: &Path) {
    run(Command::new("mkfs.erofs")
        .args(["--quiet", "--all-root"])
        .arg(out)
        .arg(src_dir));
}

/// Build an ext4 image of `size_mb` MiB populated from `src_dir` at `out`.
pub fn mkfs_ext4(src_dir: &Path, out: &Path, size_mb: u32) {
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
        .arg(src_dir)
        .arg(out)
        .arg(format!("{size_mb}M")));
}

/// Build a (sparse, shrunk) btrfs image populated from `src_dir` at `out`.
pub fn mkfs_btrfs(src_dir: &Path, out: &Path) {
    // mkfs.btrfs stats the target before creating it; an existing file avoids a
    // spurious "zoned: unable to stat" error message.
    std::fs::File::create(out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
    run(Command::new("mkfs.btrfs")
        .args(["-q", "-f", "--shrink", "--rootdir"])
        .arg(src_dir)
        .arg(out));
}

/// Build an xfs image of `src_dir` at `out`: mkfs.xfs cannot copy a directory in, so the
/// image is loop-mounted (in the caller's namespace, which must be private) and filled.
pub fn mkfs_xfs(src_dir: &Path, out: &Path) {
    // 300 MiB is the smallest xfs that current mkfs.xfs makes; the file stays sparse.
    let f =
        std::fs::File::create(out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
    f.set_len(300 << 20)
        .unwrap_or_else(|e| panic!("sizing {}: {e}", out.display()));
    run(Command::new("mkfs.xfs").args(["-q", "-f"]).arg(out));
    let mnt = out.with_extension("mnt");
    std::fs::create_dir_all(&mnt).unwrap_or_else(|e| panic!("mkdir {}: {e}", mnt.display()));
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(out)
        .arg(&mnt));
    let copied = Command::new("cp")
        .arg("-a")
        .arg(src_dir.join("."))
        .arg(&mnt)
        .status();
    run(Command::new("umount").arg(&mnt));
    let _ = std::fs::remove_dir(&mnt);
    assert!(
        copied.is_ok_and(|s| s.success()),
        "copying {} into the xfs image failed",
        src_dir.display()
    );
}

/// Mount table of the calling thread's namespace.
///
/// `/proc/thread-self`, not `/proc/self`: under `cargo test` tests are threads, and
/// only the unsharing thread is in the private namespace.
pub fn mountinfo() -> String {
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_else(|e| panic!("reading /proc/thread-self/mountinfo: {e}"))
}

/// Lines of this thread's mountinfo containing `s`.
pub fn mountinfo_lines_containing(s: &str) -> Vec<String> {
    mountinfo()
        .lines()
        .filter(|l| l.contains(s))
        .map(str::to_owned)
        .collect()
}

/// Loop devices whose backing file is below `dir` (from sysfs), as (device, backing).
pub fn loops_below(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    extmerge::kernel::loopdev::loops_backed_by(dir)
}

/// Poll `cond` every 10 ms until it holds or `timeout` passes; returns its last value.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that nothing (mount or loop device) refers to a test directory any more.
pub struct LeakCheck {
    dir: PathBuf,
    /// Mount IDs the test set up itself and removes itself (a layout under test).
    fixture_mounts: Vec<String>,
}

impl LeakCheck {
    /// Watch `dir` (resolved, since mountinfo and sysfs show resolved paths).
    pub fn new(dir: &Path) -> LeakCheck {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        LeakCheck {
            dir,
            fixture_mounts: Vec::new(),
        }
    }

    /// The mounts below the directory now are the test's own layout (e.g. a read-only bind),
    /// not leaks; the private namespace removes them when the test ends.
    pub fn with_fixture_mounts(mut self) -> LeakCheck {
        let dir = self.dir.to_string_lossy().into_owned();
        self.fixture_mounts = mountinfo_lines_containing(&dir)
            .iter()
            .filter_map(|l| l.split(' ').next().map(str::to_owned))
            .collect();
        self
    }

    /// Panic if a mount or a loop device still refers to the directory. Loop devices
    /// get a bounded grace period: autoclear runs after the last close, asynchronously.
    pub fn assert_clean(&self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let mut mounts = mountinfo_lines_containing(&dir);
        mounts.retain(|l| {
            l.split(' ')
                .next()
                .is_none_or(|id| !self.fixture_mounts.iter().any(|f| f == id))
        });
        assert!(
            mounts.is_empty(),
            "mounts still refer to {dir}: {mounts:#?}"
        );
        let released = wait_until(LOOP_RELEASE_TIMEOUT, || loops_below(&self.dir).is_empty());
        assert!(
            released,
            "loop devices still backed by files below {dir} after {LOOP_RELEASE_TIMEOUT:?}: {:#?}",
            loops_below(&self.dir)
        );
    }
}

/// A writable loop device from `losetup` (the crate's own loop devices are read-only),
/// detached on drop even when the test fails.
pub struct WritableLoop {
    /// The loop device node.
    pub dev: PathBuf,
}

impl WritableLoop {
    /// `losetup --find --show IMAGE`, panicking with its stderr on failure.
    pub fn attach(image: &Path) -> WritableLoop {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(image)
            .output()
            .unwrap_or_else(|e| panic!("running losetup: {e}"));
        assert!(
            out.status.success(),
            "losetup {}: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        WritableLoop { dev }
    }

    /// A block device node for this loop device at `node` (an image found inside a root).
    pub fn node_at(&self, node: &Path) {
        let rdev = rustix::fs::stat(&self.dev)
            .unwrap_or_else(|e| panic!("stat {}: {e}", self.dev.display()))
            .st_rdev;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            node,
            rustix::fs::FileType::BlockDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            rdev,
        )
        .unwrap_or_else(|e| panic!("mknod {}: {e}", node.display()));
    }
}

/// Mount a fresh, empty 128 MiB btrfs (image file `img`) on `at`, loop-backed (the caller's
/// namespace must be private; unmounting releases the loop device).
pub fn mount_fresh_btrfs(img: &Path, at: &Path) {
    std::fs::File::create(img)
        .and_then(|f| f.set_len(128 << 20))
        .unwrap_or_else(|e| panic!("creating {}: {e}", img.display()));
    run(Command::new("mkfs.btrfs").args(["-q", "-f"]).arg(img));
    run(Command::new("mount").args(["-o", "loop"]).arg(img).arg(at));
}

impl Drop for WritableLoop {
    fn drop(&mut self) {
        // Still mounted (a failed test): losetup -d then only sets autoclear, and the
        // namespace going away releases it; the LeakCheck would have reported it.
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Every entry below `dir`, sorted: path, then `dir`, `-> TARGET` (links are never followed) or
/// the bytes of a file; a test compares two of these to show a tree outside the root untouched.
pub fn tree_snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap_or_else(|e| panic!("{e}")).path();
            let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{e}"));
            let what = if m.file_type().is_symlink() {
                format!("-> {:?}", std::fs::read_link(&p).ok())
            } else if m.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                format!("{:?}", std::fs::read(&p).ok())
            };
            out.push((p, what));
        }
    }
    out.sort();
    out
}
