//! `check --os-release=FILE`: before an A/B update is applied, which extensions would stop
//! matching the new OS version, and (on Flatcar) which images the selection would then need.
//!
//! An updater stages the new images first (e.g. `flatcar-NAME-NEWVERSION.raw`), runs this
//! again, and only then switches partitions: nothing disappears from the next boot unseen.

use crate::decide::conflicts::ConflictPolicy;
use crate::decide::release::{self, HostInfo};
use crate::initrd::flatcar::{self, Action};
use crate::kernel::root::{read_bounded, Root};
use crate::merge::check::{self, ClassReport, UpdateVerdict};
use crate::settings::ClassSettings;
use crate::verbs::{print_json, JsonMode, EXIT_FAILURE, EXIT_SUCCESS};
use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The whole answer (stable JSON: fields are only ever added).
#[derive(Debug, Serialize)]
pub struct UpdateReport {
    /// The os-release file of the update.
    pub os_release: PathBuf,
    /// Its `VERSION_ID=` (if any).
    pub version_id: Option<String>,
    /// Per class, every candidate judged now and after the update.
    pub classes: Vec<ClassUpdate>,
    /// Extensions that match now but would not after the update (`CLASS:NAME`).
    pub would_stop: Vec<String>,
    /// Flatcar selection for the new version: images to stage before updating.
    pub flatcar_missing: Vec<Action>,
}

/// One class's verdicts.
#[derive(Debug, Serialize)]
pub struct ClassUpdate {
    /// Extension class.
    pub class: crate::class::ImageClass,
    /// Every candidate, in layer order.
    pub extensions: Vec<UpdateVerdict>,
}

/// Read the update's os-release as the root's would be read (same scope and architecture).
/// `file` is the command line's path on the running system (the update's partition is not
/// below the root); everything about the root itself goes through `root`.
fn next_host(root: &Root, file: &Path) -> Result<(HostInfo, String)> {
    let ctx = || format!("cannot read the update's os-release {}", file.display());
    let f = std::fs::File::open(file).with_context(ctx)?;
    if !f.metadata().with_context(ctx)?.is_file() {
        anyhow::bail!("{}: not a regular file", file.display());
    }
    let bytes = read_bounded(f, crate::limits::OS_RELEASE_ARG).with_context(ctx)?;
    let text =
        String::from_utf8(bytes).map_err(|_| anyhow!("{}: not valid UTF-8", file.display()))?;
    // One read: the same text gives the matching identity and the Flatcar image version.
    let (data, _) = release::parse_env(&text);
    let host = HostInfo::from_release(
        &data,
        crate::gather::host::host_scope(root)?,
        &crate::kernel::features::uname_architecture(),
        file,
    )
    .map_err(|e| anyhow!(e))?;
    Ok((host, text))
}

/// Exit 1 when an extension that matches now would stop matching, or a Flatcar image for the
/// new version is missing; 0 when the update loses nothing.
pub fn run(classes: &[ClassSettings], os_release: &Path, json: JsonMode) -> Result<i32> {
    let Some(first) = classes.first() else {
        return Ok(EXIT_SUCCESS);
    };
    let root = Root::open(&first.root)?;
    let (next, text) = next_host(&root, os_release)?;
    let mut report = UpdateReport {
        os_release: os_release.to_path_buf(),
        version_id: next.version_id.clone(),
        classes: Vec::new(),
        would_stop: Vec::new(),
        flatcar_missing: Vec::new(),
    };
    for s in classes {
        let r: ClassReport = check::check_class(s, ConflictPolicy::Off, Some(&next))?;
        let extensions = r.update.unwrap_or_default();
        for v in extensions
            .iter()
            .filter(|v| v.matches_now && !v.matches_next)
        {
            report.would_stop.push(format!("{}:{}", s.class, v.name));
        }
        report.classes.push(ClassUpdate {
            class: s.class,
            extensions,
        });
    }
    if flatcar::is_flatcar(&root)? {
        if let Some(version) = flatcar::image_version(&text) {
            let inputs = flatcar::gather_version(&root, version, &text)?;
            report.flatcar_missing = flatcar::plan(&inputs)
                .into_iter()
                .filter(|a| matches!(a, Action::Missing { .. }))
                .collect();
        }
    }
    if json != JsonMode::Off {
        print_json(json, &report)?;
    } else {
        crate::verbs::print_text(&render(&report))?;
    }
    Ok(
        if report.would_stop.is_empty() && report.flatcar_missing.is_empty() {
            EXIT_SUCCESS
        } else {
            EXIT_FAILURE
        },
    )
}

/// A table (CLASS NAME NOW AFTER REASON), then what to stage.
pub fn render(r: &UpdateReport) -> String {
    let verdict = |b: bool| if b { "match" } else { "no match" };
    let mut rows = vec![["CLASS", "NAME", "NOW", "AFTER"].map(String::from).to_vec()];
    let mut reasons = vec![String::from("REASON")];
    for c in &r.classes {
        for v in &c.extensions {
            rows.push(vec![
                c.class.to_string(),
                v.name.clone(),
                verdict(v.matches_now).to_string(),
                verdict(v.matches_next).to_string(),
            ]);
            reasons.push(v.reason_next.clone().unwrap_or_default());
        }
    }
    let mut out = String::new();
    if rows.len() > 1 {
        let mut widths = [0usize; 4];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for (row, reason) in rows.iter().zip(&reasons) {
            let mut line = String::new();
            for (w, cell) in widths.iter().zip(row) {
                line.push_str(&format!("{cell:<w$}  ", w = *w));
            }
            line.push_str(reason);
            out.push_str(line.trim_end());
            out.push('\n');
        }
    } else {
        out.push_str("No extensions found.\n");
    }
    let version = r.version_id.as_deref().unwrap_or("(no VERSION_ID)");
    if r.would_stop.is_empty() {
        out.push_str(&format!(
            "Every extension that matches now also matches VERSION_ID={version}.\n"
        ));
    } else {
        out.push_str(&format!(
            "Would stop matching after the update to VERSION_ID={version}: {}\n",
            r.would_stop.join(", ")
        ));
    }
    for a in &r.flatcar_missing {
        out.push_str(&format!("Stage before updating: {a}\n"));
    }
    out
}
