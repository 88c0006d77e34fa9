//! The service manager (PID 1) after a merge, refresh or unmerge on the running system, as
//! systemd 262's sysext does it: a daemon-reload when a merged extension asks for one, then the
//! restarts and reload-or-restarts of the units the extensions name ([`crate::decide::reload`]).
//!
//! Nothing happens with `--no-reload` or `--root` ([`ClassSettings::no_reload`]). `merge` and
//! `refresh` collect after placing the new merge (so only what is merged now counts; a skipped
//! refresh does nothing); `unmerge` collects before unmounting and acts afterwards, when the
//! units shipped in the extensions have vanished (they are then stopped).
//!
//! * [`connect`] reaches PID 1: its private socket, else the system bus, as `systemctl` does
//!   as root;
//! * [`daemon_reload`] calls `Manager.Reload`;
//! * [`units`] calls `RestartUnit` / `ReloadOrRestartUnit`, and `StopUnit` for a unit that is
//!   gone; and `StartUnit` for the initrd's OEM mount ([`crate::initrd::oem_mount`]);
//! * [`jobs`] waits for a job through `JobRemoved`.

pub mod connect;
pub mod daemon_reload;
pub mod jobs;
pub mod units;

use crate::decide::reload::{self, ManagerActions};
use crate::gather::merged::merged_releases;
use crate::kernel::root::Root;
use crate::settings::ClassSettings;
use anyhow::{anyhow, Result};

/// What the extensions merged on the class's hierarchies now ask of the service manager;
/// nothing with `--no-reload` or `--root`. Logs systemd's warnings about ignored entries.
pub fn collect(root: &Root, s: &ClassSettings) -> Result<ManagerActions> {
    if s.no_reload {
        return Ok(ManagerActions::default());
    }
    let releases = merged_releases(root, s.class, &s.hierarchies);
    let collected = reload::collect(releases.iter().map(|(n, d)| (n.as_str(), d)))
        .map_err(|e| anyhow!("{e}; not asking the service manager for anything"))?;
    for w in &collected.warnings {
        tracing::warn!("{w}");
    }
    Ok(collected.actions)
}

/// Ask PID 1 for `actions`: the reload first (a failure is an error and nothing else is
/// asked), then each unit, waiting for its job. A unit that cannot be restarted is a warning,
/// as in systemd.
pub fn apply(actions: &ManagerActions) -> Result<()> {
    let hint = |e: anyhow::Error| anyhow!("{e:#} (--no-reload leaves the service manager alone)");
    if actions.reload {
        daemon_reload::reload().map_err(hint)?;
    }
    if !actions.restart.is_empty() || !actions.reload_or_restart.is_empty() {
        units::restart_units(&actions.restart, &actions.reload_or_restart).map_err(hint)?;
    }
    Ok(())
}
