//! The service-manager reload on the running system, where no systemd runs (the QEMU scenario
//! `reload_units` covers a booted one): merge and unmerge on `/` itself, in a private mount
//! namespace with fresh tmpfs mounts over `/run` (extensions, workspace, state, and where PID 1's
//! private socket and the system bus socket would be) and `/var/cache` (the hash cache), so
//! nothing reaches the host and no service manager can be reached.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

const MARKER: &str = "/usr/share/extmerge-reload-test/marker";

/// A private namespace in which `/run` and `/var/cache` are empty tmpfs mounts, with a sysext
/// directory in `/run/extensions` whose extension-release has `release` after `ID=_any`.
fn host_with_extension(release: &str) {
    enter_private_mount_ns();
    for dir in ["/run", "/var/cache"] {
        run(Command::new("mount").args(["-t", "tmpfs", "tmpfs", dir]));
    }
    write_files(
        Path::new("/run/extensions/reload-test"),
        &[
            (
                "usr/lib/extension-release.d/extension-release.reload-test",
                &format!("ID=_any\n{release}"),
            ),
            ("usr/share/extmerge-reload-test/marker", "merged\n"),
        ],
    );
}

fn extmerge(args: &[&str]) -> (i32, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_extmerge"))
        .arg("--class=sysext")
        .args(args)
        .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn merged() -> bool {
    Path::new(MARKER).exists()
}

#[test]
fn an_unreachable_service_manager_fails_merge_and_unmerge_once_they_are_done() {
    host_with_extension("EXTENSION_RELOAD_MANAGER=1\nEXTENSION_RESTART_UNITS=\"a.service bad\"\n");
    let unreachable = "cannot reach the service manager (PID 1) to ask for a daemon-reload: \
                       connecting to /run/systemd/private: No such file or directory";
    let invalid = "Invalid unit name 'bad' in EXTENSION_RESTART_UNITS= of reload-test, ignoring.";

    // merge: the overlay is placed first, then PID 1 is asked, which fails the command.
    let (code, err) = extmerge(&["merge"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(unreachable), "{err}");
    assert!(
        err.contains(
            "connecting to the system bus: /run/dbus/system_bus_socket does not exist; is this \
             system running systemd? (--no-reload leaves the service manager alone)"
        ),
        "{err}"
    );
    assert!(err.contains(invalid), "{err}");
    assert!(merged(), "the merge stays in place: {err}");

    // refresh (forced, so not skipped) replaces the merge and asks again.
    let (code, err) = extmerge(&["refresh", "--always-refresh=yes"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(unreachable), "{err}");
    assert!(merged(), "{err}");

    // unmerge: collected before unmounting, asked for after, so the unmerge is done.
    let (code, err) = extmerge(&["unmerge"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(unreachable), "{err}");
    assert!(err.contains(invalid), "{err}");
    assert!(!merged(), "{err}");

    // --no-reload asks nothing: no warning about the unit list either.
    for verb in ["merge", "refresh", "unmerge"] {
        let (code, err) = extmerge(&[verb, "--no-reload", "--always-refresh=yes"]);
        assert_eq!(code, 0, "{verb}: {err}");
        assert!(!err.contains("service manager"), "{verb}: {err}");
        assert!(!err.contains("Invalid unit name"), "{verb}: {err}");
        assert_eq!(merged(), verb != "unmerge", "{verb}: {err}");
    }
}

#[test]
fn extensions_that_ask_nothing_never_contact_the_service_manager() {
    host_with_extension("EXTENSION_RELOAD_MANAGER=0\nEXTENSION_RESTART_UNITS=\n");
    for verb in ["merge", "refresh", "unmerge"] {
        let (code, err) = extmerge(&[verb, "--always-refresh=yes"]);
        assert_eq!(code, 0, "{verb}: {err}");
        assert!(!err.contains("service manager"), "{verb}: {err}");
        assert_eq!(merged(), verb != "unmerge", "{verb}: {err}");
    }
}

#[test]
fn an_unparsable_reload_flag_is_a_warning_and_asks_nothing() {
    host_with_extension("EXTENSION_RELOAD_MANAGER=maybe\n");
    let (code, err) = extmerge(&["merge"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "Failed to parse EXTENSION_RELOAD_MANAGER= of reload-test, ignoring: Invalid argument"
        ),
        "{err}"
    );
    assert!(merged());
    let (code, err) = extmerge(&["unmerge"]);
    assert_eq!(code, 0, "{err}");
    assert!(!merged());
}

#[test]
fn root_implies_no_reload() {
    enter_private_mount_ns();
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    let leak = LeakCheck::new(&root);
    write_files(
        &root,
        &[
            ("usr/lib/os-release", "ID=test\n"),
            (
                "var/lib/extensions/ext/usr/lib/extension-release.d/extension-release.ext",
                "ID=_any\nEXTENSION_RELOAD_MANAGER=1\nEXTENSION_RESTART_UNITS=a.service\n",
            ),
            ("var/lib/extensions/ext/usr/share/ext", "x\n"),
        ],
    );
    let r = format!("--root={}", root.display());
    for verb in ["merge", "unmerge"] {
        let (code, err) = extmerge(&[verb, &r]);
        assert_eq!(code, 0, "{verb}: {err}");
        assert!(!err.contains("service manager"), "{verb}: {err}");
    }
    assert!(!root.join("usr/share/ext").exists());
    leak.assert_clean();
}
