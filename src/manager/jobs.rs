//! Waiting for a job of the service manager, as systemd's `bus_wait_for_jobs_one()`: the
//! `JobRemoved(u id, o job, s unit, s result)` signal for the job's object path. On the system
//! bus the match rule and `Subscribe` are in place before any job is queued; the connection
//! queues the signals that arrive while it waits for a reply, so none is missed.

use super::connect::{Manager, DESTINATION, MANAGER, PATH};
use anyhow::{anyhow, bail, Result};
use rustbus::connection::Timeout;
use rustbus::wire::ObjectPath;
use rustbus::MessageType;
use std::time::{Duration, Instant};

fn is_job_removed(msg: &rustbus::message_builder::MarshalledMessage) -> bool {
    msg.dynheader.member.as_deref() == Some("JobRemoved")
        && msg.dynheader.interface.as_deref() == Some(MANAGER)
}

/// Start watching `manager`'s `JobRemoved` signals (other signals are dropped on arrival: PID 1
/// sends all of them on its private socket).
pub fn watch(manager: &mut Manager) -> Result<()> {
    manager.conn_mut().set_filter(Box::new(|m| {
        m.typ != MessageType::Signal || is_job_removed(m)
    }));
    // A direct connection (the private socket) gets every signal of PID 1 without asking ("direct
    // bus connections subscribe by default"; Subscribe there gets no answer from systemd 262).
    if !manager.bus {
        return Ok(());
    }
    let rule = format!(
        "type='signal',sender='{DESTINATION}',interface='{MANAGER}',member='JobRemoved',\
         path='{PATH}'"
    );
    manager
        .send(rustbus::standard_messages::add_match(&rule))
        .map_err(|e| anyhow!("adding the JobRemoved match on {}: {e}", manager.via))?;
    // PID 1 sends a job's signals to its client even without a subscription; Subscribe is what
    // systemctl relies on for the rest, so a failure is only noted.
    if let Err(e) = manager.call("Subscribe", |_| Ok(())) {
        tracing::debug!("Subscribe to the service manager's signals failed: {e}");
    }
    Ok(())
}

/// Wait until `job` is removed; its result (`done`, `failed`, `canceled`, …).
pub fn wait(manager: &mut Manager, job: &str) -> Result<String> {
    wait_until(manager, job, None)?
        .ok_or_else(|| anyhow!("waiting for job {job} ended without its JobRemoved signal"))
}

/// Wait at most `limit` until `job` is removed; its result, or `None` when `limit` passed
/// first (the job is still queued in PID 1).
pub fn wait_within(manager: &mut Manager, job: &str, limit: Duration) -> Result<Option<String>> {
    wait_until(manager, job, Some(Instant::now() + limit))
}

fn wait_until(
    manager: &mut Manager,
    job: &str,
    deadline: Option<Instant>,
) -> Result<Option<String>> {
    loop {
        let timeout = match deadline {
            None => Timeout::Infinite,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Timeout::Duration(left),
                _ => return Ok(None),
            },
        };
        let msg = match manager.conn_mut().wait_signal(timeout) {
            Ok(msg) => msg,
            Err(rustbus::connection::Error::TimedOut) if deadline.is_some() => return Ok(None),
            Err(e) => bail!(
                "reading the service manager's signals: {}",
                super::connect::plain(e)
            ),
        };
        if !is_job_removed(&msg) {
            continue;
        }
        let (_id, path, _unit, result) = msg
            .body
            .parser()
            .get4::<u32, ObjectPath<&str>, &str, &str>()
            .map_err(|e| anyhow!("parsing a JobRemoved signal: {e}"))?;
        tracing::debug!("Job {} removed: {result}.", path.as_ref());
        if path.as_ref() == job {
            return Ok(Some(result.to_owned()));
        }
    }
}

/// What systemd's `check_wait_response()` logs (as an error) for a job that ended with
/// `result` on `unit`; `None` for the results that count as success (`done`, `skipped`).
pub fn job_failure(unit: &str, result: &str) -> Option<String> {
    Some(match result {
        "done" | "skipped" => return None,
        "canceled" => format!("Job for {unit} canceled."),
        "timeout" => format!("Job for {unit} timed out."),
        "dependency" => {
            format!("A dependency job for {unit} failed. See 'journalctl -xe' for details.")
        }
        "invalid" => format!("{unit} is not active, cannot reload."),
        "assert" => format!("Assertion failed on job for {unit}."),
        "unsupported" => {
            format!("Operation on or unit type of {unit} not supported on this system.")
        }
        "collected" => format!("Queued job for {unit} was garbage collected."),
        "once" => format!("Unit {unit} was started already once and can't be started again."),
        "frozen" => format!("Cannot perform operation on frozen unit {unit}."),
        _ => format!(
            "Job for {unit} failed (result '{result}'). See \"systemctl status {unit}\" and \
             \"journalctl -xeu {unit}\" for details."
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_results() {
        assert_eq!(job_failure("a.service", "done"), None);
        assert_eq!(job_failure("a.service", "skipped"), None);
        assert_eq!(
            job_failure("a.service", "invalid").as_deref(),
            Some("a.service is not active, cannot reload.")
        );
        assert_eq!(
            job_failure("a.service", "failed").as_deref(),
            Some(
                "Job for a.service failed (result 'failed'). See \"systemctl status a.service\" \
                 and \"journalctl -xeu a.service\" for details."
            )
        );
    }
}
