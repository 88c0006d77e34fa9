//! `check`: report conflicts between the extensions a merge would use, without merging
//! (the pipeline is [`crate::merge::check`]); this verb prints the result.

use crate::decide::conflicts::ConflictPolicy;
use crate::merge::check::{check_class, ClassReport};
use crate::settings::ClassSettings;
use crate::verbs::{print_json, JsonMode, EXIT_FAILURE, EXIT_SUCCESS};
use anyhow::Result;

/// Check every class under its own conflict policy (as `merge` applies it); print a table or
/// JSON; exit 1 only when a class under `refuse` has conflicts.
///
/// `off` still reports (checking is what was asked for) but never fails.
pub fn run(classes: &[ClassSettings], json: JsonMode) -> Result<i32> {
    let mut code = EXIT_SUCCESS;
    let mut reports = Vec::new();
    let mut refused = false;
    for s in classes {
        match check_class(s, s.check_conflicts, None) {
            Ok(r) => {
                refused |= s.check_conflicts == ConflictPolicy::Refuse && !r.conflicts.is_empty();
                reports.push(r);
            }
            Err(e) => {
                tracing::error!(CLASS = s.class.name(), "{} check failed: {e:#}", s.class);
                code = EXIT_FAILURE;
            }
        }
    }
    if json != JsonMode::Off {
        print_json(json, &reports)?;
    } else {
        let mut text = render(&reports);
        if code != EXIT_SUCCESS {
            // A class that could not be checked has not been shown to be free of conflicts.
            text = text.replace("No conflicts found.\n", "");
        }
        crate::verbs::print_text(&text)?;
    }
    if refused {
        code = EXIT_FAILURE;
    }
    Ok(code)
}

/// Render reports as one aligned table (KIND PATH WINNER PROVIDERS DETAIL), then ignored images.
pub fn render(reports: &[ClassReport]) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    for r in reports {
        for c in &r.conflicts {
            rows.push([
                c.kind.to_string(),
                c.path.clone(),
                c.winner.clone(),
                c.providers.join(","),
                c.detail.clone(),
            ]);
        }
    }
    let mut s = String::new();
    if rows.is_empty() {
        s.push_str("No conflicts found.\n");
    } else {
        rows.insert(
            0,
            ["KIND", "PATH", "WINNER", "PROVIDERS", "DETAIL"].map(String::from),
        );
        let mut widths = [0usize; 4];
        for r in &rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(r[i].chars().count());
            }
        }
        for r in &rows {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                line.push_str(&format!("{:<w$}  ", r[i], w = *w));
            }
            line.push_str(&r[4]);
            s.push_str(line.trim_end());
            s.push('\n');
        }
    }
    for r in reports {
        for i in &r.ignored {
            s.push_str(&format!("Ignored {} '{}': {}\n", r.class, i.name, i.reason));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::ImageClass;
    use crate::settings::{resolve, CliOptions};
    use std::path::Path;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn settings(root: &Path) -> ClassSettings {
        let cli = CliOptions {
            root: Some(root.to_path_buf()),
            ..Default::default()
        };
        resolve(&cli, ImageClass::Sysext, &|_| None).unwrap()
    }

    /// Directory extensions are checked without any mount (so also unprivileged).
    #[test]
    fn directory_extensions_are_checked_without_mounting() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(root, "usr/lib/os-release", "ID=debian\nVERSION_ID=13\n");
        write(root, "usr/bin/host", "host\n");
        for n in ["a", "b"] {
            let rel =
                format!("var/lib/extensions/{n}/usr/lib/extension-release.d/extension-release.{n}");
            write(root, &rel, "ID=_any\n");
            write(root, &format!("var/lib/extensions/{n}/usr/bin/tool"), n);
        }
        write(root, "var/lib/extensions/b/usr/bin/host", "b\n");
        let rep = check_class(&settings(root), ConflictPolicy::Warn, None).unwrap();
        let got: Vec<(&str, &str)> = rep
            .conflicts
            .iter()
            .map(|c| (c.kind.as_str(), c.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("shadows-base", "/usr/bin/host"),
                ("same-file", "/usr/bin/tool")
            ]
        );
        let table = render(&[rep]);
        assert!(table.starts_with("KIND"), "{table}");
        assert!(
            table.contains("same-file     /usr/bin/tool  b       a,b"),
            "{table}"
        );
    }

    /// Images are mounted (privately) only as root; otherwise the error says why.
    #[test]
    fn images_need_root_or_are_ignored_when_unreadable() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(root, "usr/lib/os-release", "ID=debian\n");
        write(root, "var/lib/extensions/junk.raw", "not an image");
        let result = check_class(&settings(root), ConflictPolicy::Warn, None);
        if rustix::process::geteuid().is_root() {
            let rep = result.unwrap();
            assert_eq!(rep.ignored.len(), 1);
            assert!(
                rep.ignored[0].reason.contains("cannot open image"),
                "{rep:?}"
            );
        } else {
            let e = format!("{:#}", result.unwrap_err());
            assert!(e.contains("needs root") && e.contains("'junk'"), "{e}");
        }
    }
}
