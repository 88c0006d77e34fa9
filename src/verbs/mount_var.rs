//! `mount-var`: in the initrd, mount the `/var` that the kernel command line names — or, when
//! it names none, the one the root's own `etc/fstab` or `var.mount` defines — at `<root>/var`
//! (`/sysroot/var`), so extensions on a separate `/var` are merged in the initrd. The rules
//! (which source, device wait, first boot) are in [`crate::initrd::var`].

use crate::initrd::cmdline::{self, Param};
use crate::initrd::var::{self, CmdlineVar, RootVar, VarSpec};
use crate::kernel::root::Root;
use crate::settings::switches;
use crate::verbs::{EXIT_FAILURE, EXIT_SUCCESS, EXIT_USAGE};
use anyhow::Result;
use std::path::Path;

/// Mount the command line's (else the root's) `/var` below `root`; exit 0 when mounted,
/// already mounted or not asked for, 1 when the spec is bad or the device did not appear in
/// time.
///
/// `cmdline_text` is the kernel command line; `in_initrd` enables the `rd.` parameters.
pub fn run(root: &Path, root_given: bool, cmdline_text: &str, in_initrd: bool) -> Result<i32> {
    if !root_given || root == Path::new("/") {
        tracing::error!(
            "mount-var mounts the /var named on the kernel command line or in the root's \
             configuration below --root (e.g. --root=/sysroot in the initrd); the running \
             system's own /var is systemd's (var.mount)."
        );
        return Ok(EXIT_USAGE);
    }
    if let Some(opt) = switches::initrd_step_disabled(cmdline_text, in_initrd) {
        tracing::info!("Disabled by the kernel command line option {opt}: not mounting /var.");
        return Ok(EXIT_SUCCESS);
    }
    let params = cmdline::parse(cmdline_text);
    let spec = match choose(root, &params, in_initrd) {
        Ok(Some(spec)) => spec,
        Ok(None) => return Ok(EXIT_SUCCESS),
        Err(e) => {
            tracing::error!("Not mounting /var: {e:#}");
            return Ok(EXIT_FAILURE);
        }
    };
    super::require_privileges()?;
    let timeout = var::timeout_from_cmdline(&params, in_initrd);
    let started = std::time::Instant::now();
    match var::ensure_var(root, Some(&spec), timeout) {
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

/// The `/var` to mount: the command line's, else the root's; one info line says which.
fn choose(root: &Path, params: &[Param], in_initrd: bool) -> Result<Option<VarSpec>> {
    let from_cmdline = var::var_from_cmdline(params, in_initrd).map_err(anyhow::Error::msg)?;
    let root = Root::open(root)?;
    match from_cmdline {
        CmdlineVar::Spec(spec) => {
            tracing::info!(
                "Using the /var named on the kernel command line ({}): {}.",
                spec.source_param,
                spec.what
            );
            warn_if_root_differs(&root, params, &spec);
            return Ok(Some(spec));
        }
        CmdlineVar::NotBlock(source) => {
            tracing::info!("{source} is not a block device /var; left to the booted system.");
            return Ok(None);
        }
        CmdlineVar::Unnamed => {}
    }
    match var::var_from_root(&root, params)? {
        RootVar::Mount(spec) => {
            tracing::info!(
                "Using the /var that {} defines: {}.",
                spec.source_param,
                spec.what
            );
            Ok(Some(spec))
        }
        RootVar::Undefined => {
            tracing::debug!(
                "No /var on the kernel command line (systemd.mount-extra=…:/var, \
                 rd.extmerge.var=) nor in {}/etc/fstab or var.mount.",
                root.path().display()
            );
            Ok(None)
        }
        RootVar::Masked(unit) => {
            tracing::info!("{unit} is masked: no separate /var to mount.");
            Ok(None)
        }
        RootVar::LeftToSystem { source, why } => {
            tracing::info!("The /var of {source} is left to the booted system: {why}.");
            Ok(None)
        }
    }
}

/// The booted system's `var.mount` comes from the root's configuration: say so when it names
/// another device than the command line (it will find the command line's `/var` mounted).
fn warn_if_root_differs(root: &Root, params: &[Param], spec: &VarSpec) {
    match var::var_from_root(root, params) {
        Ok(RootVar::Mount(other)) if other.what != spec.what => tracing::warn!(
            "{} also defines /var, as {}; the kernel command line's {} is mounted, and the \
             booted system's var.mount will find it mounted and use it as is.",
            other.source_param,
            other.what,
            spec.what
        ),
        Ok(_) => {}
        Err(e) => tracing::debug!("not comparing with the root's own /var: {e:#}"),
    }
}
