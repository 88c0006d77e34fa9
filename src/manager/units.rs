//! Restarting the units the extensions name, as systemd 262's `restart_units()` and
//! `dispatch_unit_method()`: `RestartUnit(name, "replace")` for each unit to restart, then
//! `ReloadOrRestartUnit(name, "replace")` for each unit to reload or restart, each followed by a
//! wait for its job. When the manager answers that the unit does not exist or failed to load
//! (its unit file went away with the extension), the unit is stopped instead. A unit that
//! cannot be acted on, or whose job fails, is a warning; failing to reach PID 1 is an error.

use super::connect::{connect, Manager, CALL_TIMEOUT};
use super::jobs::{job_failure, JobWatcher};
use anyhow::{anyhow, Context, Result};
use zbus::OwnedObjectPath;

const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
const LOAD_FAILED: &str = "org.freedesktop.systemd1.LoadFailed";

/// The D-Bus error name of a method error reply outside `org.freedesktop.DBus.Error` (zbus
/// reports those as `Error::FDO`; systemd's own errors are method errors).
fn error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

/// systemd's `bus_error_message()`: the error's message, else what it is.
pub fn bus_error_message(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, desc, _) => desc.clone().unwrap_or_else(|| name.to_string()),
        other => other.to_string(),
    }
}

/// Queue `method` for `unit`, or `StopUnit` when the unit is gone; the job and the method that
/// queued it, or `None` (after logging why) when there is nothing to wait for.
async fn queue(
    manager: &Manager,
    method: &'static str,
    unit: &str,
) -> Result<Option<(OwnedObjectPath, &'static str)>> {
    let (reply, method) = match manager.call(method, &(unit, "replace")).await {
        Ok(reply) => (reply, method),
        Err(e) if matches!(error_name(&e), Some(NO_SUCH_UNIT) | Some(LOAD_FAILED)) => {
            match manager.call("StopUnit", &(unit, "replace")).await {
                Ok(reply) => (reply, "StopUnit"),
                Err(e) if error_name(&e) == Some(NO_SUCH_UNIT) => {
                    tracing::debug!("Unit '{unit}' is already gone, nothing to stop.");
                    return Ok(None);
                }
                Err(e) => {
                    tracing::warn!(
                        "Failed to StopUnit unit '{unit}': {}",
                        bus_error_message(&e)
                    );
                    return Ok(None);
                }
            }
        }
        Err(e) => {
            tracing::warn!(
                "Failed to {method} unit '{unit}': {}",
                bus_error_message(&e)
            );
            return Ok(None);
        }
    };
    let job: OwnedObjectPath = reply.body().deserialize().map_err(|e| {
        anyhow!("Failed to parse bus message: {e} (the reply to {method} of '{unit}')")
    })?;
    Ok(Some((job, method)))
}

/// What was done, for the log.
fn done(method: &str, unit: &str, result: &str) -> String {
    let what = match method {
        "RestartUnit" => format!("Restarted unit '{unit}'"),
        "ReloadOrRestartUnit" => format!("Reloaded or restarted unit '{unit}'"),
        _ => format!("Stopped unit '{unit}', whose unit file is gone"),
    };
    if result == "done" {
        format!("{what}.")
    } else {
        format!("{what} (job {result}).")
    }
}

/// `method` for each of `units`, in order, each waited for.
async fn dispatch(
    manager: &Manager,
    watcher: &mut JobWatcher,
    units: &[String],
    method: &'static str,
) -> Result<()> {
    for unit in units {
        let Some((job, method)) = queue(manager, method, unit).await? else {
            continue;
        };
        match watcher.wait(&job).await {
            Ok(result) => match job_failure(unit, &result) {
                None => tracing::info!("{}", done(method, unit, &result)),
                Some(msg) => {
                    tracing::error!("{msg}");
                    tracing::warn!(
                        "Failed to wait for {method} job of unit '{unit}', ignoring: the job \
                         ended with result '{result}'"
                    );
                }
            },
            Err(e) => {
                tracing::warn!("Failed to wait for {method} job of unit '{unit}', ignoring: {e:#}")
            }
        }
    }
    Ok(())
}

/// Restart `restart`, then reload-or-restart `reload_or_restart`, over a connection of their
/// own (as systemd).
pub async fn restart_units(restart: &[String], reload_or_restart: &[String]) -> Result<()> {
    let manager = connect("unit restarts", CALL_TIMEOUT).await?;
    let mut watcher = JobWatcher::new(&manager)
        .await
        .with_context(|| format!("Failed to set up job watcher over {}", manager.via))?;
    dispatch(&manager, &mut watcher, restart, "RestartUnit").await?;
    dispatch(
        &manager,
        &mut watcher,
        reload_or_restart,
        "ReloadOrRestartUnit",
    )
    .await
}
