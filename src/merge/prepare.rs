//! The only writes before gathering: what the merge must find in place. Doing them first keeps
//! gathering read-only, so what is recorded is what the next run will see (the first refresh
//! after a `--mutable=yes` merge skips).

use crate::decide::mutable::{mutable_dir_for, MutableMode};
use crate::kernel::root::{Lookup, Root};
use crate::settings::ClassSettings;
use anyhow::Context;
use std::path::Path;

/// Every write a merge of `s` needs before gathering.
pub fn prepare(root: &Root, s: &ClassSettings) -> anyhow::Result<()> {
    for h in &s.hierarchies {
        ensure_mutable_dir(root, h, s.mutable)?;
    }
    Ok(())
}

/// `--mutable=yes`: create a missing mutable dir (parents 0755, following a dangling final link
/// to its target inside the root like `CHASE_MKDIR_0755`) and give it the hierarchy's mode. An
/// existing dir with another mode is left alone, so the plan reports systemd's EINVAL.
pub fn ensure_mutable_dir(root: &Root, hierarchy: &Path, mode: MutableMode) -> anyhow::Result<()> {
    if mode != MutableMode::Yes {
        return Ok(());
    }
    let hmode = match root
        .resolve_optional(hierarchy)
        .map_err(anyhow::Error::new)?
    {
        Some(h) if h.is_dir() => h.mode() & 0o777,
        _ => 0o755,
    };
    let md = mutable_dir_for(hierarchy);
    let dir = match root.lookup(&md).map_err(anyhow::Error::new)? {
        Lookup::Found(d) if !d.is_dir() => anyhow::bail!(
            "Mutable directory '{}' ('{}') is not a directory",
            md.display(),
            root.show(&d.in_root).display()
        ),
        // systemd fails with EINVAL before touching it.
        Lookup::Found(d) if d.mode() & 0o777 != hmode => return Ok(()),
        Lookup::Found(d) => d,
        Lookup::Missing { .. } => root
            .mkdir_all(&md, 0o755)
            .with_context(|| format!("Failed to chase/create base directory '{}'", md.display()))?,
    };
    let fd = dir.open_dir()?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(hmode)).with_context(|| {
        format!(
            "Failed to chmod directory '{}' to {hmode:04o}",
            root.show(&dir.in_root).display()
        )
    })?;
    tracing::debug!(
        "Mutable directory '{}' is ready ({hmode:04o}).",
        dir.in_root.display()
    );
    Ok(())
}
