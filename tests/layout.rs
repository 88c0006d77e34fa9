//! The module map's rules (DESIGN.md "Rules that make the layout worth having"), checked over
//! the source so that a change breaking one fails here instead of in review: `decide/` and
//! `ondisk/` are pure, `gather/` never writes, `unsafe` lives only in `kernel/`.

use std::path::{Path, PathBuf};

/// The non-test code of every `.rs` file below `src/<folder>`: files named `tests.rs` or inside
/// a `tests/` folder are skipped, and an inline test module (`#[cfg(test)]` then `mod tests`)
/// ends a file's code.
fn code_of(folder: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(folder);
    let mut out = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tests") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "tests.rs")
            {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, strip_tests(&text)));
            }
        }
    }
    assert!(!out.is_empty(), "no source found in {}", dir.display());
    out
}

/// `text` up to its inline test module, without comment lines.
fn strip_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].contains("mod tests"))
        .unwrap_or(lines.len());
    lines[..end]
        .iter()
        .filter(|l| !l.trim_start().starts_with("//"))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `(file, line)` of `folder`'s code that contains one of `words`.
fn offenders(folder: &str, words: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, code) in code_of(folder) {
        for line in code.lines() {
            if let Some(w) = words.iter().find(|w| contains_word(line, w)) {
                found.push(format!("{}: `{w}` in: {}", path.display(), line.trim()));
            }
        }
    }
    found
}

/// `line` holds `word` not preceded by an identifier character (`nix::` is not in `unix::`).
fn contains_word(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(i, _)| {
        !line[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// What doing I/O looks like in Rust source.
const IO: &[&str] = &[
    "std::fs",
    "fs::File",
    "rustix",
    "libc::",
    "nix::",
    "std::process",
    "std::net",
    "crate::kernel",
    "crate::chase",
];

#[test]
fn decide_is_pure() {
    let found = offenders("decide", IO);
    assert!(
        found.is_empty(),
        "decide/ must not do I/O:\n{}",
        found.join("\n")
    );
}

#[test]
fn ondisk_only_parses_bytes() {
    let found = offenders("ondisk", IO);
    assert!(
        found.is_empty(),
        "ondisk/ parses bytes handed to it:\n{}",
        found.join("\n")
    );
}

#[test]
fn gather_never_writes() {
    let found = offenders(
        "gather",
        &[
            "write_atomic",
            "mkdir_all",
            "remove_tree",
            "fs::write",
            "create_dir",
            "remove_file",
            "remove_dir",
            "fs::rename",
            "set_permissions",
            "OpenOptions",
            "attach",
            "fsmount",
        ],
    );
    assert!(
        found.is_empty(),
        "gather/ only reads:\n{}",
        found.join("\n")
    );
}

#[test]
fn unsafe_is_allowed_for_kernel_only() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("#![deny(unsafe_code)]"),
        "lib.rs denies unsafe"
    );
    let allows: Vec<&str> = lib
        .lines()
        .skip_while(|l| !l.contains("#[allow(unsafe_code)]"))
        .take(2)
        .collect();
    assert_eq!(allows.len(), 2, "one allow, on a module");
    assert_eq!(allows[1].trim(), "pub mod kernel;", "{allows:?}");
    let mut others = Vec::new();
    for folder in [
        "decide", "gather", "merge", "image", "ondisk", "settings", "verbs", "initrd",
    ] {
        others.extend(offenders(
            folder,
            &["allow(unsafe_code)", "unsafe {", "unsafe fn"],
        ));
    }
    assert!(
        others.is_empty(),
        "unsafe outside kernel/:\n{}",
        others.join("\n")
    );
}

#[test]
fn the_stripper_sees_code_and_drops_test_modules() {
    let text = "use std::fs;\n// std::fs in a comment\nfn a() {}\n#[cfg(test)]\nmod tests {\n    use std::process;\n}\n";
    let code = strip_tests(text);
    assert!(code.contains("use std::fs;"));
    assert!(
        !code.contains("comment") && !code.contains("process"),
        "{code}"
    );
}
