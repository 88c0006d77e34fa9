//! The refresh-skip record extmerge writes for the root's systemd generation (Flatcar facts
//! sheet §4): chosen from the root's `systemd-sysext` and libraries, written field for field,
//! logged, shown by `status --json`, and rebuilt when the root's systemd changes.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};

const SKIP: &str = "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh.";

/// Bytes laid out like a dynamically linked systemd-sysext of `major`, with or without the skip.
fn fake_sysext(major: u32, skip_logic: bool) -> Vec<u8> {
    let mut b = b"\x7fELF\x02\x01\x01\0".to_vec();
    b.extend_from_slice(format!("libsystemd-shared-{major}.so\0libc.so.6\0").as_bytes());
    if skip_logic {
        b.extend_from_slice(SKIP.as_bytes());
    }
    b.push(0);
    b
}

struct Fixture {
    t: TestRoot,
    root: PathBuf,
    /// The root's `usr/bin` below any merge (a merged `/usr` is read-only).
    bin_dir: std::fs::File,
}

impl Fixture {
    /// A Flatcar-like root (`VERSION_ID` given) with a directory sysext and confext.
    fn flatcar(version_id: &str) -> Fixture {
        let t = TestRoot::new(&[]);
        let root = t.path.clone();
        let os = format!("ID=flatcar\nVERSION_ID={version_id}\nSYSEXT_LEVEL=1.0\n");
        write_files(
            &root,
            &[
                ("usr/lib/os-release", os.as_str()),
                ("usr/share/host", "h"),
                ("etc/hostname", "box\n"),
                (
                    "var/lib/extensions/a/usr/lib/extension-release.d/extension-release.a",
                    "ID=_any\n",
                ),
                ("var/lib/extensions/a/usr/share/a", "a"),
                (
                    "var/lib/confexts/c/etc/extension-release.d/extension-release.c",
                    "ID=_any\n",
                ),
                ("var/lib/confexts/c/etc/c.conf", "c"),
            ],
        );
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        let bin_dir = std::fs::File::open(root.join("usr/bin")).unwrap();
        Fixture { t, root, bin_dir }
    }

    /// Put a systemd of `major` into the root's base `/usr` (`None`: take it away).
    fn systemd(&self, sysext: Option<(u32, bool)>) {
        use std::os::fd::AsRawFd;
        let bin = format!("/proc/self/fd/{}/systemd-sysext", self.bin_dir.as_raw_fd());
        let _ = std::fs::remove_file(&bin);
        if let Some((major, skip)) = sysext {
            std::fs::write(&bin, fake_sysext(major, skip)).unwrap();
        }
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        extmerge_command()
            .args(args)
            .arg(format!("--root={}", self.root.display()))
            .env("EXTMERGE_LOG", "info")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// Run, insisting on success; stderr.
    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "extmerge {args:?}: {log}");
        log
    }

    fn origin(&self, meta: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(meta).join("origin")).ok()
    }

    fn status(&self) -> Vec<Value> {
        json_rows(&self.run(&["status", "--json=short"], &[]))
    }

    fn finish(self) {
        self.ok(&["unmerge"], &[]);
        self.t.leak.assert_clean();
    }
}

/// The top-level keys of a record, in the order written.
fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn each_generation_gets_its_own_record_and_the_rest_is_the_same() {
    let f = Fixture::flatcar("4694.1.1");
    let opts = [("SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS", "redirect_dir=on")];
    let mut records = Vec::new();
    for major in [258, 262] {
        f.systemd(Some((major, true)));
        f.ok(&["--class=sysext", "merge"], &opts);
        let text = f.origin("usr/.systemd-sysext").expect("a record");
        records.push(serde_json::from_str::<Value>(&text).unwrap());
        f.ok(&["--class=sysext", "unmerge"], &[]);
    }
    let (r258, r262) = (&records[0], &records[1]);
    assert_eq!(r258["mutable"], json!({"mode": 0}), "{r258}");
    assert_eq!(
        keys(r258),
        ["mutable", "extensions"],
        "258 has no mountOptions"
    );
    assert_eq!(r262["mutable"], json!({"mode": "no"}), "{r262}");
    assert_eq!(keys(r262), ["mutable", "mountOptions", "extensions"]);
    assert_eq!(r262["mountOptions"], "redirect_dir=on");
    assert_eq!(
        r258["extensions"], r262["extensions"],
        "the same image has the same entry in both"
    );
    let a = &r262["extensions"]["a"];
    assert_eq!(a["path"], "/var/lib/extensions/a");
    assert_eq!(a["mtime"], 0, "a plain directory records no mtime");
    f.finish();
}

#[test]
fn a_systemd_without_skip_logic_gets_no_record_and_one_warning_a_run() {
    let f = Fixture::flatcar("4593.2.5");
    f.systemd(Some((257, false)));
    let log = f.ok(&["merge"], &[]);
    assert_eq!(f.origin("usr/.systemd-sysext"), None, "{log}");
    assert_eq!(f.origin("etc/.systemd-confext"), None, "{log}");
    assert!(
        std::fs::read_to_string(f.root.join("usr/.systemd-sysext/dev")).is_ok(),
        "the rest of the meta dir is there"
    );
    let why = "/usr/bin/systemd-sysext has no refresh-skip logic (systemd 257 or older, or upstream 258/259)";
    for class in ["confext", "sysext"] {
        let line = format!(
            "Writing no refresh-skip record for the booted system's {class} refresh: {why}."
        );
        assert_eq!(log.matches(&line).count(), 1, "{line}\n{log}");
    }
    let warning = "The root's systemd cannot skip an unchanged refresh: the booted system's stock systemd-sysext/systemd-confext refresh will unmerge and merge again (remounting /usr, /opt and /etc). extmerge's booted-system units avoid that: see README, 'In the booted system'.";
    assert_eq!(log.matches(warning).count(), 1, "once a run: {log}");
    for row in f
        .status()
        .iter()
        .filter(|r| r["hierarchy"] == "/usr" || r["hierarchy"] == "/etc")
    {
        assert_eq!(row["skipRecord"], "none", "{row}");
        assert_eq!(row["skipRecordReason"], why, "{row}");
    }
    f.finish();
}

#[test]
fn the_log_and_status_say_which_record_and_why() {
    let f = Fixture::flatcar("4694.1.1");
    f.systemd(Some((258, true)));
    let log = f.ok(&["--class=sysext", "merge"], &[]);
    let why = "/usr/bin/systemd-sysext has refresh-skip logic and links libsystemd-shared-258.so: systemd 258 has it only as Flatcar's backport, which reads the mutable mode as an integer";
    let line = format!("Writing the systemd 258 refresh-skip record (Flatcar's backport: integer mutable mode) for the booted system's sysext refresh: {why}.");
    assert_eq!(log.matches(&line).count(), 1, "{log}");
    assert!(!log.contains("cannot skip an unchanged refresh"), "{log}");
    let rows = f.status();
    let usr = rows.iter().find(|r| r["hierarchy"] == "/usr").unwrap();
    assert_eq!(
        keys(usr),
        [
            "hierarchy",
            "extensions",
            "since",
            "class",
            "skipRecord",
            "skipRecordReason"
        ],
        "systemd's fields lead"
    );
    assert_eq!(usr["skipRecord"], "systemd-258");
    assert_eq!(usr["skipRecordReason"], why);
    let opt = rows.iter().find(|r| r["hierarchy"] == "/opt");
    assert!(opt.is_none_or(|o| o["skipRecord"].is_null()), "{opt:?}");
    f.finish();
}

#[test]
fn a_root_whose_systemd_changed_gets_a_new_record_on_refresh() {
    let f = Fixture::flatcar("4694.1.1");
    f.systemd(Some((262, true)));
    f.ok(&["--class=sysext", "merge"], &[]);
    let before: Value = serde_json::from_str(&f.origin("usr/.systemd-sysext").unwrap()).unwrap();
    assert_eq!(before["mutable"]["mode"], "no");
    f.systemd(Some((258, true)));
    let out = f.run(&["--class=sysext", "refresh"], &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("Refreshing sysext: systemd's refresh-skip record format changed (systemd-260 → systemd-258)."),
        "{log}"
    );
    let after: Value = serde_json::from_str(&f.origin("usr/.systemd-sysext").unwrap()).unwrap();
    assert_eq!(after["mutable"]["mode"], 0);
    assert_eq!(after["extensions"], before["extensions"]);
    let again = f.run(&["--class=sysext", "refresh"], &[]);
    assert_eq!(again.status.code(), Some(77), "unchanged now");
    f.finish();
}

#[test]
fn without_a_systemd_in_the_root_the_build_number_then_upstream_decide() {
    let f = Fixture::flatcar("4669.0.0");
    f.systemd(None);
    f.ok(&["--class=sysext", "merge"], &[]);
    let r: Value = serde_json::from_str(&f.origin("usr/.systemd-sysext").unwrap()).unwrap();
    assert_eq!(
        r["mutable"]["mode"], 0,
        "Flatcar 4669 ships the 258 backport"
    );
    f.ok(&["--class=sysext", "unmerge"], &[]);
    // Not Flatcar and nothing else to go by: upstream's record.
    std::fs::write(
        f.root.join("usr/lib/os-release"),
        "ID=debian\nVERSION_ID=13\n",
    )
    .unwrap();
    f.ok(&["--class=sysext", "merge"], &[]);
    let r: Value = serde_json::from_str(&f.origin("usr/.systemd-sysext").unwrap()).unwrap();
    assert_eq!(r["mutable"]["mode"], "no");
    let rows = f.status();
    let usr = rows.iter().find(|r| r["hierarchy"] == "/usr").unwrap();
    assert_eq!(
        usr["skipRecordReason"],
        "/usr/bin/systemd-sysext is not in the root and no other file tells its systemd generation: writing upstream's record"
    );
    f.finish();
}

/// A block device and a btrfs subvolume, as systemd's `image_make()` records them.
#[test]
fn block_devices_and_btrfs_subvolumes_record_systemds_times() {
    let f = Fixture::flatcar("4757.1.0");
    f.systemd(Some((260, true)));
    let src = f.root.parent().unwrap().join("src");
    write_files(
        &src,
        &[
            (
                "usr/lib/extension-release.d/extension-release.blk",
                "ID=_any\n",
            ),
            ("usr/share/blk", "b"),
        ],
    );
    let img = f.root.parent().unwrap().join("blk.img");
    mkfs_squashfs(&src, &img);
    let lo = WritableLoop::attach(&img);
    lo.node_at(&f.root.join("var/lib/extensions/blk"));
    let store = f.root.join("run/extensions");
    std::fs::create_dir_all(&store).unwrap();
    mount_fresh_btrfs(&f.root.parent().unwrap().join("sub.img"), &store);
    run(Command::new("btrfs")
        .args(["-q", "subvolume", "create"])
        .arg(store.join("sub")));
    write_files(
        &store.join("sub"),
        &[
            (
                "usr/lib/extension-release.d/extension-release.sub",
                "ID=_any\n",
            ),
            ("usr/share/sub", "s"),
        ],
    );
    f.ok(&["--class=sysext", "merge"], &[]);
    let r: Value = serde_json::from_str(&f.origin("usr/.systemd-sysext").unwrap()).unwrap();
    let blk = &r["extensions"]["blk"];
    assert_eq!(
        (&blk["crtime"], &blk["mtime"]),
        (&json!(0), &json!(0)),
        "{r}"
    );
    let sub = &r["extensions"]["sub"];
    assert!(
        sub["mtime"].as_u64().unwrap() > 0,
        "a subvolume's ctime: {r}"
    );
    assert!(sub["crtime"].as_u64().unwrap() > 0, "its otime: {r}");
    f.ok(&["--class=sysext", "unmerge"], &[]);
    run(Command::new("umount").arg(&store));
    drop(lo);
    f.finish();
}
