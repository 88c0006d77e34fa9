//! Restarting the units the extensions name, as systemd 262's `restart_units()` and
//! `dispatch_unit_method()`: `RestartUnit(name, "replace")` for each unit to restart, then
//! `ReloadOrRestartUnit(name, "replace")` for each unit to reload or restart, each followed by a
//! wait for its job. When the manager answers that the unit does not exist or failed to load
//! (its unit file went away with the extension), the unit is stopped instead. A unit that
//! cannot be acted on, or whose job fails, is a warning; failing to reach PID 1 is an error.

use super::connect::{connect, Manager, CALL_TIMEOUT};
use super::jobs::{job_failure, wait, wait_within, watch};
use anyhow::{anyhow, Context, Result};
use rustbus::wire::ObjectPath;
use std::time::Duration;

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
    Ok(Some((job_of(&reply, method, unit)?, method)))
}

/// The job a `*Unit` method queued: the object path its reply carries.
fn job_of(
    reply: &rustbus::message_builder::MarshalledMessage,
    method: &str,
    unit: &str,
) -> Result<String> {
    let job = reply
        .body
        .parser()
        .get::<ObjectPath<String>>()
        .map_err(|e| {
            anyhow!("Failed to parse bus message: {e} (the reply to {method} of '{unit}')")
        })?;
    tracing::debug!("{method} of '{unit}' queued job {}.", job.as_ref());
    Ok(job.as_ref().to_owned())
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

/// How `systemctl start UNIT` ended, seen over the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// PID 1 could not be reached; why.
    NoManager(String),
    /// `StartUnit` was refused: the D-Bus error's name (none when the call got no answer) and
    /// systemd's message for it.
    Refused {
        /// The error name, e.g. `org.freedesktop.systemd1.NoSuchUnit`.
        name: Option<String>,
        /// The message, e.g. "Unit x.mount not found.".
        message: String,
    },
    /// The job was removed with this result (`done`, `failed`, `timeout`, …).
    Removed(String),
    /// The job was not removed within the limit: it is still queued in PID 1.
    Waiting(Duration),
    /// The job was queued but waiting for its end failed; why.
    Lost(String),
}

/// `systemctl start UNIT` (job mode `replace`, as systemctl's default): `StartUnit`, then the
/// job's `JobRemoved`, waited for at most `limit`.
pub fn start_unit(unit: &str, limit: Duration) -> Started {
    let mut manager = match connect(&format!("a start of {unit}"), CALL_TIMEOUT) {
        Ok(m) => m,
        Err(e) => return Started::NoManager(format!("{e:#}")),
    };
    // Before the call: the job can end before its reply is read.
    if let Err(e) = watch(&mut manager) {
        return Started::Lost(format!(
            "setting up the job watcher over {}: {e:#}",
            manager.via
        ));
    }
    let reply = match manager.call("StartUnit", |m| m.body.push_param2(unit, "replace")) {
        Ok(reply) => reply,
        Err(e) => {
            return Started::Refused {
                name: e.name().map(str::to_owned),
                message: e.to_string(),
            }
        }
    };
    let job = match job_of(&reply, "StartUnit", unit) {
        Ok(job) => job,
        Err(e) => return Started::Lost(format!("{e:#}")),
    };
    match wait_within(&mut manager, &job, limit) {
        Ok(Some(result)) => Started::Removed(result),
        Ok(None) => Started::Waiting(limit),
        Err(e) => Started::Lost(format!("{e:#}")),
    }
}

/// True for the error `StartUnit` answers for a unit that does not exist (`LoadState=not-found`:
/// systemd's `bus_unit_validate_load_state()`).
pub fn is_no_such_unit(name: Option<&str>) -> bool {
    name == Some(NO_SUCH_UNIT)
}
