//! Overlay assembly: detached overlays (new mount API), private mount namespaces,
//! attach / attach-beneath / clone_tree, mountinfo parsing (root for most tests).
//!
//! Every root test moves its thread into its own private mount namespace first. A
//! "witness" thread spawned *before* that stays in the original namespace, so each test
//! can finally assert that the original view never saw a mount of its temporary dir.

mod common;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use common::{enter_private_mount_ns, require_root, write_files, LeakCheck};
use extmerge::kernel::mounts::{self, AttachError, MountInfo};
use extmerge::kernel::namespace;
use extmerge::kernel::overlay::{self, OverlaySpec, FSCONFIG_VALUE_MAX, MAX_LOWER_LAYERS};
use rustix::mount::{MountAttrFlags, MountPropagationFlags};

/// A test's private namespace, its temp dir and a window on the original namespace.
struct Isolated {
    witness: Option<mpsc::Sender<mpsc::Sender<String>>>,
    tmp: tempfile::TempDir,
}

/// Spawn the witness, then unshare the test thread's mount namespace and make a temp dir.
fn isolate() -> Isolated {
    require_root();
    let (tx, rx) = mpsc::channel::<mpsc::Sender<String>>();
    // Spawned before the unshare, so this thread stays in the original namespace.
    std::thread::spawn(move || {
        for reply in rx {
            let text = fs::read_to_string("/proc/thread-self/mountinfo").unwrap_or_default();
            let _ = reply.send(text);
        }
    });
    enter_private_mount_ns();
    let tmp = tempfile::Builder::new()
        .prefix("extmerge-ovl-")
        .tempdir()
        .expect("temp dir");
    Isolated {
        witness: Some(tx),
        tmp,
    }
}

impl Isolated {
    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// mountinfo as seen from the namespace the test started in.
    fn original_mountinfo(&self) -> String {
        let (tx, rx) = mpsc::channel();
        let witness = self.witness.as_ref().expect("witness alive");
        witness.send(tx).expect("witness thread alive");
        rx.recv().expect("witness reply")
    }

    /// Unmount everything below the temp dir here, then check both views are clean.
    fn finish(self) {
        let dir = self.path().to_string_lossy().into_owned();
        let orig: Vec<String> = self
            .original_mountinfo()
            .lines()
            .filter(|l| l.contains(&dir))
            .map(str::to_owned)
            .collect();
        assert!(
            orig.is_empty(),
            "original namespace saw our mounts: {orig:#?}"
        );
        unmount_below(self.path());
        LeakCheck::new(self.path()).assert_clean();
    }
}

/// Lazily detach every mount below `dir` in this thread's namespace (stacked ones too).
fn unmount_below(dir: &Path) {
    for _ in 0..1000 {
        let mut below: Vec<MountInfo> = mounts::mountinfo()
            .expect("mountinfo")
            .into_iter()
            .filter(|m| m.mount_point.starts_with(dir))
            .collect();
        if below.is_empty() {
            return;
        }
        below.sort_by_key(|m| std::cmp::Reverse(m.mount_point.as_os_str().len()));
        mounts::detach_lazily(&below[0].mount_point).expect("detach");
    }
    panic!("could not unmount everything below {}", dir.display());
}

/// Create a directory layer `name` below `base` holding `files`.
fn layer(base: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = base.join(name);
    fs::create_dir_all(&dir).expect("mkdir layer");
    write_files(&dir, files);
    dir
}

fn mkdir(path: PathBuf) -> PathBuf {
    fs::create_dir_all(&path).expect("mkdir");
    path
}

/// The visible (topmost) mount at `path` in this thread's namespace.
fn top_mount_at(path: &Path) -> MountInfo {
    let table = mounts::mountinfo().expect("mountinfo");
    let at: Vec<&MountInfo> = table.iter().filter(|m| m.mount_point == path).collect();
    at.iter()
        .find(|m| !at.iter().any(|o| o.parent_id == m.mount_id))
        .map(|m| (*m).clone())
        .unwrap_or_else(|| panic!("no mount at {}", path.display()))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn escape_and_legacy_strings() {
    assert_eq!(
        overlay::escape_lowerdir(Path::new("/plain/path")),
        "/plain/path"
    );
    assert_eq!(
        overlay::escape_lowerdir(Path::new("/a,b:c\\d")),
        "/a\\,b\\:c\\\\d"
    );
    let joined = overlay::legacy_lowerdir(&["/top", "/mid:x", "/bot,y"]);
    assert_eq!(joined, "/top:/mid\\:x:/bot\\,y");
}

#[test]
fn too_many_layers_fail_before_any_syscall() {
    // Paths that do not exist and no root needed: any syscall would fail differently.
    let layers: Vec<PathBuf> = (0..=MAX_LOWER_LAYERS)
        .map(|i| PathBuf::from(format!("/nonexistent/extmerge/layer{i}")))
        .collect();
    let err = overlay::build_detached(&OverlaySpec::new("sysext", layers))
        .expect_err("501 layers must be refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("501") && msg.contains("500"), "{msg}");
    let ok = OverlaySpec::new("sysext", vec![PathBuf::from("/x"); MAX_LOWER_LAYERS]);
    overlay::validate(&ok).expect("500 layers are fine");
}

const SAMPLE: &str = "\
1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
20 1 0:30 / /usr ro,nodev - overlay sysext ro,lowerdir+=/a\\054b
21 20 0:31 / /usr/my\\040dir rw,nosuid shared:5 master:3 - tmpfs tmp\\040fs rw,size=1k
22 21 0:32 / /usr/my\\040dir/nested rw - tmpfs none rw
23 20 0:33 / /usr/hidden/deep rw - tmpfs none rw
24 20 0:34 / /usr/hidden rw - tmpfs none rw
25 20 0:35 / /usr/stacked rw - tmpfs none rw
26 25 0:36 / /usr/stacked rw - tmpfs none rw
27 1 0:37 / /usrx rw - tmpfs none rw
28 20 8:1 /srv/sub /usr/bind rw - ext4 /dev/sda1 rw
29 1 0:39 / /opt rw - tmpfs none rw
30 29 0:40 / /opt/a rw - tmpfs none rw
31 29 0:41 / /opt rw - tmpfs none rw
";

#[test]
fn mountinfo_parser_decodes_fields() {
    let table = mounts::parse_mountinfo(SAMPLE.as_bytes()).expect("parse");
    assert_eq!(table.len(), 13);
    let usr = &table[1];
    assert_eq!(
        (usr.mount_id, usr.parent_id, usr.major, usr.minor),
        (20, 1, 0, 30)
    );
    assert_eq!(usr.fstype, "overlay");
    assert_eq!(usr.source, "sysext");
    assert_eq!(usr.super_options, "ro,lowerdir+=/a,b");
    assert!(usr.has_option("ro") && usr.has_option("nodev") && !usr.has_option("no"));
    let spaced = &table[2];
    assert_eq!(spaced.mount_point, Path::new("/usr/my dir"));
    assert_eq!(spaced.source, "tmp fs");
    assert_eq!(spaced.optional_fields, vec!["shared:5", "master:3"]);
    assert_eq!(spaced.options, "rw,nosuid");
    assert_eq!(table[9].root, Path::new("/srv/sub"));
    assert!(mounts::parse_mountinfo(b"1 2 3\n").is_err());
}

#[test]
fn submounts_skip_hidden_covered_and_nested() {
    let table = mounts::parse_mountinfo(SAMPLE.as_bytes()).expect("parse");
    let paths = |prefix: &str| -> Vec<PathBuf> {
        mounts::visible_submounts(&table, Path::new(prefix))
            .into_iter()
            .map(|m| m.mount_point)
            .collect()
    };
    // 23 is hidden by 24 (mounted over its parent directory), 25 is covered by 26,
    // 22 is nested in 21, 27 is a sibling name, not below /usr.
    assert_eq!(
        paths("/usr"),
        ["/usr/bind", "/usr/hidden", "/usr/my dir", "/usr/stacked"]
            .map(PathBuf::from)
            .to_vec()
    );
    assert_eq!(
        mounts::visible_submounts(&table, Path::new("/usr"))[3].mount_id,
        26
    );
    // 30 sits on 29, which 31 covers: nothing below /opt is reachable.
    assert!(paths("/opt").is_empty());
    assert_eq!(
        paths("/usr/my dir"),
        vec![PathBuf::from("/usr/my dir/nested")]
    );
}

#[test]
fn fsconfig_string_values_are_limited_to_255_bytes() {
    let _iso = isolate();
    // Measures the kernel: strndup_user(value, 256) counts the NUL.
    let fs = rustix::mount::fsopen("overlay", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC)
        .expect("fsopen");
    let ok = "s".repeat(FSCONFIG_VALUE_MAX);
    rustix::mount::fsconfig_set_string(&fs, "source", ok.as_str()).expect("255 bytes");
    let long = "s".repeat(FSCONFIG_VALUE_MAX + 1);
    let err = rustix::mount::fsconfig_set_string(&fs, "source", long.as_str());
    assert_eq!(err, Err(rustix::io::Errno::INVAL));
}

#[test]
fn read_only_three_layers_built_in_private_namespace() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let top = layer(&base, "top", &[("f", "top"), ("only-top", "t")]);
    // A ',' in a lowerdir+ path needs no escaping.
    let mid = layer(&base, "mid,dle", &[("f", "mid"), ("g", "mid")]);
    let ns_layer = mkdir(base.join("ns-layer"));
    let target = mkdir(base.join("target"));
    let mut spec = OverlaySpec::new("sysext", vec![top.clone(), mid.clone(), ns_layer.clone()]);
    spec.attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    // The bottom layer only exists inside the helper namespace: the overlay keeps it.
    let fd = namespace::in_private_namespace(|| {
        mounts::mount_tmpfs(&ns_layer, 0o755)?;
        write_files(
            &ns_layer,
            &[("f", "bottom"), ("g", "bottom"), ("h", "bottom")],
        );
        overlay::build_detached(&spec)
    })
    .expect("build overlay");
    assert!(
        fs::read_dir(&ns_layer).expect("ls").next().is_none(),
        "tmpfs leaked out"
    );
    let dir = base.to_string_lossy().into_owned();
    assert!(
        !mounts::mountinfo()
            .expect("mi")
            .iter()
            .any(|m| m.super_options.contains(&dir)),
        "detached overlay visible before attach"
    );
    mounts::attach(&fd, &target).expect("attach");
    assert_eq!(read(&target.join("f")), "top");
    assert_eq!(read(&target.join("g")), "mid");
    assert_eq!(read(&target.join("h")), "bottom");
    assert_eq!(read(&target.join("only-top")), "t");
    let m = top_mount_at(&target);
    println!("mountinfo: {m:?}");
    assert_eq!(
        (m.fstype.as_str(), m.source.as_str()),
        ("overlay", "sysext")
    );
    assert!(m.has_option("ro") && m.has_option("nodev") && m.has_option("noexec"));
    assert!(!m.has_option("nosuid"));
    let pos = |p: &Path| {
        m.super_options
            .find(&*p.to_string_lossy())
            .expect("layer listed")
    };
    assert!(
        pos(&top) < pos(&mid) && pos(&mid) < pos(&ns_layer),
        "{}",
        m.super_options
    );
    let err = fs::write(target.join("new"), "x").expect_err("read-only");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );
    assert!(mounts::is_mount_point(&target).expect("statx"));
    drop(fd);
    iso.finish();
}

#[test]
fn mutable_overlay_writes_land_in_upper() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let lower = layer(
        &base,
        "lower",
        &[("etc/keep", "lower"), ("etc/edit", "lower")],
    );
    let upper = mkdir(base.join("upper"));
    let work = mkdir(base.join("work"));
    let target = mkdir(base.join("target"));
    let mut spec = OverlaySpec::new("confext", vec![lower.clone()]);
    spec.upperdir = Some(upper.clone());
    spec.workdir = Some(work);
    spec.attrs = MountAttrFlags::MOUNT_ATTR_NODEV;
    spec.options = vec!["redirect_dir=on".into()];
    spec.attrs |= MountAttrFlags::MOUNT_ATTR_NOATIME;
    let fd = overlay::build_detached(&spec).expect("build");
    mounts::attach(&fd, &target).expect("attach");
    fs::write(target.join("etc/new"), "written").expect("write new");
    fs::write(target.join("etc/edit"), "edited").expect("edit");
    assert_eq!(read(&upper.join("etc/new")), "written");
    assert_eq!(read(&upper.join("etc/edit")), "edited");
    assert_eq!(read(&lower.join("etc/edit")), "lower");
    assert!(!upper.join("etc/keep").exists());
    let m = top_mount_at(&target);
    assert!(m.has_option("rw") && m.has_option("nodev") && m.has_option("noatime"));
    assert!(m.super_options.contains("upperdir=") && m.super_options.contains("redirect_dir=on"));
    iso.finish();
}

#[test]
fn legacy_lowerdir_string_with_commas_and_colons() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let a = layer(&base, "a,1", &[("f", "a"), ("x", "a")]);
    let b = layer(&base, "b:2", &[("f", "b"), ("y", "b")]);
    let c = layer(&base, "c\\3", &[("z", "c")]);
    let target = mkdir(base.join("target"));
    let mut spec = OverlaySpec::new("sysext", vec![a, b, c]);
    spec.attrs = MountAttrFlags::MOUNT_ATTR_RDONLY;
    spec.force_legacy_lowerdir = true;
    let fd = overlay::build_detached(&spec).expect("legacy build");
    mounts::attach(&fd, &target).expect("attach");
    assert_eq!(read(&target.join("f")), "a");
    assert_eq!(read(&target.join("y")), "b");
    assert_eq!(read(&target.join("z")), "c");
    let m = top_mount_at(&target);
    assert!(m.super_options.contains("lowerdir=") && !m.super_options.contains("lowerdir+"));

    // Too long as paths, short enough as /proc/self/fd/N: still builds.
    let long: Vec<PathBuf> = (0..8)
        .map(|i| {
            layer(
                &base,
                &format!("{i}-{}", "l".repeat(40)),
                &[("n", &i.to_string())],
            )
        })
        .collect();
    assert!(overlay::legacy_lowerdir(&long).len() > FSCONFIG_VALUE_MAX);
    let mut spec = OverlaySpec::new("sysext", long.clone());
    spec.force_legacy_lowerdir = true;
    let fd2 = overlay::build_detached(&spec).expect("legacy build via fd paths");
    let target2 = mkdir(base.join("target2"));
    mounts::attach(&fd2, &target2).expect("attach");
    assert_eq!(read(&target2.join("n")), "0");

    // Too long even then: a clear error naming the limit.
    let many: Vec<PathBuf> = (0..20).map(|_| long[0].clone()).collect();
    let mut spec = OverlaySpec::new("sysext", many);
    spec.force_legacy_lowerdir = true;
    let msg = format!(
        "{:#}",
        overlay::build_detached(&spec).expect_err("too long")
    );
    println!("{msg}");
    assert!(msg.contains("255") && msg.contains("lowerdir+"), "{msg}");
    iso.finish();
}

#[test]
fn layer_paths_longer_than_fsconfig_limit_work() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let deep = base.join("d".repeat(200)).join("e".repeat(100));
    fs::create_dir_all(&deep).expect("mkdir");
    write_files(&deep, &[("f", "deep")]);
    assert!(deep.as_os_str().len() > FSCONFIG_VALUE_MAX);
    let target = mkdir(base.join("target"));
    let empty = mkdir(base.join("empty"));
    let fd =
        overlay::build_detached(&OverlaySpec::new("sysext", vec![deep, empty])).expect("build");
    mounts::attach(&fd, &target).expect("attach");
    assert_eq!(read(&target.join("f")), "deep");
    iso.finish();
}

#[test]
fn failing_overlay_reports_kernel_messages() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let good = layer(&base, "good", &[("f", "x")]);
    let missing = base.join("does-not-exist");
    let spec = OverlaySpec::new("sysext", vec![good.clone(), missing.clone()]);
    let msg = format!(
        "{:#}",
        overlay::build_detached(&spec).expect_err("missing layer")
    );
    println!("missing layer: {msg}");
    assert!(msg.contains(&*missing.to_string_lossy()), "{msg}");
    assert!(
        msg.contains("layer 2 of 2") && msg.contains("No such file"),
        "{msg}"
    );
    // overlayfs reports lookup failures only to the kernel log (pr_err).
    assert!(msg.contains("overlayfs: failed to resolve"), "{msg}");

    let mut spec = OverlaySpec::new("sysext", vec![good.clone(), good]);
    spec.options = vec!["bogus_option".into()];
    let msg = format!(
        "{:#}",
        overlay::build_detached(&spec).expect_err("bad option")
    );
    println!("bad option: {msg}");
    assert!(
        msg.contains("kernel: overlay: Unknown parameter 'bogus_option'"),
        "{msg}"
    );
    iso.finish();
}

#[test]
fn attach_beneath_swaps_never_miss_a_read() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let a = layer(&base, "a", &[("f", "A")]);
    let b = layer(&base, "b", &[("f", "B")]);
    let empty = mkdir(base.join("empty"));
    let target = mkdir(base.join("target"));
    let build = |layer: &Path| {
        let mut spec = OverlaySpec::new("sysext", vec![layer.to_path_buf(), empty.clone()]);
        spec.attrs = MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV;
        overlay::build_detached(&spec).expect("build")
    };
    mounts::attach(build(&a), &target).expect("attach A");

    let stop = Arc::new(AtomicBool::new(false));
    let (reads, misses) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Spawned after the unshare: the reader shares the test thread's namespace.
    let reader = {
        let (stop, reads, misses) = (stop.clone(), reads.clone(), misses.clone());
        let file = target.join("f");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match fs::read(&file) {
                    Ok(c) if c == b"A" || c == b"B" => reads.fetch_add(1, Ordering::Relaxed),
                    _ => misses.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    while reads.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    for i in 0..200 {
        let next = build(if i % 2 == 0 { &b } else { &a });
        match mounts::attach_beneath(&next, &target) {
            Ok(()) => {}
            Err(AttachError::BeneathUnsupported) => panic!("kernel lacks MOVE_MOUNT_BENEATH"),
            Err(e) => panic!("swap {i}: {e}"),
        }
        mounts::detach_lazily(&target).expect("detach old top");
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    let (r, m) = (
        reads.load(Ordering::Relaxed),
        misses.load(Ordering::Relaxed),
    );
    println!("200 beneath swaps: {r} reads, {m} misses");
    assert_eq!(m, 0, "reader missed the file {m} times in {r} reads");
    assert_eq!(read(&target.join("f")), "A");
    let at = mounts::mountinfo().expect("mi");
    assert_eq!(at.iter().filter(|m| m.mount_point == target).count(), 1);
    iso.finish();
}

#[test]
fn attach_beneath_on_non_mount_point_is_a_plain_failure() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let a = layer(&base, "a", &[("f", "A")]);
    let target = mkdir(base.join("target"));
    let empty = mkdir(base.join("empty"));
    let fd = overlay::build_detached(&OverlaySpec::new("sysext", vec![a, empty])).expect("build");
    match mounts::attach_beneath(&fd, &target) {
        Err(AttachError::Failed { target: t, .. }) => assert_eq!(t, target),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(mounts::beneath_supported());
    iso.finish();
}

#[test]
fn clone_tree_hands_over_overlay_submount_and_meta_bind() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let lower = layer(
        &base,
        "lower",
        &[
            ("file", "lower"),
            (".systemd-sysext/extensions", "x\n"),
            ("sub/.keep", ""),
        ],
    );
    let upper = mkdir(base.join("upper"));
    let work = mkdir(base.join("work"));
    let ws = mkdir(base.join("ws"));
    let target = mkdir(base.join("target"));
    let mut spec = OverlaySpec::new("sysext", vec![lower]);
    spec.upperdir = Some(upper.clone());
    spec.workdir = Some(work);
    spec.attrs = MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID;
    let tree = namespace::in_private_namespace(|| {
        mounts::mount_tmpfs(&ws, 0o755)?;
        let merged = ws.join("merged");
        fs::create_dir(&merged)?;
        mounts::attach(overlay::build_detached(&spec)?, &merged)?;
        mounts::mount_tmpfs(&merged.join("sub"), 0o755)?;
        fs::write(merged.join("sub/inner"), "inner")?;
        mounts::bind_readonly(
            &merged.join(".systemd-sysext"),
            &merged.join(".systemd-sysext"),
        )?;
        assert_eq!(
            mounts::submounts(&merged)?,
            vec![merged.join(".systemd-sysext"), merged.join("sub")]
        );
        mounts::clone_tree(&merged)
    })
    .expect("assemble in private namespace");
    let ws_str = ws.to_string_lossy().into_owned();
    let mi = mounts::mountinfo().expect("mi");
    assert!(
        !mi.iter().any(|m| m.mount_point.starts_with(&ws)),
        "workspace leaked: {ws_str}"
    );

    mounts::attach(&tree, &target).expect("one move_mount");
    assert_eq!(read(&target.join("file")), "lower");
    assert_eq!(read(&target.join("sub/inner")), "inner");
    assert_eq!(read(&target.join(".systemd-sysext/extensions")), "x\n");
    fs::write(target.join("new"), "n").expect("overlay is writable");
    assert_eq!(read(&upper.join("new")), "n");
    let err = fs::write(target.join(".systemd-sysext/extensions"), "y").expect_err("ro meta");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );
    let meta = top_mount_at(&target.join(".systemd-sysext"));
    assert!(meta.has_option("ro") && meta.has_option("nodev") && meta.has_option("nosuid"));
    assert_eq!(top_mount_at(&target).fstype, "overlay");
    assert_eq!(top_mount_at(&target.join("sub")).fstype, "tmpfs");
    assert_eq!(
        mounts::submounts(&target).expect("submounts"),
        vec![target.join(".systemd-sysext"), target.join("sub")]
    );
    // A bind of a directory of the same filesystem is still a mount point.
    assert!(mounts::is_mount_point(&target.join(".systemd-sysext")).expect("statx"));
    assert!(!mounts::is_mount_point(&upper).expect("statx"));
    iso.finish();
}

#[test]
fn detached_overlay_is_invisible_until_attached() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let a = layer(&base, "a", &[("f", "A")]);
    let target = mkdir(base.join("target"));
    let ours = |mi: &[MountInfo]| mi.iter().filter(|m| m.source == "detachtest").count();
    let empty = mkdir(base.join("empty"));
    let spec = OverlaySpec::new("detachtest", vec![a, empty]);
    let fd = overlay::build_detached(&spec).expect("build");
    assert_eq!(ours(&mounts::mountinfo().expect("mi")), 0);
    assert!(!mounts::is_mount_point(&target).expect("statx"));
    mounts::attach(&fd, &target).expect("attach");
    assert_eq!(ours(&mounts::mountinfo().expect("mi")), 1);
    assert!(mounts::is_mount_point(&target).expect("statx"));
    iso.finish();
}

extern "C" {
    fn unshare(flags: std::ffi::c_int) -> std::ffi::c_int;
}

#[test]
fn private_namespace_mounts_do_not_propagate_to_the_caller() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    // A shared mount in the caller's namespace: a namespace copied from it without the
    // rprivate step would propagate mounts below it back to the caller.
    let shared = mkdir(base.join("shared"));
    rustix::mount::mount_bind(&shared, &shared).expect("bind");
    rustix::mount::mount_change(&shared, MountPropagationFlags::SHARED).expect("make shared");
    let (inner, control) = (mkdir(shared.join("inner")), mkdir(shared.join("control")));
    let caller = PathBuf::from("/proc").join(fs::read_link("/proc/thread-self").expect("tid"));
    let caller_mi = caller.join("mountinfo");

    let (own_sees, caller_sees) = namespace::in_private_namespace(|| {
        mounts::mount_tmpfs(&inner, 0o755)?;
        let own = fs::read_to_string("/proc/thread-self/mountinfo")?;
        let theirs = fs::read_to_string(&caller_mi)?;
        let needle = inner.to_string_lossy().into_owned();
        Ok((own.contains(&needle), theirs.contains(&needle)))
    })
    .expect("private namespace");
    assert!(own_sees, "the helper thread must see its own mount");
    assert!(!caller_sees, "mount leaked into the caller's namespace");
    assert!(!mounts::is_mount_point(&inner).expect("statx"));

    // Control: without the rprivate step the same mount does propagate.
    let leaked = std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare(CLONE_NEWNS) only affects this thread's namespace.
            assert_eq!(unsafe { unshare(0x0002_0000) }, 0, "unshare");
            mounts::mount_tmpfs(&control, 0o755).expect("tmpfs");
            let theirs = fs::read_to_string(&caller_mi).expect("caller mountinfo");
            theirs.contains(&*control.to_string_lossy())
        })
        .join()
        .expect("control thread")
    });
    assert!(
        leaked,
        "control: a shared parent should have propagated the mount"
    );
    assert!(mounts::is_mount_point(&control).expect("statx"));
    iso.finish();
}

#[test]
fn in_private_namespace_turns_panics_and_errors_into_errors() {
    require_root();
    let err = namespace::in_private_namespace(|| -> anyhow::Result<()> { panic!("boom") })
        .expect_err("panic becomes an error");
    assert!(format!("{err:#}").contains("boom"));
    let err = namespace::in_private_namespace(|| -> anyhow::Result<()> {
        Err(std::io::Error::from(ErrorKind::NotFound).into())
    })
    .expect_err("error passes through");
    assert!(format!("{err:#}").contains("not found"), "{err:#}");
}

/// Layers handed over as `/proc/thread-self/fd/N` of directories resolved inside a root (what
/// the merge does) show in the mount table as their real paths, also where overlayfs cannot take
/// fds (before 6.13: forced here) and with the legacy `lowerdir=` string: a magic link there
/// would mean nothing to any other process (systemd's remount, the booted system's refresh).
#[test]
fn fd_link_layers_show_real_paths_without_fd_layers() {
    let iso = isolate();
    let base = iso.path().to_path_buf();
    let a = layer(&base, "a", &[("usr/a", "a")]);
    let b = layer(&base, "b", &[("usr/b", "b")]);
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("O_PATH")
    };
    extmerge::kernel::features::overlay_fd_layers_missing();
    for legacy in [false, true] {
        let upper = mkdir(base.join(format!("upper-{legacy}")));
        let work = mkdir(base.join(format!("work-{legacy}")));
        let target = mkdir(base.join(format!("target-{legacy}")));
        let fds: Vec<_> = [&a, &b, &upper, &work].iter().map(|p| open(p)).collect();
        let link = |i: usize| {
            PathBuf::from(format!(
                "/proc/thread-self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&fds[i])
            ))
        };
        let mut spec = OverlaySpec::new("sysext", vec![link(0), link(1)]);
        spec.upperdir = Some(link(2));
        spec.workdir = Some(link(3));
        spec.force_legacy_lowerdir = legacy;
        let fd = overlay::build_detached(&spec).expect("build");
        mounts::attach(&fd, &target).expect("attach");
        let m = top_mount_at(&target);
        let opts = &m.super_options;
        assert!(!opts.contains("/proc/"), "legacy={legacy}: {opts}");
        assert!(
            opts.contains(&format!("upperdir={}", upper.display())),
            "legacy={legacy}: {opts}"
        );
        assert!(
            opts.contains(&format!("workdir={}", work.display())),
            "legacy={legacy}: {opts}"
        );
        let lowers = if legacy {
            format!("lowerdir={}:{}", a.display(), b.display())
        } else {
            format!("lowerdir+={},lowerdir+={}", a.display(), b.display())
        };
        assert!(opts.contains(&lowers), "legacy={legacy}: {opts}");
        assert_eq!(read(&target.join("usr/a")), "a");
    }
    iso.finish();
}
