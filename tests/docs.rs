//! The README's promises that can be checked without running anything: its list of deliberate
//! differences from systemd-sysext is exactly tests/upstream/deliberate-differences.txt, and every
//! test that list names exists.

use std::collections::BTreeSet;
use std::path::Path;

fn repo_file(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The bold titles of the bullets of README section `heading` (`- **Title.** text`).
fn bullet_titles(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let body = &readme[start + heading.len() + 2..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    body.lines()
        .filter_map(|l| l.strip_prefix("- **"))
        .map(|l| {
            let end = l.find("**").expect("a closed bold title");
            l[..end].to_string()
        })
        .collect()
}

/// A line of the deliberate-differences list.
struct Difference {
    title: String,
    blocks: Vec<String>,
    tests: Vec<String>,
}

fn deliberate_list(text: &str) -> Vec<Difference> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let fields: Vec<&str> = l.split(" | ").collect();
            assert_eq!(fields.len(), 3, "not TITLE | BLOCKS | TESTS: {l}");
            let list = |f: &str| -> Vec<String> {
                f.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty() && x != "-")
                    .collect()
            };
            Difference {
                title: fields[0].trim().to_string(),
                blocks: list(fields[1]),
                tests: list(fields[2]),
            }
        })
        .collect()
}

/// Whether `FILE::NAME` names a test: a `fn NAME(` in FILE, or NAME in a macro's list of
/// generated tests (a line `NAME,`).
fn test_exists(spec: &str) -> bool {
    let Some((file, name)) = spec.split_once("::") else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)) else {
        return false;
    };
    text.contains(&format!("fn {name}(")) || text.lines().any(|l| l.trim() == format!("{name},"))
}

#[test]
fn readme_differences_are_exactly_the_deliberate_list() {
    let readme = repo_file("README.md");
    let in_readme = bullet_titles(&readme, "## Differences from systemd-sysext");
    let list = deliberate_list(&repo_file("tests/upstream/deliberate-differences.txt"));
    let in_list: Vec<String> = list.iter().map(|d| d.title.clone()).collect();
    assert!(!in_list.is_empty(), "the list is empty");
    assert_eq!(
        in_readme.iter().collect::<BTreeSet<_>>(),
        in_list.iter().collect::<BTreeSet<_>>(),
        "README's differences and tests/upstream/deliberate-differences.txt differ"
    );
    assert_eq!(in_readme.len(), in_list.len(), "a title is repeated");
}

#[test]
fn every_deliberate_difference_names_existing_tests() {
    let list = deliberate_list(&repo_file("tests/upstream/deliberate-differences.txt"));
    for d in &list {
        assert!(!d.tests.is_empty(), "{:?} names no test", d.title);
        for t in &d.tests {
            assert!(test_exists(t), "{:?}: no test {t}", d.title);
        }
        for b in &d.blocks {
            assert!(
                b.contains('@'),
                "{:?}: block {b:?} is not NAME@MODE",
                d.title
            );
        }
    }
}

#[test]
fn the_checks_can_fail() {
    assert!(!test_exists("tests/merge.rs::no_such_test_anywhere"));
    assert!(!test_exists("tests/no-such-file.rs::x"));
    let readme = "intro\n## A\n- **One.** x\n- **Two.** y\n## B\n- **Three.** z\n";
    assert_eq!(bullet_titles(readme, "## A"), ["One.", "Two."]);
}
