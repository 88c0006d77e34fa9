//! The command verbs. Each verb takes resolved settings and returns an exit status.

pub mod check;
pub mod flatcar_select;
pub mod initrd_stage;
pub mod list;
pub mod mount_var;
pub mod status;
pub mod update_check;

use serde::Serialize;

/// Exit status for success (also: nothing to do).
pub const EXIT_SUCCESS: i32 = 0;
/// Exit status for any failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status for invalid command-line usage (clap's convention).
pub const EXIT_USAGE: i32 = 2;
/// Exit status of `refresh` when nothing changed and nothing was touched (skipped).
pub const EXIT_SKIPPED: i32 = 77;

/// `--json=` output modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum JsonMode {
    /// Indented JSON.
    Pretty,
    /// One line of JSON.
    Short,
    /// Human-readable table.
    #[default]
    Off,
}

/// Print a value as JSON in the requested mode.
pub fn print_json<T: Serialize>(mode: JsonMode, value: &T) -> anyhow::Result<()> {
    let mut text = match mode {
        JsonMode::Pretty => serde_json::to_string_pretty(value)?,
        _ => serde_json::to_string(value)?,
    };
    text.push('\n');
    print_text(&text)
}

/// Write `text` to stdout; a write error (a closed pipe, a full disk) is an error naming
/// standard output, never a panic.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// merge/unmerge/refresh need CAP_SYS_ADMIN; checking root up front gives systemd's clear message.
pub fn require_privileges() -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        anyhow::bail!("Need to be privileged (run as root).");
    }
    Ok(())
}

/// Run `f` for every class while holding the run lock of each root involved; a failing class is
/// logged and the next one still runs (exit status 1 if any failed).
pub fn for_each_class_locked<T>(
    classes: &[crate::settings::ClassSettings],
    verb: &str,
    mut f: impl FnMut(&crate::settings::ClassSettings) -> anyhow::Result<T>,
) -> anyhow::Result<(i32, Vec<T>)> {
    require_privileges()?;
    let _locks = classes
        .iter()
        .map(|s| crate::kernel::lock::lock_path_for(&s.root))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|p| crate::kernel::lock::acquire(&p, crate::kernel::lock::DEFAULT_TIMEOUT))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut code = EXIT_SUCCESS;
    let mut outcomes = Vec::new();
    for s in classes {
        match f(s) {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                tracing::error!(CLASS = s.class.name(), "{} {verb} failed: {e:#}", s.class);
                code = EXIT_FAILURE;
            }
        }
    }
    Ok((code, outcomes))
}
