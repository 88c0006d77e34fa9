//! Stage 2's first step, `oem-mount`: Flatcar's OEM partition at `/sysroot/oem`, started the way
//! Flatcar's `initrd-setup-root-after-ignition.service` does it (`ExecStartPre=-systemctl start
//! sysroot-oem.mount`), but over PID 1's bus from this process instead of a `systemctl` process
//! of its own (about 150 ms of the unit's start-up under emulation). Started rather than
//! required (`RequiresMountsFor=`) because `ignition-mount.service` may unmount `/sysroot/oem`
//! earlier in the same transaction, which would keep the unit from starting.
//!
//! As with the ignored `-` line, nothing here fails the stage: a unit that does not exist (not
//! Flatcar) is one line and a success; a refused start, a failed or unfinished job or an
//! unreachable PID 1 is one warning and a failure the stage goes on past.

use crate::manager::units::{is_no_such_unit, start_unit, Started};
use crate::verbs::{EXIT_FAILURE, EXIT_SUCCESS};
use std::path::Path;
use std::time::Duration;

/// Flatcar's OEM partition mount in the initrd.
pub const UNIT: &str = "sysroot-oem.mount";

/// The root the unit mounts below.
pub const SYSROOT: &str = "/sysroot";

/// How long to wait for the start job. `systemctl start` waits without a limit (the unit's
/// `TimeoutStartSec=` ends it); a hang must not hold the step, yet each link of the OEM mount
/// can take systemd's default 90 s (the device, the mount of `/oem`, the bind mount at
/// `/sysroot/oem`): 270 s in a row, so 300 s, below the unit's 10 min for its other steps.
pub const JOB_LIMIT: Duration = Duration::from_secs(300);

/// What the step found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Oem {
    /// Not in an initrd: there is no initrd PID 1 to ask.
    NotInInitrd,
    /// The stage's root is not `/sysroot`, below which the unit mounts.
    OtherRoot(String),
    /// What starting the unit over the bus gave.
    Start(Started),
}

/// The step's log line, its level and the step's exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// A warning (something went wrong; the stage goes on), else information.
    pub warn: bool,
    /// The one line.
    pub line: String,
    /// The step's exit status.
    pub exit: i32,
}

/// What `oem` means for the step.
pub fn report(oem: &Oem) -> Report {
    let info = |line: String| Report {
        warn: false,
        line,
        exit: EXIT_SUCCESS,
    };
    let warn = |line: String| Report {
        warn: true,
        line,
        exit: EXIT_FAILURE,
    };
    match oem {
        Oem::NotInInitrd => info(format!("Not starting {UNIT}: not in an initrd.")),
        Oem::OtherRoot(root) => info(format!(
            "Not starting {UNIT}: it mounts below {SYSROOT}, the root here is {root}."
        )),
        Oem::Start(Started::Removed(result)) => {
            match crate::manager::jobs::job_failure(UNIT, result) {
                None => info(format!("The start job of {UNIT} finished: {result}.")),
                Some(failure) => warn(failure),
            }
        }
        Oem::Start(Started::Refused { name, message }) if is_no_such_unit(name.as_deref()) => info(
            format!("Not starting {UNIT}: {message} (no OEM partition here)."),
        ),
        Oem::Start(Started::Refused { message, .. }) => {
            warn(format!("Failed to start {UNIT}: {message}"))
        }
        Oem::Start(Started::NoManager(e)) => warn(format!("Failed to start {UNIT}: {e}")),
        Oem::Start(Started::Waiting(limit)) => warn(format!(
            "The start job of {UNIT} did not finish within {} s; going on without it (the job \
             stays queued).",
            limit.as_secs()
        )),
        Oem::Start(Started::Lost(e)) => {
            warn(format!("Failed to wait for the start job of {UNIT}: {e}"))
        }
    }
}

/// Start the OEM mount when in the initrd on `/sysroot`; one line, and the step's exit status.
pub fn run(root: &Path, in_initrd: bool) -> i32 {
    let oem = if !in_initrd {
        Oem::NotInInitrd
    } else if root != Path::new(SYSROOT) {
        Oem::OtherRoot(root.display().to_string())
    } else {
        Oem::Start(start_unit(UNIT, JOB_LIMIT))
    };
    let r = report(&oem);
    if r.warn {
        tracing::warn!("{}", r.line);
    } else {
        tracing::info!("{}", r.line);
    }
    r.exit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(s: Started) -> Report {
        report(&Oem::Start(s))
    }

    #[test]
    fn done_and_skipped_jobs_and_an_absent_unit_are_successes() {
        assert_eq!(
            start(Started::Removed("done".into())),
            Report {
                warn: false,
                line: "The start job of sysroot-oem.mount finished: done.".into(),
                exit: 0
            }
        );
        assert_eq!(start(Started::Removed("skipped".into())).exit, 0);
        assert_eq!(
            start(Started::Refused {
                name: Some("org.freedesktop.systemd1.NoSuchUnit".into()),
                message: "Unit sysroot-oem.mount not found.".into()
            }),
            Report {
                warn: false,
                line: "Not starting sysroot-oem.mount: Unit sysroot-oem.mount not found. (no OEM \
                       partition here)."
                    .into(),
                exit: 0
            }
        );
    }

    #[test]
    fn outside_the_initrd_or_sysroot_nothing_is_asked() {
        assert_eq!(
            report(&Oem::NotInInitrd),
            Report {
                warn: false,
                line: "Not starting sysroot-oem.mount: not in an initrd.".into(),
                exit: 0
            }
        );
        assert_eq!(
            report(&Oem::OtherRoot("/tmp/r".into())).line,
            "Not starting sysroot-oem.mount: it mounts below /sysroot, the root here is /tmp/r."
        );
        // Both are decided before any bus is touched.
        assert_eq!(run(Path::new("/sysroot"), false), 0);
        assert_eq!(run(Path::new("/tmp"), true), 0);
    }

    #[test]
    fn failures_are_one_warning_and_a_failed_step() {
        let cases = [
            (
                Started::Removed("failed".into()),
                "Job for sysroot-oem.mount failed (result 'failed'). See \"systemctl status \
                 sysroot-oem.mount\" and \"journalctl -xeu sysroot-oem.mount\" for details.",
            ),
            (
                Started::Removed("dependency".into()),
                "A dependency job for sysroot-oem.mount failed. See 'journalctl -xe' for details.",
            ),
            (
                Started::Refused {
                    name: Some("org.freedesktop.systemd1.UnitMasked".into()),
                    message: "Unit sysroot-oem.mount is masked.".into(),
                },
                "Failed to start sysroot-oem.mount: Unit sysroot-oem.mount is masked.",
            ),
            (
                Started::Refused {
                    name: None,
                    message: "timed out".into(),
                },
                "Failed to start sysroot-oem.mount: timed out",
            ),
            (
                Started::NoManager("cannot reach the service manager (PID 1)".into()),
                "Failed to start sysroot-oem.mount: cannot reach the service manager (PID 1)",
            ),
            (
                Started::Waiting(JOB_LIMIT),
                "The start job of sysroot-oem.mount did not finish within 300 s; going on \
                 without it (the job stays queued).",
            ),
            (
                Started::Lost("reading the service manager's signals: gone".into()),
                "Failed to wait for the start job of sysroot-oem.mount: reading the service \
                 manager's signals: gone",
            ),
        ];
        for (started, line) in cases {
            assert_eq!(
                start(started.clone()),
                Report {
                    warn: true,
                    line: line.into(),
                    exit: 1
                },
                "{started:?}"
            );
        }
    }

    #[test]
    fn the_wait_outlasts_the_oem_mounts_default_timeouts() {
        // Device, /oem and the bind mount at systemd's 90 s each (the unit's 10 min: see
        // tests/initrd_units.rs).
        assert!(JOB_LIMIT > Duration::from_secs(3 * 90));
    }
}
