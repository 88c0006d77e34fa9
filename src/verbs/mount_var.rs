//! `mount-var`: in the initrd, mount the `/var` that the kernel command line names at
//! `<root>/var` (`/sysroot/var`), so extensions on a separate `/var` are merged in the
//! initrd. The rules (which parameter, device wait, first boot) are in [`crate::initrd::var`].

use crate::initrd::{cmdline, var};
use crate::settings::switches;
use crate::verbs::{EXIT_FAILURE, EXIT_SUCCESS, EXIT_USAGE};
use anyhow::Result;
use std::path::Path;

/// Mount the command line's `/var` below `root`; exit 0 when mounted, already mounted or not
/// asked for, 1 when the spec is bad or the device did not appear in time.
///
/// `cmdline_text` is the kernel command line; `in_initrd` enables the `rd.` parameters.
pub fn run(root: &Path, root_given: bool, cmdline_text: &str, in_initrd: bool) -> Result<i32> {
    if !root_given || root == Path::new("/") {
        tracing::error!(
            "mount-var mounts the /var named on the kernel command line below --root (e.g. \
             --root=/sysroot in the initrd); the running system's own /var is systemd's (var.mount)."
        );
        return Ok(EXIT_USAGE);
    }
    if let Some(opt) = switches::initrd_step_disabled(cmdline_text, in_initrd) {
        tracing::info!("Disabled by the kernel command line option {opt}: not mounting /var.");
        return Ok(EXIT_SUCCESS);
    }
    let params = cmdline::parse(cmdline_text);
    let spec = match var::spec_from_cmdline(&params, in_initrd) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::error!("Not mounting /var: {e}");
            return Ok(EXIT_FAILURE);
        }
    };
    if spec.is_none() {
        tracing::debug!(
            "No /var on the kernel command line (systemd.mount-extra=…:/var or rd.extmerge.var=)."
        );
        return Ok(EXIT_SUCCESS);
    }
    super::require_privileges()?;
    let timeout = var::timeout_from_cmdline(&params, in_initrd);
    let started = std::time::Instant::now();
    match var::ensure_var(root, spec.as_ref(), timeout) {
        Ok(outcome) => {
            tracing::debug!(
                DURATION_US = started.elapsed().as_micros() as u64,
                "/var step done: {outcome:?}"
            );
            Ok(EXIT_SUCCESS)
        }
        Err(e) => {
            tracing::error!(
                "Cannot mount /var below {}: {e:#}. Extensions on that /var are merged late, by \
                 the booted system's refresh, if it can mount it.",
                root.display()
            );
            Ok(EXIT_FAILURE)
        }
    }
}
