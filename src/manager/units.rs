//! Restarting the units the extensions name, as systemd 262's `restart_units()` and
//! `dispatch_unit_method()`: `RestartUnit(name, "replace")` for each unit to restart, then
//! `ReloadOrRestartUnit(name, "replace")` for each unit to reload or restart, each followed by a
//! wait for its job. When the manager answers that the unit does not exist or failed to load
//! (its unit file went away with the extension), the unit is stopped instead. A unit that
//! cannot be acted on, or whose job fails, is a warning; failing to reach PID 1 is an error.

use super::connect::{connect, Manager, CALL_TIMEOUT};
use super::jobs::{job_failure, wait, watch};
use anyhow::{anyhow, Context, Result};
use rustbus::wire::ObjectPath;

const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
const LOAD_FAILED: &str = "org.freedesktop.systemd1.LoadFailed";

/// Queue `method` for `unit`, or `StopUnit` when the unit is gone; the job and the method that
/// queued it, or `None` (after logging why) when there is nothing to wait for.
fn queue(
    manager: &mut Manager,
    method: &'static str,
    unit: &str,
) -> Result<Option<(String, &'static str)>> {
    let args =
        |m: &mut rustbus::message_builder::MarshalledMessage| m.body.push_param2(unit, "replace");
    let (reply, method) = match manager.call(method, args) {
        Ok(reply) => (reply, method),
        Err(e) if matches!(e.name(), Some(NO_SUCH_UNIT) | Some(LOAD_FAILED)) => {
            match manager.call("StopUnit", args) {
                Ok(reply) => (reply, "StopUnit"),
                Err(e) if e.name() == Some(NO_SUCH_UNIT) => {
                    tracing::debug!("Unit '{unit}' is already gone, nothing to stop.");
                    return Ok(None);
                }
                Err(e) => {
                    tracing::warn!("Failed to StopUnit unit '{unit}': {e}");
                    return Ok(None);
                }
            }
        }
        Err(e) => {
            tracing::warn!("Failed to {method} unit '{unit}': {e}");
            return Ok(None);
        }
    };
    let job = reply
        .body
        .parser()
        .get::<ObjectPath<String>>()
        .map_err(|e| {
            anyhow!("Failed to parse bus message: {e} (the reply to {method} of '{unit}')")
        })?;
    tracing::debug!("{method} of '{unit}' queued job {}.", job.as_ref());
    Ok(Some((job.as_ref().to_owned(), method)))
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
fn dispatch(manager: &mut Manager, units: &[String], method: &'static str) -> Result<()> {
    for unit in units {
        let Some((job, method)) = queue(manager, method, unit)? else {
            continue;
        };
        match wait(manager, &job) {
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
pub fn restart_units(restart: &[String], reload_or_restart: &[String]) -> Result<()> {
    let mut manager = connect("unit restarts", CALL_TIMEOUT)?;
    watch(&mut manager)
        .with_context(|| format!("Failed to set up job watcher over {}", manager.via))?;
    dispatch(&mut manager, restart, "RestartUnit")?;
    dispatch(&mut manager, reload_or_restart, "ReloadOrRestartUnit")
}
