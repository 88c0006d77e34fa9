//! Serialise concurrent runs: one exclusive `flock` on a file in /run, waited for with a timeout.

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Directory of the lock files (in /run, so the initrd's lock is gone after switch-root).
pub const LOCK_DIR: &str = "/run/extmerge";

/// Lock file for one (canonical) root: runs on the same root are serialised, runs on different
/// roots are not. The name is the root's last component (for humans, at most 32 safe bytes)
/// and a digest of the whole path (so two roots never share a lock, whatever their length).
pub fn lock_path_for(root: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    use std::os::unix::ffi::OsStrExt;
    if root == Path::new("/") {
        return Path::new(LOCK_DIR).join("root.lock");
    }
    let tail: String = root
        .file_name()
        .map(|n| n.as_bytes())
        .unwrap_or_default()
        .iter()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        .take(32)
        .map(|b| *b as char)
        .collect();
    let digest = Sha256::digest(root.as_os_str().as_bytes());
    let id = crate::ondisk::bytes::hex(&digest[..8]);
    Path::new(LOCK_DIR).join(format!("{}.{id}.lock", tail.trim_start_matches('.')))
}

/// How long a second run waits for the first before giving up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Held lock; released on drop (closing the file drops the flock).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    /// Path of the lock file.
    pub path: PathBuf,
}

/// Take the lock at `path`, waiting up to `timeout` with one log line if another run holds it.
pub fn acquire(path: &Path, timeout: Duration) -> Result<RunLock> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating lock directory {}", dir.display()))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    let start = Instant::now();
    let mut told = false;
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                return Ok(RunLock {
                    _file: file,
                    path: path.to_path_buf(),
                })
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                if start.elapsed() >= timeout {
                    bail!(
                        "another extmerge run still holds {} after {} s; refusing to run concurrently",
                        path.display(),
                        timeout.as_secs()
                    );
                }
                if !told {
                    tracing::info!(
                        "Waiting for another extmerge run to finish (lock {}).",
                        path.display()
                    );
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_path_is_per_root() {
        assert_eq!(
            lock_path_for(Path::new("/")),
            PathBuf::from("/run/extmerge/root.lock")
        );
        let sysroot = lock_path_for(Path::new("/sysroot"));
        let name = sysroot.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("sysroot.") && name.ends_with(".lock"),
            "{name}"
        );
        assert_eq!(name.len(), "sysroot.".len() + 16 + ".lock".len());
        // Paths that the old '/'→'-' escaping confused, and very long ones, stay apart and short.
        assert_ne!(
            lock_path_for(Path::new("/a-b")),
            lock_path_for(Path::new("/a/b"))
        );
        assert_ne!(
            lock_path_for(Path::new("/x/a/b")),
            lock_path_for(Path::new("/y/a/b"))
        );
        let long = PathBuf::from(format!("/{}", "d/".repeat(3000)));
        assert!(lock_path_for(&long).file_name().unwrap().len() < 64);
        let weird = lock_path_for(Path::new("/tmp/a\nb ../..."));
        assert!(!weird.file_name().unwrap().to_str().unwrap().contains('\n'));
    }

    #[test]
    fn second_lock_times_out_with_a_clear_message_then_succeeds_after_release() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sub/lock");
        let first = acquire(&p, Duration::from_secs(1)).unwrap();
        let err = acquire(&p, Duration::from_millis(120)).unwrap_err();
        assert!(err.to_string().contains("another extmerge run"), "{err}");
        drop(first);
        acquire(&p, Duration::from_millis(120)).unwrap();
    }
}
