//! What a merge leaves behind for the next run: the state record read back from a merged
//! hierarchy, and a copy for humans and tools next to the run lock.

use crate::decide::state::{StateFile, STATE_FILE};
use crate::failpoint;
use crate::kernel::lock;
use crate::kernel::root::Root;
use crate::limits;
use crate::meta::Merged;
use crate::settings::ClassSettings;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The state record of the merge `m`: `Ok(None)` when there is none (systemd's merge, or an
/// older extmerge), `Err` naming the file when it is there but unreadable or malformed.
pub fn read_state(m: &Merged, s: &ClassSettings) -> Result<Option<StateFile>> {
    let fd = m
        .top
        .fd
        .try_clone()
        .with_context(|| format!("duplicating the fd of {}", m.shown.display()))?;
    let tree = Root::from_fd(fd, m.shown.clone())?;
    let rel = Path::new(s.class.meta_dir_name()).join(STATE_FILE);
    let Some(bytes) = tree.read_optional(&rel, limits::STATE_FILE)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("parsing {}", tree.show(&rel).display()))
}

/// Where the copy of a class's state goes (host `/run`, next to the lock).
pub fn run_state_path(s: &ClassSettings) -> PathBuf {
    lock::lock_path_for(&s.root).with_extension(format!("{}.state.json", s.class))
}

/// Copy of the state for humans and tools; a failure is a warning (the record in the meta
/// dir is what counts). With nothing merged there is no copy.
pub fn write_run_state(s: &ClassSettings, sf: &StateFile) {
    if sf.merged.is_empty() {
        remove_run_state(s);
        return;
    }
    let p = run_state_path(s);
    let write = || -> Result<()> {
        failpoint::hit("before-write-run-state")?;
        let bytes = serde_json::to_vec_pretty(sf)?;
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("renaming {}", tmp.display()))?;
        failpoint::hit("after-write-run-state")
    };
    if let Err(e) = write() {
        tracing::warn!("Could not write {}: {e:#}", p.display());
    }
}

/// Drop the copy of a class's state once nothing of it is merged, so that roots that come and
/// go (chroots, test trees) leave no file behind in `/run`; a failure is a warning. The lock
/// file stays: unlinking a lock another run may be waiting on would let two runs in at once.
pub fn remove_run_state(s: &ClassSettings) {
    let p = run_state_path(s);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("Could not remove {}: {e}", p.display()),
    }
}
