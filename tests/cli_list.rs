//! End-to-end tests of `extmerge list` and the CLI surface, run against temporary root trees.

mod common;

use common::{extmerge_command as bin, sysext_dir, write_files};
use serde_json::Value;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

fn write(root: &Path, rel: &str, text: &str) {
    write_files(root, &[(rel, text)]);
}

/// A directory sysext `name` at `at` below `root`, with a tool in usr/bin.
fn dir_ext(root: &Path, at: &str, name: &str, release: &str) {
    let tool = format!("usr/bin/{name}-tool");
    sysext_dir(&root.join(at), name, release, &[(&tool, "#!/bin/sh\n")]);
}

fn list_json(root: &Path, class: &str) -> Vec<Value> {
    let out = bin()
        .args(["list", "--json=short", &format!("--class={class}")])
        .arg(format!("--root={}", root.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().clone()
}

fn find<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {rows:?}"))
}

#[test]
fn list_reports_layer_order_status_and_reasons() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "usr/lib/os-release",
        "ID=flatcar\nID_LIKE=coreos\nVERSION_ID=4000.0.0\nSYSEXT_LEVEL=1.0\n",
    );
    dir_ext(
        r,
        "etc/extensions/b-level",
        "b-level",
        "ID=flatcar\nSYSEXT_LEVEL=1.0\n",
    );
    dir_ext(
        r,
        "run/extensions/a-like",
        "a-like",
        "ID=coreos\nVERSION_ID=4000.0.0\n",
    );
    dir_ext(
        r,
        "var/lib/extensions/c-old",
        "c-old",
        "ID=flatcar\nVERSION_ID=3999.0.0\n",
    );
    dir_ext(r, "var/lib/extensions/d-any", "d-any", "ID=_any\n");
    write(r, "var/lib/extensions/e-img.raw", "not really an image");
    write(r, "var/lib/extensions/notes.txt", "x");

    let rows = list_json(r, "sysext");
    let images: Vec<&Value> = rows.iter().filter(|r| r["status"] != "skipped").collect();
    let names: Vec<&str> = images.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a-like", "b-level", "c-old", "d-any", "e-img"]);
    let orders: Vec<u64> = images
        .iter()
        .map(|r| r["order"].as_u64().unwrap())
        .collect();
    assert_eq!(orders, [0, 1, 2, 3, 4]);

    assert_eq!(find(&rows, "a-like")["status"], "accepted");
    assert_eq!(find(&rows, "b-level")["status"], "accepted");
    assert_eq!(find(&rows, "d-any")["status"], "accepted");
    let old = find(&rows, "c-old");
    assert_eq!(old["status"], "ignored");
    assert!(
        old["reason"].as_str().unwrap().contains("VERSION_ID"),
        "{old}"
    );
    let img = find(&rows, "e-img");
    assert_eq!(
        (img["status"].as_str(), img["type"].as_str()),
        (Some("unchecked"), Some("raw"))
    );
    assert_eq!(img["searchDir"], "/var/lib/extensions");

    let skipped: Vec<&Value> = rows.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(
        skipped
            .iter()
            .any(|s| s["pathInRoot"] == "/var/lib/extensions/notes.txt"),
        "{skipped:?}"
    );
}

#[test]
fn list_masks_with_empty_dir_and_dev_null_masks_nothing() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(r, "usr/lib/os-release", "ID=debian\nVERSION_ID=13\n");
    dir_ext(r, "var/lib/extensions/masked", "masked", "ID=_any\n");
    std::fs::create_dir_all(r.join("etc/extensions/masked")).unwrap();
    dir_ext(r, "var/lib/extensions/kept", "kept", "ID=_any\n");
    std::fs::create_dir_all(r.join("run/extensions")).unwrap();
    symlink("/dev/null", r.join("run/extensions/kept.raw")).unwrap();

    let rows = list_json(r, "sysext");
    let masked = find(&rows, "masked");
    assert_eq!(masked["pathInRoot"], "/etc/extensions/masked");
    assert_eq!(
        masked["path"].as_str().unwrap(),
        r.join("etc/extensions/masked").to_str().unwrap()
    );
    assert!(masked["time"].as_u64().unwrap() > 0, "{masked}");
    assert_eq!(masked["status"], "ignored");
    assert!(
        masked["reason"].as_str().unwrap().contains("masks"),
        "{masked}"
    );
    assert!(rows
        .iter()
        .any(|r| r["pathInRoot"] == "/var/lib/extensions/masked" && r["status"] == "skipped"));
    // The /dev/null link resolves inside the root, where there is no /dev/null: it is not an image.
    assert_eq!(find(&rows, "kept")["status"], "accepted");
    assert_eq!(
        find(&rows, "kept")["pathInRoot"],
        "/var/lib/extensions/kept"
    );
}

#[test]
fn list_resolves_absolute_links_inside_root_and_uses_system_scope() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(r, "usr/lib/os-release", "ID=flatcar\nVERSION_ID=1\n");
    // Not an initrd root: an extension limited to the initrd scope is ignored.
    dir_ext(r, "opt/store/tool-2", "tool", "ID=_any\n");
    std::fs::create_dir_all(r.join("etc/extensions")).unwrap();
    symlink("/opt/store/tool-2", r.join("etc/extensions/tool")).unwrap();
    dir_ext(
        r,
        "etc/extensions/early",
        "early",
        "ID=_any\nSYSEXT_SCOPE=initrd\n",
    );

    let rows = list_json(r, "sysext");
    let tool = find(&rows, "tool");
    assert_eq!(tool["pathInRoot"], "/opt/store/tool-2");
    assert_eq!(tool["entry"], "/etc/extensions/tool");
    assert_eq!(tool["status"], "accepted");
    let early = find(&rows, "early");
    assert_eq!(early["status"], "ignored");
    assert!(
        early["reason"].as_str().unwrap().contains("system"),
        "{early}"
    );

    // The same root marked as an initrd: the scope flips.
    write(r, "etc/initrd-release", "ID=flatcar\n");
    let rows = list_json(r, "sysext");
    assert_eq!(find(&rows, "early")["status"], "accepted");
}

#[test]
fn list_confext_and_all_classes_in_merge_order() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(r, "etc/os-release", "ID=flatcar\nVERSION_ID=1\n");
    write(
        r,
        "usr/lib/confexts/00-default/etc/extension-release.d/extension-release.00-default",
        "ID=_any\n",
    );
    dir_ext(
        r,
        "etc/extensions/tool",
        "tool",
        "ID=flatcar\nVERSION_ID=1\n",
    );
    let rows = list_json(r, "all");
    let classes: Vec<&str> = rows.iter().map(|r| r["class"].as_str().unwrap()).collect();
    assert_eq!(classes, ["confext", "sysext"]);
    assert_eq!(rows[0]["status"], "accepted");
}

#[test]
fn list_table_and_empty_message() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(r, "usr/lib/os-release", "ID=debian\n");
    let out = bin()
        .args(["list", "--class=sysext"])
        .arg(format!("--root={}", r.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "No OS extensions found.\n"
    );

    dir_ext(r, "run/extensions/foo", "foo", "ID=debian\n");
    let out = bin()
        .args(["list", "--class=sysext"])
        .arg(format!("--root={}", r.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("CLASS"), "{text}");
    assert!(text.contains("foo") && text.contains("accepted"), "{text}");
    let out = bin()
        .args(["list", "--class=sysext", "--no-legend"])
        .arg(format!("--root={}", r.display()))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("CLASS"));
}

#[test]
fn host_without_id_marks_directories_ignored_with_reason() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(r, "usr/lib/os-release", "NAME=nothing\n");
    dir_ext(r, "run/extensions/foo", "foo", "ID=_any\n");
    let rows = list_json(r, "sysext");
    let foo = find(&rows, "foo");
    assert_eq!(foo["status"], "ignored");
    assert!(foo["reason"].as_str().unwrap().contains("ID"), "{foo}");
}

#[test]
fn help_is_complete_and_usage_errors_exit_2() {
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "status",
        "list",
        "merge",
        "unmerge",
        "refresh",
        "check",
        "--class",
        "--root",
        "--json",
        "--force",
        "--mutable",
        "--image-policy",
        "--noexec",
        "--always-refresh",
        "--no-reload",
        "SYSTEMD_SYSEXT_HIERARCHIES",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let out = bin().args(["list", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("layer order"));

    let out = bin().arg("--mutable=help").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no\nyes\nauto\nimport\nephemeral\nephemeral-import\n"
    );
    let out = bin().arg("--mutable=maybe").arg("list").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn invoked_as_systemd_confext_defaults_to_confext() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    write(&r, "usr/lib/os-release", "ID=debian\n");
    dir_ext(&r, "run/extensions/foo", "foo", "ID=_any\n");
    write(
        &r,
        "run/confexts/bar/etc/extension-release.d/extension-release.bar",
        "ID=_any\n",
    );
    let link = t.path().join("systemd-confext");
    symlink(env!("CARGO_BIN_EXE_extmerge"), &link).unwrap();
    let out = Command::new(&link)
        .args(["list", "--json=short"])
        .arg(format!("--root={}", r.display()))
        .output()
        .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "bar");
}
