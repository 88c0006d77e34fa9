//! `flatcar-select`: Flatcar's extension selection in the root (official extensions from
//! `enabled-sysext.conf`, the OEM sysext's A/B selection and migration), without downloads.
//! The rules are in [`crate::initrd::flatcar`]; this verb gathers, plans, prints or applies,
//! and judges what is still missing by the missing-image policy.

use crate::initrd::cmdline;
use crate::initrd::flatcar::missing::{self, MissingImage, MissingPolicy, PolicyChoice};
use crate::initrd::flatcar::{self, Action};
use crate::kernel::root::Root;
use crate::settings::switches;
use crate::verbs::{print_json, print_text, JsonMode, EXIT_FAILURE, EXIT_SUCCESS};
use anyhow::Result;
use std::path::Path;

/// Exit status of the selection when it failed under `--missing=warn`: a failure (non-zero for
/// scripts), which `initrd-stage` counts as a success of the step so that the boot goes on, as
/// it does for a missing image under `warn` ([`crate::initrd::stage::succeeded`]). Under `fail`
/// a failure is exit 1.
pub const EXIT_FAILED_WARN: i32 = 3;

/// How `flatcar-select` was asked to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectOptions {
    /// Print the plan (or with `json`, the missing images) without changing anything.
    pub dry_run: bool,
    /// Print the missing images as a JSON array.
    pub json: JsonMode,
    /// `--missing=`; the kernel command line wins over it.
    pub missing: Option<MissingPolicy>,
}

/// Run the selection in `root`. With `dry_run` only report (exit 0 unless the report failed:
/// the policy judges boots, not plans). Otherwise apply what can be applied, then: every image
/// still missing is one log line, and the exit status is 0 under `warn`, 1 under `fail`; a
/// failed selection is 1 under `fail` and [`EXIT_FAILED_WARN`] under `warn`.
pub fn run(root: &Path, opts: SelectOptions, cmdline_text: &str, in_initrd: bool) -> Result<i32> {
    if let Some(opt) = switches::initrd_step_disabled(cmdline_text, in_initrd) {
        tracing::info!("Disabled by the kernel command line option {opt}: no Flatcar selection.");
        return Ok(EXIT_SUCCESS);
    }
    let choice = missing::resolve_policy(opts.missing, &cmdline::parse(cmdline_text), in_initrd);
    match select(root, opts, &choice) {
        Ok(_) if opts.dry_run => Ok(EXIT_SUCCESS),
        Ok(missing) if missing.is_empty() || choice.policy == MissingPolicy::Warn => {
            Ok(EXIT_SUCCESS)
        }
        Ok(_) => Ok(EXIT_FAILURE),
        Err(e) if opts.dry_run => Err(e),
        Err(e) if choice.policy == MissingPolicy::Fail => Err(e.context(format!(
            "Flatcar selection failed (missing-image policy {}, {})",
            choice.policy.name(),
            choice.origin
        ))),
        Err(e) => {
            tracing::error!(
                "Flatcar selection failed: {e:#}; going on (missing-image policy warn, {}).",
                choice.origin
            );
            Ok(EXIT_FAILED_WARN)
        }
    }
}

/// Gather, plan, and print (dry run) or apply; returns the images still missing, each logged
/// with the policy's verdict after a real run.
fn select(root: &Path, opts: SelectOptions, choice: &PolicyChoice) -> Result<Vec<MissingImage>> {
    let root = Root::open(root)?;
    if !flatcar::is_flatcar(&root)? {
        tracing::info!(
            "{} has no /usr/share/flatcar: not a Flatcar root, nothing to select.",
            root.path().display()
        );
        if opts.json != JsonMode::Off {
            print_json(opts.json, &Vec::<MissingImage>::new())?;
        }
        return Ok(Vec::new());
    }
    let inputs = flatcar::gather(&root)?;
    let actions = flatcar::plan(&inputs);
    for bad in actions
        .iter()
        .filter(|a| matches!(a, Action::BadLine { .. }))
    {
        tracing::warn!("Flatcar selection: {bad}.");
    }
    let missing = missing::missing_images(&actions, &inputs.version);
    if opts.dry_run {
        if opts.json != JsonMode::Off {
            print_json(opts.json, &missing)?;
        } else {
            let plan: String = actions.iter().map(|a| format!("{a}\n")).collect();
            print_text(&plan)?;
        }
        return Ok(missing);
    }
    super::require_privileges()?;
    for line in flatcar::apply(&root, &actions)? {
        tracing::info!(
            VERSION = inputs.version.as_str(),
            "Flatcar selection: {line}."
        );
    }
    for line in missing::missing_lines(&actions, &inputs.version, choice) {
        match choice.policy {
            MissingPolicy::Warn => tracing::warn!(VERSION = inputs.version.as_str(), "{line}"),
            MissingPolicy::Fail => tracing::error!(VERSION = inputs.version.as_str(), "{line}"),
        }
    }
    if opts.json != JsonMode::Off {
        print_json(opts.json, &missing)?;
    }
    Ok(missing)
}
