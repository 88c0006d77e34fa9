//! Golden roots: each `tests/fixtures/CASE/` holds a root tree (`root/`), the command line
//! (`args`, one argument per line; `--root=` is added), optionally an environment (`env`,
//! `KEY=VALUE` lines) and a log filter (`log-grep`: the stderr lines containing it are compared),
//! and the expected results: `exit`, `stdout`, `log`. The policies that need no privileges —
//! discovery and judgement (`list --json`), configuration precedence, Flatcar's selection plan
//! (`flatcar-select --dry-run`), conflicts (`check --json`) — are pinned down here as plain files
//! a reviewer can read.
//!
//! Outputs are normalised before comparing: the root's absolute path becomes `<root>` and a
//! `"time"` value (a file time of the checkout) becomes `"<time>"`. `EXTMERGE_BLESS=1` rewrites
//! the expected files from the current outputs (review the diff before committing it).

mod common;

use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn lines(p: &Path) -> Vec<String> {
    match std::fs::read_to_string(p) {
        Ok(t) => t.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("reading {}: {e}", p.display()),
    }
}

/// `text` with the root's path and file times made independent of the checkout.
fn normalise(text: &str, root: &Path) -> String {
    let text = text.replace(&root.display().to_string(), "<root>");
    let mut out = String::new();
    for line in text.lines() {
        match line.find("\"time\":") {
            Some(i) => {
                let (head, tail) = line.split_at(i + "\"time\":".len());
                let value = tail.trim_start();
                let digits = value.chars().take_while(char::is_ascii_digit).count();
                if digits > 0 {
                    out.push_str(head);
                    out.push_str(&tail[..tail.len() - value.len()]);
                    out.push_str("\"<time>\"");
                    out.push_str(&value[digits..]);
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Run one case; returns the differences from what is expected (empty: it passes).
fn run_case(dir: &Path) -> Vec<String> {
    let root = dir.join("root");
    let mut cmd = common::extmerge_command();
    cmd.args(lines(&dir.join("args")))
        .arg(format!("--root={}", root.display()))
        .env("EXTMERGE_LOG", "debug")
        .env_remove("SYSTEMD_SYSEXT_MUTABLE_MODE")
        .env_remove("SYSTEMD_CONFEXT_MUTABLE_MODE")
        .env("SYSTEMD_PROC_CMDLINE", "");
    for kv in lines(&dir.join("env")) {
        let (k, v) = kv.split_once('=').expect("env lines are KEY=VALUE");
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running extmerge");
    let grep = lines(&dir.join("log-grep"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log: String = stderr
        .lines()
        .filter(|l| grep.iter().any(|g| l.contains(g.as_str())))
        .map(|l| format!("{l}\n"))
        .collect();
    let got = [
        ("exit", format!("{}\n", out.status.code().unwrap_or(-1))),
        (
            "stdout",
            normalise(&String::from_utf8_lossy(&out.stdout), &root),
        ),
        ("log", normalise(&log, &root)),
    ];
    let bless = std::env::var_os("EXTMERGE_BLESS").is_some();
    let mut diffs = Vec::new();
    for (name, text) in got {
        let path = dir.join(name);
        if name == "log" && grep.is_empty() {
            continue;
        }
        if bless {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != text {
            diffs.push(format!(
                "{}: expected:\n{want}\ngot:\n{text}\n(stderr:\n{stderr})",
                path.display()
            ));
        }
    }
    diffs
}

fn case(name: &str) {
    let dir = fixtures().join(name);
    assert!(dir.join("root").is_dir(), "no fixture {}", dir.display());
    let diffs = run_case(&dir);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn list_sysext() {
    case("list-sysext");
}

#[test]
fn config_precedence() {
    case("config-precedence");
}

#[test]
fn check_json() {
    case("check-json");
}

#[test]
fn flatcar_select_dry_run() {
    case("flatcar-select");
}

#[test]
fn every_fixture_has_a_test() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "check-json",
            "config-precedence",
            "flatcar-select",
            "list-sysext"
        ]
    );
    let root = Path::new("/x/root");
    assert_eq!(
        normalise("  \"time\": 123,\n\"path\": \"/x/root/a\"", root),
        "  \"time\": \"<time>\",\n\"path\": \"<root>/a\"\n"
    );
}
