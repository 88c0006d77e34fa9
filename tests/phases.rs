//! The per-phase timing lines (issue 17): at debug level each class run sends one journal entry
//! per pipeline phase, with the fields CLASS, PHASE and DURATION_US, to the journal's native
//! socket. The test stands in for journald on a private /run (root, host kernel).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One journal entry: field name → value.
type Entry = BTreeMap<String, String>;

/// Parse one datagram of the journal's native protocol: `KEY=VALUE\n`, or `KEY\n`, a 64-bit
/// little-endian length, the value and `\n`.
fn parse_entry(mut b: &[u8]) -> Entry {
    let mut e = Entry::new();
    while !b.is_empty() {
        let nl = b
            .iter()
            .position(|&c| c == b'\n')
            .expect("a field ends in a newline");
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            let k = String::from_utf8_lossy(&line[..eq]).into_owned();
            e.insert(k, String::from_utf8_lossy(&line[eq + 1..]).into_owned());
            b = &b[nl + 1..];
        } else {
            let k = String::from_utf8_lossy(line).into_owned();
            let rest = &b[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let v = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
            assert_eq!(
                rest[8 + len],
                b'\n',
                "length-encoded field {k} ends in a newline"
            );
            e.insert(k, v);
            b = &rest[9 + len..];
        }
    }
    e
}

/// A private /run with a socket where journald's would be; `extmerge` started with
/// `JOURNAL_STREAM` logs there. Returns the entries of one run and its exit code.
struct FakeJournal {
    socket: UnixDatagram,
}

impl FakeJournal {
    fn new() -> FakeJournal {
        run(Command::new("mount").args(["-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"]));
        std::fs::create_dir_all("/run/systemd/journal").unwrap();
        let socket = UnixDatagram::bind("/run/systemd/journal/socket").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        FakeJournal { socket }
    }

    fn run(&self, root: &Path, args: &[&str]) -> (i32, Vec<Entry>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_extmerge"))
            .args(args)
            .arg(format!("--root={}", root.display()))
            .env("EXTMERGE_LOG", "debug")
            .env("JOURNAL_STREAM", "0:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut entries = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let status = loop {
            match self.socket.recv(&mut buf) {
                Ok(0) => {} // the logger's probe: an empty datagram
                Ok(n) => entries.push(parse_entry(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Some(st) = child.try_wait().unwrap() {
                        break st;
                    }
                }
                Err(e) => panic!("receiving from the fake journal: {e}"),
            }
        };
        // What was sent before the exit and not yet read.
        self.socket.set_nonblocking(true).unwrap();
        while let Ok(n) = self.socket.recv(&mut buf) {
            if n > 0 {
                entries.push(parse_entry(&buf[..n]));
            }
        }
        self.socket.set_nonblocking(false).unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(
            stderr.is_empty(),
            "under the journal nothing goes to stderr: {stderr}"
        );
        (status.code().unwrap_or(-1), entries)
    }
}

impl Drop for FakeJournal {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", "/run"]).status();
    }
}

/// The phase entries of `class`: phase (with `:IMAGE` for per-image entries) → how many,
/// checking each one's duration field.
fn phases_of(entries: &[Entry], class: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in entries.iter().filter(|e| e.contains_key("PHASE")) {
        if e["CLASS"] != class {
            continue;
        }
        let us = e.get("DURATION_US").map(|v| v.parse::<u64>());
        assert!(matches!(us, Some(Ok(_))), "no duration in {e:?}");
        assert_eq!(e["PRIORITY"], "7", "phase lines are debug: {e:?}");
        assert!(e["MESSAGE"].starts_with("Phase "), "{e:?}");
        let key = match e.get("IMAGE") {
            Some(img) => {
                assert!(matches!(
                    e.get("MOUNT_US").map(|v| v.parse::<u64>()),
                    Some(Ok(_))
                ));
                format!("{}:{img}", e["PHASE"])
            }
            None => e["PHASE"].clone(),
        };
        *out.entry(key).or_default() += 1;
    }
    out
}

fn once(names: &[&str]) -> BTreeMap<String, usize> {
    names.iter().map(|n| (n.to_string(), 1)).collect()
}

/// Phases up to the skip decision, which every refresh runs.
const GATHER: &[&str] = &[
    "current",
    "unshare",
    "peel",
    "prepare",
    "base",
    "gather.discover",
    "gather.open",
    "gather.identify",
    "gather.facts",
    "gather",
    "decide",
    "teardown",
    "total",
];

/// The phases of a run that merges.
const MERGING: &[&str] = &[
    "workspace",
    "open",
    "conflicts",
    "assemble.overlay",
    "assemble.record",
    "assemble",
    "attach",
    "unmerge",
    "state",
    "reload",
];

#[test]
fn every_phase_is_logged_once_per_class_with_its_duration_at_debug_level() {
    let t = TestRoot::new(&[]);
    let root = t.path.clone();
    let journal = FakeJournal::new();
    write_files(
        &root,
        &[("usr/lib/os-release", "ID=debian\nVERSION_ID=13\n")],
    );
    let src = root.join("../src/sq");
    write_files(
        &src,
        &[
            (
                "usr/lib/extension-release.d/extension-release.sq",
                "ID=_any\n",
            ),
            ("usr/share/sq", "sq\n"),
        ],
    );
    std::fs::create_dir_all(root.join("var/lib/extensions")).unwrap();
    mkfs_squashfs(&src, &root.join("var/lib/extensions/sq.raw"));
    write_files(
        &root.join("var/lib/extensions/dir"),
        &[
            (
                "usr/lib/extension-release.d/extension-release.dir",
                "ID=_any\n",
            ),
            ("usr/share/dir", "dir\n"),
        ],
    );
    write_files(
        &root.join("var/lib/confexts/conf"),
        &[
            (
                "etc/extension-release.d/extension-release.conf",
                "ID=_any\n",
            ),
            ("etc/conf.conf", "conf\n"),
        ],
    );

    let (code, entries) = journal.run(&root, &["refresh"]);
    assert_eq!(code, 0, "{entries:#?}");
    let mut want = once(GATHER);
    want.extend(once(MERGING));
    let mut sysext = want.clone();
    sysext.extend(once(&["open.image:dir", "open.image:sq"]));
    assert_eq!(phases_of(&entries, "sysext"), sysext);
    want.extend(once(&["open.image:conf"]));
    assert_eq!(phases_of(&entries, "confext"), want);
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/sq")).unwrap(),
        "sq\n"
    );

    // Unchanged: the run ends after the decision, and says so once per phase too.
    let (code, entries) = journal.run(&root, &["refresh"]);
    assert_eq!(code, 77, "{entries:#?}");
    for class in ["confext", "sysext"] {
        assert_eq!(phases_of(&entries, class), once(GATHER), "{class}");
    }

    let (code, _) = journal.run(&root, &["unmerge"]);
    assert_eq!(code, 0);
    drop(journal);
    t.leak.assert_clean();
}
