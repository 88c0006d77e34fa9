//! `systemctl daemon-reload`: `Manager.Reload`, synchronous, with systemd's long timeout
//! (`bus_service_manager_reload()`): the call returns when the manager has reloaded.

use super::connect::{connect, Manager};
use anyhow::{anyhow, Result};
use std::time::Duration;

/// `DAEMON_RELOAD_TIMEOUT_SEC`: reloading can take long on a big system.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(6 * 60);

/// Reload the service manager over `manager`.
pub fn reload_over(manager: &mut Manager) -> Result<()> {
    manager.call("Reload", |_| Ok(())).map_err(|e| {
        anyhow!(
            "Failed to reload service manager (over {}): {e}",
            manager.via
        )
    })?;
    tracing::info!("Reloaded the service manager (over {}).", manager.via);
    Ok(())
}

/// Connect to PID 1 and reload it.
pub fn reload() -> Result<()> {
    let mut manager = connect("a daemon-reload", RELOAD_TIMEOUT)?;
    reload_over(&mut manager)
}
