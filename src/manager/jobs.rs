//! Waiting for a job of the service manager, as systemd's `bus_wait_for_jobs_one()`: the
//! `JobRemoved(u id, o job, s unit, s result)` signal for the job's object path. The signal
//! stream is opened (and `Subscribe` called, which the system bus needs for the manager's
//! signals) before any job is queued, so no signal is missed.

use super::connect::{Manager, DESTINATION, MANAGER, PATH};
use anyhow::{anyhow, Context, Result};
use futures_core::Stream;
use std::pin::Pin;
use zbus::message::Type;
use zbus::{MatchRule, MessageStream, OwnedObjectPath};

/// The `JobRemoved` signals of one connection.
pub struct JobWatcher {
    stream: MessageStream,
}

impl JobWatcher {
    /// Start watching `manager`'s `JobRemoved` signals.
    pub async fn new(manager: &Manager) -> Result<Self> {
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(DESTINATION)
            .interface(MANAGER)
            .member("JobRemoved")
            .path(PATH)
            .build()
            .context("building the JobRemoved match rule")?;
        let stream = MessageStream::for_match_rule(rule, manager.connection(), None)
            .await
            .context("adding the JobRemoved match")?;
        // PID 1 sends a job's signals to its client even without a subscription; Subscribe is
        // what systemctl relies on for the rest, so a failure is only noted.
        if let Err(e) = manager.call("Subscribe", &()).await {
            tracing::debug!("Subscribe to the service manager's signals failed: {e}");
        }
        Ok(JobWatcher { stream })
    }

    /// Wait until `job` is removed; its result (`done`, `failed`, `canceled`, …).
    pub async fn wait(&mut self, job: &OwnedObjectPath) -> Result<String> {
        loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut self.stream).poll_next(cx)).await;
            let msg = next
                .ok_or_else(|| anyhow!("the connection closed before the job finished"))?
                .context("reading the service manager's signals")?;
            let (_id, path, _unit, result): (u32, OwnedObjectPath, String, String) = msg
                .body()
                .deserialize()
                .context("parsing a JobRemoved signal")?;
            if path == *job {
                return Ok(result);
            }
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
