//! What `status` reports: which extensions are merged into which hierarchy, read from the meta
//! directories of the merges (systemd's JSON shape, extmerge's fields after systemd's).

use crate::class::ImageClass;
use crate::decide::skip_record::{Choice, SkipRecord};
use crate::kernel::root::Root;
use crate::meta;
use crate::settings::ClassSettings;
use anyhow::Result;
use serde::Serialize;

/// One row, as `systemd-sysext status --json` prints it (plus extmerge's fields after them).
#[derive(Clone, Debug, Serialize)]
pub struct StatusRow {
    /// Hierarchy as configured (a path inside the root).
    pub hierarchy: String,
    /// Names of the merged extensions; empty when the hierarchy is not merged (systemd 262).
    pub extensions: Vec<String>,
    /// Merge time in µs since the epoch (mtime of the merged root), `null` when not merged.
    pub since: Option<u64>,
    /// Extension class.
    pub class: ImageClass,
    /// Which refresh-skip record extmerge wrote for the root's systemd (`none`, `systemd-258`,
    /// `systemd-260`); `null` when not merged, or not by extmerge.
    #[serde(rename = "skipRecord")]
    pub skip_record: Option<SkipRecord>,
    /// Why that record.
    #[serde(rename = "skipRecordReason")]
    pub skip_record_reason: Option<String>,
}

/// The refresh-skip choice extmerge recorded in the merge `m`; none for a merge made by systemd
/// or a record that cannot be read (status reports, it does not judge).
fn recorded_choice(m: &meta::Merged, s: &ClassSettings) -> Option<Choice> {
    match crate::merge::record::read_state(m, s) {
        Ok(sf) => sf.map(|sf| sf.state.skip_record),
        Err(e) => {
            tracing::debug!(
                "No refresh-skip record format to show for {}: {e:#}",
                m.shown.display()
            );
            None
        }
    }
}

/// Rows for one class, sorted by hierarchy; hierarchies that do not exist are left out.
pub fn rows(s: &ClassSettings) -> Result<Vec<StatusRow>> {
    let root = Root::open(&s.root)?;
    let mut out = Vec::new();
    for h in &s.hierarchies {
        if root
            .resolve_optional(h)
            .map_err(anyhow::Error::new)?
            .is_none()
        {
            continue;
        }
        // systemd prints the hierarchy as configured, also with --root.
        let display = h.display().to_string();
        if let Some(m) = meta::inspect(&root, h, s.class)? {
            let st = &m.top.stat;
            let since = (st.st_mtime.max(0) as u64) * 1_000_000 + st.st_mtime_nsec / 1000;
            let choice = recorded_choice(&m, s);
            out.push(StatusRow {
                hierarchy: display,
                extensions: m.info.extensions,
                since: Some(since),
                class: s.class,
                skip_record: choice.as_ref().map(|c| c.record),
                skip_record_reason: choice.map(|c| c.reason),
            });
        } else {
            out.push(StatusRow {
                hierarchy: display,
                extensions: Vec::new(),
                since: None,
                class: s.class,
                skip_record: None,
                skip_record_reason: None,
            });
        }
    }
    out.sort_by(|a, b| a.hierarchy.cmp(&b.hierarchy));
    Ok(out)
}
