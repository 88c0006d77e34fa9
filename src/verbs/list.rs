//! `list`: the candidates of each class in layer order, with their status. Mounts nothing.

use crate::gather::discover::ImageKind;
pub use crate::merge::list::{evaluate, ListEntry, Status};
use crate::settings::ClassSettings;
use crate::verbs::{print_json, JsonMode};
use anyhow::Result;

fn kind_str(k: Option<ImageKind>) -> &'static str {
    match k {
        Some(ImageKind::Directory) => "directory",
        Some(ImageKind::Raw) => "raw",
        Some(ImageKind::Block) => "block",
        None => "-",
    }
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Accepted => "accepted",
        Status::Ignored => "ignored",
        Status::Unchecked => "unchecked",
        Status::Skipped => "skipped",
    }
}

/// Render rows as an aligned table (images first in layer order, then skipped entries).
pub fn render_table(rows: &[ListEntry], legend: bool) -> String {
    let mut lines: Vec<[String; 6]> = Vec::new();
    if legend {
        lines.push(["CLASS", "NAME", "TYPE", "STATUS", "PATH", "REASON"].map(String::from));
    }
    for r in rows {
        lines.push([
            r.class.name().to_string(),
            r.name.clone().unwrap_or_else(|| "-".into()),
            kind_str(r.kind).to_string(),
            status_str(r.status).to_string(),
            crate::log::path(&r.path_in_root),
            crate::log::escape(r.reason.as_deref().unwrap_or_default().as_bytes()),
        ]);
    }
    let mut widths = [0usize; 6];
    for l in &lines {
        for (i, c) in l.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, c) in l.iter().enumerate() {
            if i == 5 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// Run `list` for the selected classes.
pub fn run(classes: &[ClassSettings], json: JsonMode, legend: bool) -> Result<i32> {
    let mut rows = Vec::new();
    for s in classes {
        rows.extend(evaluate(s)?);
    }
    if json != JsonMode::Off {
        print_json(json, &rows)?;
    } else if rows.is_empty() {
        crate::verbs::print_text("No OS extensions found.\n")?;
    } else {
        crate::verbs::print_text(&render_table(&rows, legend))?;
    }
    Ok(super::EXIT_SUCCESS)
}
