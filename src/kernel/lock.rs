//! Serialise concurrent runs: one exclusive `flock` on a file in /run, waited for with a timeout.

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Directory of the lock files (in /run, so the initrd's lock is gone after switch-root).
pub const LOCK_DIR: &str = "/run/extmerge";

/// Lock file for one root: runs on the same root are serialised, runs on different roots are not.
pub fn lock_path_for(root: &Path) -> PathBuf {
    let escaped: String = root
        .to_string_lossy()
        .chars()
        .map(|c| if c == '/' { '-' } else { c })
        .collect();
    let name = if escaped == "-" {
        "root".to_string()
    } else {
        escaped.trim_start_matches('-').to_string()
    };
    Path::new(LOCK_DIR).join(format!("{name}.lock"))
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
        assert_eq!(
            lock_path_for(Path::new("/sysroot")),
            PathBuf::from("/run/extmerge/sysroot.lock")
        );
        assert_ne!(
            lock_path_for(Path::new("/a/b")),
            lock_path_for(Path::new("/a"))
        );
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
