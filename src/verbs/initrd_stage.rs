//! `initrd-stage`: every step of one initrd stage in this one process, in the order and with
//! the failure policy of [`crate::initrd::stage::plan`]. Each step is the verb it names
//! (`mount-var`, `flatcar-select`, `--class=… refresh`), or for `oem-mount` what `systemctl
//! start sysroot-oem.mount` did ([`crate::initrd::oem_mount`]), called in-process: the same log lines,
//! the same kill switches and masks, the same exit status per step; one exec for the unit
//! instead of one per step.

use crate::initrd::flatcar::MissingPolicy;
use crate::initrd::stage::{self, PlannedStep, Stage, Step, Verdict};
use crate::settings::{self, CliOptions};
use crate::verbs::flatcar_select::SelectOptions;
use crate::verbs::{JsonMode, EXIT_FAILURE, EXIT_SKIPPED, EXIT_SUCCESS, EXIT_USAGE};
use anyhow::Result;
use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Instant;

/// How `initrd-stage` was asked to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageOptions {
    /// Which stage.
    pub stage: Stage,
    /// `--missing=` for stage 2's `flatcar-select`; the kernel command line wins over it.
    pub missing: Option<MissingPolicy>,
}

/// Run the steps of the stage on `cli.root`; exit 0 when the stage succeeded (every step whose
/// failure fails the stage succeeded), else the exit status of the step that failed it, with
/// the later steps not run; 2 without `--root` (or with `--root=/`).
pub fn run(
    cli: &CliOptions,
    opts: StageOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<i32> {
    let n = opts.stage.number();
    let root = settings::resolve_root(cli.root.as_deref())?;
    if cli.root.is_none() || root == Path::new("/") {
        tracing::error!(
            "initrd-stage runs in the initrd on the real root below --root (e.g. \
             --root=/sysroot), not on the running system."
        );
        return Ok(EXIT_USAGE);
    }
    if opts.stage == Stage::Early && opts.missing.is_some() {
        tracing::error!("--missing= is the policy of flatcar-select, which only stage 2 runs.");
        return Ok(EXIT_USAGE);
    }
    // The classes' steps read the same base OS (below every merge): read once, for both.
    let base = crate::merge::base::Shared::default();
    let outcome = stage::drive(&stage::plan(opts.stage), |planned| {
        let started = Instant::now();
        // A crash of one step is that step's failure, as when each step was its own process:
        // the stage's policy decides, not the crash (the release build unwinds for this, and
        // the guards of the crashed step roll back what it had placed on the way out).
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_step(planned.step, &root, cli, opts, env, &base)
        }));
        let code = match ran {
            Ok(Ok(code)) => code,
            Ok(Err(e)) => {
                // As the verb run on its own reports an error it returns.
                tracing::error!("{e:#}");
                EXIT_FAILURE
            }
            Err(payload) => {
                tracing::error!(
                    "Stage {n} step {} crashed: {}",
                    planned.step,
                    panic_message(payload.as_ref())
                );
                EXIT_FAILURE
            }
        };
        log_step(n, planned, code, started);
        code
    });
    if outcome.exit != EXIT_SUCCESS {
        let not_run: Vec<String> = outcome.not_run.iter().map(Step::to_string).collect();
        let step = outcome
            .ran
            .last()
            .map(|r| r.0.to_string())
            .unwrap_or_default();
        tracing::error!(
            "Stage {n} failed in step {step} (exit {}){}.",
            outcome.exit,
            if not_run.is_empty() {
                String::new()
            } else {
                format!("; not run: {}", not_run.join(", "))
            }
        );
    }
    Ok(outcome.exit)
}

/// One step: the verb it names, on `root`.
fn run_step(
    step: Step,
    root: &Path,
    cli: &CliOptions,
    opts: StageOptions,
    env: &dyn Fn(&str) -> Option<String>,
    base: &crate::merge::base::Shared,
) -> Result<i32> {
    let cmdline = cli.kernel_cmdline.as_deref().unwrap_or_default();
    match step {
        Step::OemMount => Ok(crate::initrd::oem_mount::run(root, cli.in_initrd)),
        Step::MountVar => super::mount_var::run(root, true, cmdline, cli.in_initrd),
        Step::FlatcarSelect => {
            let select = SelectOptions {
                dry_run: false,
                json: JsonMode::Off,
                missing: opts.missing,
            };
            super::flatcar_select::run(root, select, cmdline, cli.in_initrd)
        }
        Step::Refresh(class) => {
            // Resolved now, not at the start: the steps before may have changed what the
            // configuration and the extension directories say (the selection's links, /var).
            let settings = settings::resolve_selected(cli, &[class], env, true)?;
            if settings.is_empty() {
                return Ok(EXIT_SUCCESS);
            }
            crate::merge::run_refresh_shared(&settings, EXIT_SKIPPED, base)
        }
    }
}

/// The text a panic was raised with, when it has one.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The step's timing at debug level, and when it failed, what that does to the stage.
fn log_step(n: u8, planned: &PlannedStep, code: i32, started: Instant) {
    let step = planned.step.to_string();
    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::debug!(
        target: crate::log::PHASE_TARGET,
        STAGE = n,
        STEP = step.as_str(),
        EXIT_STATUS = code,
        DURATION_US = us,
        "Stage {n} step {step}: exit {code}, {us} us."
    );
    if stage::verdict(planned.on_failure, code) == Verdict::FailedGoOn {
        tracing::warn!("Stage {n} step {step} failed (exit {code}); its failure does not fail the stage, going on.");
    }
}
