//! `flatcar-select`: Flatcar's extension selection in the root (official extensions from
//! `enabled-sysext.conf`, the OEM sysext's A/B selection and migration), without downloads.
//! The rules are in [`crate::initrd::flatcar`]; this verb gathers, plans, prints or applies.

use crate::initrd::flatcar::{self, Action};
use crate::kernel::root::Root;
use crate::settings::switches;
use crate::verbs::{print_json, print_text, JsonMode, EXIT_FAILURE, EXIT_SUCCESS};
use anyhow::Result;
use std::path::Path;

/// Run the selection in `root`; with `dry_run` only print the plan. Exit 1 when an image the
/// selection needs is missing (the others are still linked), else 0.
pub fn run(
    root: &Path,
    dry_run: bool,
    json: JsonMode,
    cmdline_text: &str,
    in_initrd: bool,
) -> Result<i32> {
    if let Some(opt) = switches::initrd_step_disabled(cmdline_text, in_initrd) {
        tracing::info!("Disabled by the kernel command line option {opt}: no Flatcar selection.");
        return Ok(EXIT_SUCCESS);
    }
    let root = Root::open(root)?;
    if !flatcar::is_flatcar(&root)? {
        tracing::info!(
            "{} has no /usr/share/flatcar: not a Flatcar root, nothing to select.",
            root.path().display()
        );
        if json != JsonMode::Off {
            print_json(json, &Vec::<Action>::new())?;
        }
        return Ok(EXIT_SUCCESS);
    }
    let inputs = flatcar::gather(&root)?;
    let actions = flatcar::plan(&inputs);
    for bad in actions
        .iter()
        .filter(|a| matches!(a, Action::BadLine { .. }))
    {
        tracing::warn!("Flatcar selection: {bad}.");
    }
    if dry_run {
        if json != JsonMode::Off {
            print_json(json, &actions)?;
        } else {
            let plan: String = actions.iter().map(|a| format!("{a}\n")).collect();
            print_text(&plan)?;
        }
        return Ok(if flatcar::missing_error(&actions).is_some() {
            EXIT_FAILURE
        } else {
            EXIT_SUCCESS
        });
    }
    super::require_privileges()?;
    for line in flatcar::apply(&root, &actions)? {
        tracing::info!(
            VERSION = inputs.version.as_str(),
            "Flatcar selection: {line}."
        );
    }
    if json != JsonMode::Off {
        print_json(json, &actions)?;
    }
    match flatcar::missing_error(&actions) {
        Some(msg) => {
            tracing::error!("{msg}");
            Ok(EXIT_FAILURE)
        }
        None => Ok(EXIT_SUCCESS),
    }
}
