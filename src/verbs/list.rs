//! `list`: the candidates of each class in layer order, with their status. Mounts nothing.

use crate::class::ImageClass;
use crate::decide::release::{judge, Scope, Verdict};
use crate::gather::discover::{self, ImageKind};
use crate::gather::{host, release};
use crate::kernel::root::Root;
use crate::settings::ClassSettings;
use crate::verbs::{print_json, JsonMode};
use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;

/// What `list` concluded about one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Would be merged.
    Accepted,
    /// Found, but would not be merged (see reason).
    Ignored,
    /// A raw image or block device: its release data is only read when `merge` opens it.
    Unchecked,
    /// A directory entry that is not an image candidate at all (see reason).
    Skipped,
}

/// One row of `list` (stable JSON: fields are only ever added). The first four are
/// `systemd-sysext list --json`'s, with its meaning and in its order; extmerge's follow.
/// Paths are [`crate::log::escape`]d: C-unescaping a path field gives its bytes back.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEntry {
    /// Image name (`null` for skipped entries).
    pub name: Option<String>,
    /// `directory`, `raw` or `block` (`null` for skipped entries).
    #[serde(rename = "type")]
    pub kind: Option<ImageKind>,
    /// Resolved path, root-prefixed as systemd prints it.
    #[serde(serialize_with = "crate::log::serialize_path")]
    pub path: PathBuf,
    /// Modification time, else birth time, in µs (systemd's `mtime ?: crtime`); `null` for
    /// skipped entries.
    pub time: Option<u64>,
    /// Extension class.
    pub class: ImageClass,
    /// Decision.
    pub status: Status,
    /// Why it is ignored, unchecked or skipped.
    pub reason: Option<String>,
    /// Resolved path inside the root.
    #[serde(serialize_with = "crate::log::serialize_path")]
    pub path_in_root: PathBuf,
    /// The directory entry that led to it, inside the root.
    #[serde(serialize_with = "crate::log::serialize_path")]
    pub entry: PathBuf,
    /// Search directory it was found in.
    #[serde(serialize_with = "crate::log::serialize_opt_path")]
    pub search_dir: Option<PathBuf>,
    /// Position in the layer order, 0 = bottom-most extension; the highest number ends up on top.
    pub order: Option<usize>,
}

/// Evaluate one class: discovery plus a compatibility verdict for each directory candidate.
pub fn evaluate(settings: &ClassSettings) -> Result<Vec<ListEntry>> {
    let class = settings.class;
    let root = Root::open(&settings.root)?;
    let initrd = host::host_scope(&root)? == Scope::Initrd;
    let found = discover::discover(&root, class, initrd)?;
    // list mounts nothing and may run unprivileged: the host is read as the root shows it now.
    let host = host::load(&root).map_err(|e| format!("{e:#}"));

    let mut out = Vec::new();
    for (order, c) in found.images.iter().enumerate() {
        let (status, reason) = match c.kind {
            ImageKind::Directory => {
                let facts = root
                    .resolve(&c.path)
                    .map_err(anyhow::Error::new)
                    .and_then(|d| Ok(Root::from_fd(d.fd, root.show(&c.path))?))
                    .map(|tree| release::tree_facts(&tree, class, &c.name, &settings.hierarchies));
                match facts {
                    Ok(facts) => match judge(
                        host.as_ref().map_err(|e| e.as_str()),
                        class,
                        &c.name,
                        true,
                        &facts,
                        settings.force,
                    ) {
                        Verdict::Accept => (Status::Accepted, None),
                        Verdict::Reject(r) => (Status::Ignored, Some(r.to_string())),
                    },
                    Err(e) => (Status::Ignored, Some(format!("cannot read it: {e:#}"))),
                }
            }
            ImageKind::Raw | ImageKind::Block => (
                Status::Unchecked,
                Some("image file: its extension-release is read when merge opens it".to_string()),
            ),
        };
        // systemd records no mtime for plain directories, so their time is the birth time.
        let time = root.resolve(&c.path).ok().and_then(|f| {
            let id = crate::kernel::stat::identity(std::os::fd::AsFd::as_fd(&f.fd)).ok()?;
            Some(match c.kind {
                ImageKind::Directory => id.btime_us,
                _ if id.mtime_us != 0 => id.mtime_us,
                _ => id.btime_us,
            })
        });
        out.push(ListEntry {
            class,
            name: Some(c.name.clone()),
            kind: Some(c.kind),
            path: root.show(&c.path),
            time,
            status,
            reason,
            path_in_root: c.path.clone(),
            entry: c.entry.clone(),
            search_dir: Some(c.search_dir.clone()),
            order: Some(order),
        });
    }
    for s in found.skipped {
        out.push(ListEntry {
            name: None,
            kind: None,
            path: root.show(&s.entry),
            time: None,
            class,
            status: Status::Skipped,
            reason: Some(s.reason),
            path_in_root: s.entry.clone(),
            entry: s.entry,
            search_dir: None,
            order: None,
        });
    }
    Ok(out)
}

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
