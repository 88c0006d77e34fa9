//! The initrd stages as plans: which steps each stage runs, in which order, and what a step's
//! failure does. `extmerge initrd-stage` runs a plan in one process; the rules are the ones
//! systemd applied when each step was its own `ExecStart=` line of a oneshot unit: the lines
//! run in order, a `-`-prefixed line's failure is ignored, any other failure fails the unit
//! and the later lines do not run, and the unit's `SuccessExitStatus=77 3` made a skipped
//! refresh and a selection that failed under `--missing=warn` successes of every line.

use crate::class::ImageClass;
use std::fmt;

use crate::verbs::flatcar_select::EXIT_FAILED_WARN;
use crate::verbs::{EXIT_SKIPPED, EXIT_SUCCESS};

/// An initrd stage: one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// `extmerge-sysroot-early.service`, before Ignition: the confexts.
    #[value(name = "1")]
    Early,
    /// `extmerge-sysroot.service`, after Ignition: Flatcar's OEM mount, `/var`, Flatcar's
    /// selection, confexts, sysexts.
    #[value(name = "2")]
    Late,
}

impl Stage {
    /// The stage's number, as on the command line.
    pub fn number(self) -> u8 {
        match self {
            Stage::Early => 1,
            Stage::Late => 2,
        }
    }
}

/// One step of a stage; each is what one verb does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `systemctl start sysroot-oem.mount`, over PID 1's bus ([`crate::initrd::oem_mount`]).
    OemMount,
    /// `mount-var`.
    MountVar,
    /// `flatcar-select`.
    FlatcarSelect,
    /// `--class=CLASS refresh`.
    Refresh(ImageClass),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::OemMount => f.write_str("oem-mount"),
            Step::MountVar => f.write_str("mount-var"),
            Step::FlatcarSelect => f.write_str("flatcar-select"),
            Step::Refresh(class) => write!(f, "{class} refresh"),
        }
    }
}

/// What a failing step does to its stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Logged; the next step runs and the stage can still succeed (a `-` line).
    GoOn,
    /// The stage fails (the unit fails into `emergency.target`) and no later step runs.
    FailStage,
}

/// A step and its failure policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedStep {
    /// What runs.
    pub step: Step,
    /// What its failure does.
    pub on_failure: OnFailure,
}

/// The steps of `stage`, in order.
///
/// Stage 2: Flatcar's OEM partition first, since the selection reads its OEM sysexts; its
/// failure goes on, as the unit's `ExecStartPre=-systemctl start sysroot-oem.mount` it replaces
/// did (Flatcar's own setup starts it too). Then `/var`, so that extensions on a separate
/// `/var` are found; the selection before the merges, which read the links it writes; confexts
/// before sysexts, as systemd's units. A `/var` that cannot be mounted is merged late by the
/// booted system, and one broken sysext must not keep a machine from booting (Flatcar boots
/// past a failing sysext merge), so both go on; the selection fails the stage only when the
/// missing-image policy says so (its exit status says which); a confext failure, or a required
/// extension not merged, fails it.
pub fn plan(stage: Stage) -> Vec<PlannedStep> {
    let step = |step, on_failure| PlannedStep { step, on_failure };
    match stage {
        Stage::Early => vec![step(
            Step::Refresh(ImageClass::Confext),
            OnFailure::FailStage,
        )],
        Stage::Late => vec![
            step(Step::OemMount, OnFailure::GoOn),
            step(Step::MountVar, OnFailure::GoOn),
            step(Step::FlatcarSelect, OnFailure::FailStage),
            step(Step::Refresh(ImageClass::Confext), OnFailure::FailStage),
            step(Step::Refresh(ImageClass::Sysext), OnFailure::GoOn),
        ],
    }
}

/// True when a step's exit status is a success: 0, a skipped refresh, or a selection that
/// failed under `--missing=warn` (the policy that lets the boot go on).
pub fn succeeded(code: i32) -> bool {
    matches!(code, EXIT_SUCCESS | EXIT_SKIPPED | EXIT_FAILED_WARN)
}

/// What one step's exit status means for its stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The step succeeded.
    Done,
    /// The step failed; the stage goes on.
    FailedGoOn,
    /// The step failed; the stage fails here.
    FailedStage,
}

/// The verdict on a step that exited with `code`.
pub fn verdict(on_failure: OnFailure, code: i32) -> Verdict {
    match (succeeded(code), on_failure) {
        (true, _) => Verdict::Done,
        (false, OnFailure::GoOn) => Verdict::FailedGoOn,
        (false, OnFailure::FailStage) => Verdict::FailedStage,
    }
}

/// How a stage ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The steps that ran, in order, with their exit status and verdict.
    pub ran: Vec<(Step, i32, Verdict)>,
    /// The steps that did not run because an earlier one failed the stage.
    pub not_run: Vec<Step>,
    /// The stage's exit status: 0, or the status of the step that failed it.
    pub exit: i32,
}

/// Run `steps` in order through `run_step`, which returns a step's exit status, stopping at the
/// first step whose failure fails the stage.
pub fn drive(steps: &[PlannedStep], mut run_step: impl FnMut(&PlannedStep) -> i32) -> Outcome {
    let mut ran = Vec::with_capacity(steps.len());
    for (i, planned) in steps.iter().enumerate() {
        let code = run_step(planned);
        let v = verdict(planned.on_failure, code);
        ran.push((planned.step, code, v));
        if v == Verdict::FailedStage {
            return Outcome {
                ran,
                not_run: steps[i + 1..].iter().map(|p| p.step).collect(),
                exit: code,
            };
        }
    }
    Outcome {
        ran,
        not_run: Vec::new(),
        exit: EXIT_SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATE_ORDER: [Step; 5] = [
        Step::OemMount,
        Step::MountVar,
        Step::FlatcarSelect,
        Step::Refresh(ImageClass::Confext),
        Step::Refresh(ImageClass::Sysext),
    ];

    #[test]
    fn the_plans_keep_the_units_order_and_policy() {
        let late = plan(Stage::Late);
        assert_eq!(late.iter().map(|p| p.step).collect::<Vec<_>>(), LATE_ORDER);
        assert_eq!(
            late.iter().map(|p| p.on_failure).collect::<Vec<_>>(),
            [
                OnFailure::GoOn,
                OnFailure::GoOn,
                OnFailure::FailStage,
                OnFailure::FailStage,
                OnFailure::GoOn
            ]
        );
        assert_eq!(
            plan(Stage::Early),
            [PlannedStep {
                step: Step::Refresh(ImageClass::Confext),
                on_failure: OnFailure::FailStage
            }]
        );
        assert_eq!(
            LATE_ORDER.map(|s| s.to_string()),
            [
                "oem-mount",
                "mount-var",
                "flatcar-select",
                "confext refresh",
                "sysext refresh"
            ]
        );
    }

    #[test]
    fn skipped_and_failed_under_warn_are_successes() {
        for code in [0, 77, 3] {
            assert!(succeeded(code), "{code}");
            assert_eq!(verdict(OnFailure::FailStage, code), Verdict::Done);
        }
        for code in [1, 2, 4, 76, 78, 101, -1] {
            assert!(!succeeded(code), "{code}");
            assert_eq!(verdict(OnFailure::GoOn, code), Verdict::FailedGoOn);
            assert_eq!(verdict(OnFailure::FailStage, code), Verdict::FailedStage);
        }
    }

    /// Drive stage 2 with the exit status of each step given.
    fn drive_late(codes: [i32; 5]) -> (Outcome, Vec<Step>) {
        let mut called = Vec::new();
        let out = drive(&plan(Stage::Late), |p| {
            called.push(p.step);
            let i = LATE_ORDER.iter().position(|x| *x == p.step).unwrap();
            codes[i]
        });
        (out, called)
    }

    #[test]
    fn failing_go_on_steps_do_not_fail_the_stage() {
        let (out, called) = drive_late([1, 1, 0, 77, 1]);
        assert_eq!(called, LATE_ORDER);
        assert_eq!(out.exit, 0);
        assert!(out.not_run.is_empty());
        assert_eq!(
            out.ran.iter().map(|r| r.2).collect::<Vec<_>>(),
            [
                Verdict::FailedGoOn,
                Verdict::FailedGoOn,
                Verdict::Done,
                Verdict::Done,
                Verdict::FailedGoOn
            ]
        );
        // A selection that failed under warn (3) goes on too.
        let (out, called) = drive_late([0, 0, 3, 0, 0]);
        assert_eq!((out.exit, called.len()), (0, 5));
    }

    #[test]
    fn a_failing_confext_or_selection_fails_the_stage_and_stops_it() {
        let (out, called) = drive_late([0, 0, 0, 1, 0]);
        assert_eq!(called, LATE_ORDER[..4]);
        assert_eq!(out.exit, 1);
        assert_eq!(out.not_run, [Step::Refresh(ImageClass::Sysext)]);
        assert_eq!(out.ran[3], (LATE_ORDER[3], 1, Verdict::FailedStage));

        // A failed OEM mount goes on to the selection, whose failure stops the stage.
        let (out, called) = drive_late([1, 1, 1, 0, 0]);
        assert_eq!(called, LATE_ORDER[..3]);
        assert_eq!(out.exit, 1);
        assert_eq!(out.not_run, LATE_ORDER[3..]);

        let mut calls = 0;
        let out = drive(&plan(Stage::Early), |_| {
            calls += 1;
            2
        });
        assert_eq!((out.exit, calls, out.not_run.len()), (2, 1, 0));
    }
}
