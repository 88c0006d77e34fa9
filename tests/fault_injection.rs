//! Fault injection (src/failpoint.rs): for every step a run reaches, an injected error and a
//! SIGKILL there must leave every hierarchy exactly in its old or exactly in its new state (never
//! empty, never half merged, never two of our overlays left over after an error), and a re-run
//! must converge to the new state with a coherent state record (the next refresh skips).
//!
//! Each scenario first runs once with `EXTMERGE_FAILPOINT_TRACE` to list the steps it reaches
//! (with their image or hierarchy), then once per step and action. One test per scenario and
//! action, each in its own private mount namespace and temporary root, ending with a leak check.

mod common;

use common::*;
use extmerge::failpoint::STEPS;
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Steps whose failure the code deliberately downgrades to a warning (the run still succeeds).
const BEST_EFFORT: &[&str] = &["before-write-run-state", "after-write-run-state"];

/// Whether a fault at hit `i` of a clean run's trace may leave hierarchy `h` with the new tree
/// still beneath the old one (two of our overlays, the old one visible). Between placing a tree
/// beneath (`after-attach-beneath:H`) and unmounting the old top (`before-unmount-old:H`) a kill
/// or a panic stops the run; an error in place of that unmount means the old top could not be
/// removed, and nothing can take the new tree out from under it. The re-run must reduce the
/// stack to one. Any other fault must leave at most one overlay.
fn may_stack(hits: &[String], i: usize, h: &str, action: &str) -> bool {
    let at = |step: &str| hits.iter().position(|x| *x == format!("{step}:/{h}"));
    let (Some(placed), Some(unmount)) = (at("after-attach-beneath"), at("before-unmount-old"))
    else {
        return false;
    };
    i == unmount || (action != "error" && (placed..=unmount).contains(&i))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Merge,
    Refresh,
    Unmerge,
}

/// One extension variant: class, name, variant (a store sub-directory), format and files.
struct Ext {
    confext: bool,
    name: &'static str,
    variant: &'static str,
    squashfs: bool,
    files: &'static [(&'static str, &'static str)],
}

const A1: Ext = Ext {
    confext: false,
    name: "a",
    variant: "1",
    squashfs: false,
    files: &[("usr/share/a", "a1")],
};
const A2: Ext = Ext {
    confext: false,
    name: "a",
    variant: "2",
    squashfs: false,
    files: &[("usr/share/a", "a2"), ("usr/share/a2-only", "x")],
};
const B1: Ext = Ext {
    confext: false,
    name: "b",
    variant: "1",
    squashfs: true,
    files: &[("usr/share/b", "b1"), ("opt/b/tool", "b1")],
};
const C1: Ext = Ext {
    confext: true,
    name: "00-default",
    variant: "1",
    squashfs: false,
    files: &[("etc/default.conf", "d1"), ("etc/shadowed.conf", "ext")],
};
const D1: Ext = Ext {
    confext: true,
    name: "10-extra",
    variant: "1",
    squashfs: true,
    files: &[("etc/extra.conf", "e1")],
};
const D2: Ext = Ext {
    confext: true,
    name: "10-extra",
    variant: "2",
    squashfs: true,
    files: &[("etc/extra.conf", "e2")],
};
const ALL_EXTS: &[&Ext] = &[&A1, &A2, &B1, &C1, &D1, &D2];

struct Scenario {
    name: &'static str,
    class: &'static str,
    verb: Verb,
    /// Flatcar's /etc: `Mutable=auto` with `extensions.mutable/etc -> /etc` (its own upper).
    mutable_etc: bool,
    /// Upstream's read-only hierarchy layout: the root a shared mount and `/opt` bind-mounted
    /// read-only onto itself, so every mount on `/opt` propagates a copy beneath that bind.
    shared_ro_opt: bool,
    /// Extensions present (and merged, unless `verb` is Merge) before the run.
    old: &'static [&'static Ext],
    /// Extensions present for the run.
    new: &'static [&'static Ext],
}

const SYSEXT_MERGE: Scenario = Scenario {
    name: "sysext merge",
    class: "sysext",
    verb: Verb::Merge,
    mutable_etc: false,
    shared_ro_opt: false,
    old: &[],
    new: &[&A1, &B1],
};
/// /usr is replaced beneath, /opt newly attached, one image changed and one added.
const SYSEXT_REFRESH: Scenario = Scenario {
    name: "sysext refresh (change + add)",
    class: "sysext",
    verb: Verb::Refresh,
    mutable_etc: false,
    shared_ro_opt: false,
    old: &[&A1],
    new: &[&A2, &B1],
};
/// /usr is replaced beneath, /opt unmerged (its only image removed).
const SYSEXT_REFRESH_DROP: Scenario = Scenario {
    name: "sysext refresh (remove)",
    class: "sysext",
    verb: Verb::Refresh,
    mutable_etc: false,
    shared_ro_opt: false,
    old: &[&A1, &B1],
    new: &[&A1],
};
const SYSEXT_UNMERGE: Scenario = Scenario {
    name: "sysext unmerge",
    class: "sysext",
    verb: Verb::Unmerge,
    mutable_etc: false,
    shared_ro_opt: false,
    old: &[&A2, &B1],
    new: &[],
};
/// The refresh above with `/opt` a read-only bind on a shared root (issue: a propagated copy
/// of our own overlay was taken for a leftover and `/opt` was left unmerged).
const SYSEXT_REFRESH_SHARED_RO: Scenario = Scenario {
    name: "sysext refresh (change + add), shared root, read-only /opt bind",
    class: "sysext",
    verb: Verb::Refresh,
    mutable_etc: false,
    shared_ro_opt: true,
    old: &[&A1, &B1],
    new: &[&A2, &B1],
};
const CONFEXT_MUTABLE_MERGE: Scenario = Scenario {
    name: "confext merge, /etc its own upper",
    class: "confext",
    verb: Verb::Merge,
    mutable_etc: true,
    shared_ro_opt: false,
    old: &[],
    new: &[&C1, &D1],
};
const CONFEXT_MUTABLE_REFRESH: Scenario = Scenario {
    name: "confext refresh, /etc its own upper",
    class: "confext",
    verb: Verb::Refresh,
    mutable_etc: true,
    shared_ro_opt: false,
    old: &[&C1, &D1],
    new: &[&C1, &D2],
};
const ALL_SCENARIOS: &[&Scenario] = &[
    &SYSEXT_MERGE,
    &SYSEXT_REFRESH,
    &SYSEXT_REFRESH_DROP,
    &SYSEXT_UNMERGE,
    &SYSEXT_REFRESH_SHARED_RO,
    &CONFEXT_MUTABLE_MERGE,
    &CONFEXT_MUTABLE_REFRESH,
];

const HIERARCHIES: &[(&str, &str)] = &[
    ("usr", ".systemd-sysext"),
    ("opt", ".systemd-sysext"),
    ("etc", ".systemd-confext"),
];

/// What one hierarchy looks like: every visible entry (meta dir aside) and the meta
/// `extensions` file.
type Listing = BTreeMap<String, String>;

struct Fixture {
    t: TestRoot,
    root: PathBuf,
    sc: &'static Scenario,
}

impl Fixture {
    fn new(sc: &'static Scenario) -> Fixture {
        let fixture = TestRoot::new(&[]);
        let root = fixture.path.clone();
        let os = if sc.mutable_etc {
            "ID=flatcar\nVERSION_ID=4000.0.0\n"
        } else {
            "ID=debian\nVERSION_ID=13\n"
        };
        write_files(
            &root,
            &[
                ("usr/lib/os-release", os),
                ("usr/bin/host-tool", "host\n"),
                ("opt/host/keep", "host\n"),
                ("etc/hostname", "box\n"),
                ("etc/shadowed.conf", "host\n"),
            ],
        );
        if sc.mutable_etc {
            write_files(
                &root,
                &[("usr/lib/systemd/confext.conf", "[ConfExt]\nMutable=auto\n")],
            );
            std::fs::create_dir_all(root.join("var/lib/extensions.mutable")).unwrap();
            symlink("/etc", root.join("var/lib/extensions.mutable/etc")).unwrap();
        }
        // The store (not a search dir) holds every variant; search dirs only get links to it.
        for e in ALL_EXTS {
            let build = if e.confext { confext_dir } else { sysext_dir };
            let dir = root.join("store").join(e.variant);
            if e.squashfs {
                let src = fixture.scratch("src").join(e.variant).join(e.name);
                build(&src, e.name, "ID=_any\n", e.files);
                std::fs::create_dir_all(&dir).unwrap();
                mkfs_squashfs(&src, &dir.join(format!("{}.raw", e.name)));
            } else {
                build(&dir.join(e.name), e.name, "ID=_any\n", e.files);
            }
        }
        if sc.shared_ro_opt {
            let (r, opt) = (root.to_str().unwrap(), root.join("opt"));
            let opt = opt.to_str().unwrap();
            run(Command::new("mount").args(["--bind", r, r]));
            run(Command::new("mount").args(["--make-rshared", r]));
            run(Command::new("mount").args(["-o", "bind,ro", opt, opt]));
        }
        let mut t = fixture;
        if sc.shared_ro_opt {
            t.leak = t.leak.with_fixture_mounts();
        }
        Fixture { t, root, sc }
    }

    fn search_dir(&self) -> PathBuf {
        self.root.join(if self.sc.class == "confext" {
            "var/lib/confexts"
        } else {
            "var/lib/extensions"
        })
    }

    /// Make exactly `set` visible to discovery.
    fn place(&self, set: &[&Ext]) {
        let dir = self.search_dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for e in set {
            let file = if e.squashfs {
                format!("{}.raw", e.name)
            } else {
                e.name.to_string()
            };
            symlink(format!("/store/{}/{file}", e.variant), dir.join(&file)).unwrap();
        }
    }

    fn run(&self, verb: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = extmerge_command();
        cmd.arg(format!("--class={}", self.sc.class))
            .arg(format!("--root={}", self.root.display()))
            .arg(verb)
            .env("EXTMERGE_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn ok(&self, verb: &str) -> String {
        let out = self.run(verb, &[]);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "{}: {verb} failed: {log}",
            self.sc.name
        );
        log
    }

    /// Visible state of every hierarchy.
    fn listing(&self) -> BTreeMap<&'static str, Listing> {
        HIERARCHIES
            .iter()
            .map(|(h, meta)| {
                let base = self.root.join(h);
                let mut l = Listing::new();
                walk(&base, &base, meta, &mut l);
                if let Ok(x) = std::fs::read_to_string(base.join(meta).join("extensions")) {
                    l.insert("<meta extensions>".into(), x);
                }
                (*h, l)
            })
            .collect()
    }

    /// Our overlays stacked on each hierarchy (from this namespace's mount table): the visible
    /// mount at the path, and the mounts below it at the same path, while they are ours. Copies
    /// propagated below another mount (a read-only bind) are not in that stack.
    fn stacks(&self) -> BTreeMap<&'static str, usize> {
        let table = extmerge::kernel::mounts::parse_mountinfo(mountinfo().as_bytes()).unwrap();
        HIERARCHIES
            .iter()
            .map(|(h, _)| {
                let p = self.root.join(h);
                let at: Vec<_> = table.iter().filter(|m| m.mount_point == p).collect();
                let top = at
                    .iter()
                    .find(|m| !at.iter().any(|c| c.parent_id == m.mount_id));
                let mut n = 0;
                let mut cur = top.copied();
                while let Some(m) = cur {
                    if m.fstype != "overlay" || !(m.source == "sysext" || m.source == "confext") {
                        break;
                    }
                    n += 1;
                    cur = at.iter().find(|p| p.mount_id == m.parent_id).copied();
                }
                (*h, n)
            })
            .collect()
    }

    fn workdirs(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".systemd-") && n.contains("-workdir"))
            .collect()
    }

    /// Back to "old": nothing merged and no leak, then the old set placed (and merged).
    fn reset_to_old(&self, after: &str) {
        self.ok("unmerge");
        self.assert_no_leak(after);
        self.place(self.sc.old);
        if self.sc.verb != Verb::Merge && !self.sc.old.is_empty() {
            self.ok("merge");
        }
    }

    /// Nothing left after an unmerge (`after`: the case that ran last).
    fn assert_no_leak(&self, after: &str) {
        assert_eq!(
            self.stacks().values().sum::<usize>(),
            0,
            "{}: overlays left after {after}",
            self.sc.name
        );
        self.t.leak.assert_clean();
        let w = self.workdirs();
        assert!(
            w.is_empty(),
            "{}: work dirs left behind after {after}: {w:?}",
            self.sc.name
        );
    }

    fn to_new(&self) {
        if self.sc.verb != Verb::Unmerge {
            self.place(self.sc.new);
        }
    }

    /// What a clean run does: (old state, new state, the failpoints it passes as `step:detail`).
    fn reference(&self) -> (Snapshot, Snapshot, Vec<String>) {
        self.reset_to_old("setup");
        let old = self.snapshot();
        self.to_new();
        let trace = self.root.join("../trace");
        let _ = std::fs::remove_file(&trace);
        let out = self.run(
            verb_name(self.sc.verb),
            &[("EXTMERGE_FAILPOINT_TRACE", trace.to_str().unwrap())],
        );
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "{}: clean run failed: {log}",
            self.sc.name
        );
        let new = self.snapshot();
        assert_ne!(
            old.0, new.0,
            "{}: the run must change something",
            self.sc.name
        );
        let hits = std::fs::read_to_string(&trace)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>();
        assert!(
            !hits.is_empty(),
            "no failpoint was passed: they exist only in builds with debug assertions (not --release)"
        );
        (old, new, hits)
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot(self.listing(), self.stacks())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot(
    BTreeMap<&'static str, Listing>,
    BTreeMap<&'static str, usize>,
);

fn verb_name(v: Verb) -> &'static str {
    match v {
        Verb::Merge => "merge",
        Verb::Refresh => "refresh",
        Verb::Unmerge => "unmerge",
    }
}

fn walk(base: &Path, dir: &Path, meta: &str, out: &mut Listing) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        if rel == meta {
            continue;
        }
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.insert(rel, "<dir>".into());
            walk(base, &p, meta, out);
        } else if ft.is_symlink() {
            out.insert(
                rel,
                format!("-> {}", std::fs::read_link(&p).unwrap().display()),
            );
        } else {
            out.insert(
                rel,
                std::fs::read_to_string(&p).unwrap_or_else(|e| format!("<{e}>")),
            );
        }
    }
}

/// `step:detail` lines → failpoint specs, numbering repeated hits (`@N`).
fn specs(hits: &[String]) -> Vec<(String, String)> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    hits.iter()
        .map(|h| {
            let n = seen.entry(h).or_default();
            *n += 1;
            let step = h.split_once(':').map_or(h.as_str(), |(s, _)| s).to_string();
            (step, format!("{h}@{n}"))
        })
        .collect()
}

/// Per hierarchy: exactly the old or exactly the new visible state.
fn assert_old_or_new(sc: &Scenario, what: &str, now: &Snapshot, old: &Snapshot, new: &Snapshot) {
    for (h, _) in HIERARCHIES {
        let l = &now.0[h];
        assert!(
            *l == old.0[h] || *l == new.0[h],
            "{}: {what}: /{h} is neither old nor new:\nnow {l:#?}\nold {:#?}\nnew {:#?}",
            sc.name,
            old.0[h],
            new.0[h]
        );
    }
}

fn run_matrix(sc: &'static Scenario, action: &str) {
    let f = Fixture::new(sc);
    let (old, new, hits) = f.reference();
    let started = std::time::Instant::now();
    let cases = specs(&hits);
    let mut last = "the clean run".to_string();
    for (i, (step, spec)) in cases.iter().enumerate() {
        let what = format!("{spec}={action}");
        f.reset_to_old(&last);
        last = what.clone();
        assert_eq!(f.snapshot(), old, "{}: {what}: reset", sc.name);
        f.to_new();
        let out = f.run(
            verb_name(sc.verb),
            &[("EXTMERGE_FAILPOINT", &format!("{spec}={action}"))],
        );
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        match action {
            "kill" => assert_eq!(out.status.signal(), Some(9), "{}: {what}: {log}", sc.name),
            // A panic on the assembly thread is caught and reported as an error.
            "panic" => assert!(
                matches!(out.status.code(), Some(1) | Some(101)),
                "{}: {what}: {log}",
                sc.name
            ),
            _ => {
                let code = if BEST_EFFORT.contains(&step.as_str()) {
                    0
                } else {
                    1
                };
                assert_eq!(out.status.code(), Some(code), "{}: {what}: {log}", sc.name);
                assert!(
                    log.contains("failpoint"),
                    "{}: {what}: not triggered: {log}",
                    sc.name
                );
            }
        }

        let now = f.snapshot();
        assert_old_or_new(sc, &what, &now, &old, &new);
        for (h, n) in &now.1 {
            let allowed = if may_stack(&hits, i, h, action) { 2 } else { 1 };
            assert!(
                *n <= allowed,
                "{}: {what}: {n} overlays on /{h}: {log}",
                sc.name
            );
        }

        // A re-run converges: the initrd unit re-runs `refresh`, an admin re-runs `unmerge`.
        let again = if sc.verb == Verb::Unmerge {
            "unmerge"
        } else {
            "refresh"
        };
        let out = f.run(again, &[]);
        let log2 = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            matches!(out.status.code(), Some(0) | Some(77)),
            "{}: {what}: re-run {again} failed: {log2}\nfirst run: {log}",
            sc.name
        );
        assert_eq!(
            f.snapshot(),
            new,
            "{}: {what}: re-run did not converge: {log2}\nfirst run: {log}",
            sc.name
        );
        if sc.verb != Verb::Unmerge {
            let out = f.run("refresh", &[]);
            assert_eq!(
                out.status.code(),
                Some(77),
                "{}: {what}: the state after the re-run is not coherent (refresh did not skip): {}\nre-run: {log2}\nfirst run: {log}",
                sc.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    f.ok("unmerge");
    // After SIGKILL the dead process's private namespace, and the loop devices its mounts held,
    // are released asynchronously.
    assert!(
        wait_until(Duration::from_secs(5), || loops_below(
            f.root.parent().unwrap()
        )
        .is_empty()),
        "{}: loop devices left",
        sc.name
    );
    f.assert_no_leak(&last);
    println!(
        "{}: {} failpoints x {action} in {:.1} s: {}",
        sc.name,
        cases.len(),
        started.elapsed().as_secs_f64(),
        hits.join(" ")
    );
}

#[test]
fn every_step_is_reached_by_some_scenario() {
    let mut reached = std::collections::BTreeSet::new();
    for sc in ALL_SCENARIOS {
        let f = Fixture::new(sc);
        let (_, _, hits) = f.reference();
        for (step, _) in specs(&hits) {
            reached.insert(step);
        }
        f.ok("unmerge");
        f.assert_no_leak(sc.name);
    }
    let missing: Vec<&&str> = STEPS.iter().filter(|s| !reached.contains(**s)).collect();
    assert!(
        missing.is_empty(),
        "failpoints no scenario reaches: {missing:?}"
    );
}

#[test]
fn sysext_merge_error() {
    run_matrix(&SYSEXT_MERGE, "error");
}

#[test]
fn sysext_merge_kill() {
    run_matrix(&SYSEXT_MERGE, "kill");
}

#[test]
fn sysext_refresh_error() {
    run_matrix(&SYSEXT_REFRESH, "error");
}

#[test]
fn sysext_refresh_kill() {
    run_matrix(&SYSEXT_REFRESH, "kill");
}

#[test]
fn sysext_refresh_panic() {
    run_matrix(&SYSEXT_REFRESH, "panic");
}

#[test]
fn sysext_refresh_drop_error() {
    run_matrix(&SYSEXT_REFRESH_DROP, "error");
}

#[test]
fn sysext_refresh_drop_kill() {
    run_matrix(&SYSEXT_REFRESH_DROP, "kill");
}

#[test]
fn sysext_unmerge_error() {
    run_matrix(&SYSEXT_UNMERGE, "error");
}

#[test]
fn sysext_unmerge_kill() {
    run_matrix(&SYSEXT_UNMERGE, "kill");
}

#[test]
fn sysext_refresh_shared_ro_error() {
    run_matrix(&SYSEXT_REFRESH_SHARED_RO, "error");
}

#[test]
fn sysext_refresh_shared_ro_kill() {
    run_matrix(&SYSEXT_REFRESH_SHARED_RO, "kill");
}

#[test]
fn confext_mutable_merge_error() {
    run_matrix(&CONFEXT_MUTABLE_MERGE, "error");
}

#[test]
fn confext_mutable_merge_kill() {
    run_matrix(&CONFEXT_MUTABLE_MERGE, "kill");
}

#[test]
fn confext_mutable_refresh_error() {
    run_matrix(&CONFEXT_MUTABLE_REFRESH, "error");
}

#[test]
fn confext_mutable_refresh_kill() {
    run_matrix(&CONFEXT_MUTABLE_REFRESH, "kill");
}
