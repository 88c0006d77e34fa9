use super::*;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// systemd's weak identifiers of what `path` names, opened `O_PATH` as discovery does.
fn weak_id(path: &Path, kind: ImageKind) -> std::io::Result<WeakId> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    weak_id_of(fd.as_fd(), kind)
}

fn set_crtime_xattr(path: &Path, value: &[u8]) {
    rustix::fs::setxattr(
        path,
        "user.crtime_usec",
        value,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

#[test]
fn timespec_load_is_systemds() {
    assert_eq!(timespec_load((0, 0)), 0);
    assert_eq!(timespec_load((1, 999)), 1_000_000);
    assert_eq!(timespec_load((1, 1_500)), 1_000_001);
    assert_eq!(timespec_load((-1, 0)), u64::MAX, "negative: USEC_INFINITY");
    let last = (u64::MAX / 1_000_000) as i64;
    assert_eq!(timespec_load((last, 0)), last as u64 * 1_000_000);
    assert_eq!(timespec_load((last + 1, 0)), u64::MAX, "overflow");
    assert_eq!(timespec_load((i64::MAX, 999_999_999)), u64::MAX);
}

#[test]
fn crtime_is_the_older_of_birth_time_and_xattr() {
    let le = |u: u64| u.to_le_bytes();
    assert_eq!(crtime_of(Some((100, 5_000)), None), 100_000_005);
    assert_eq!(crtime_of(Some((100, 0)), Some(&le(50_000_000))), 50_000_000);
    assert_eq!(
        crtime_of(Some((100, 0)), Some(&le(200_000_000))),
        100_000_000
    );
    assert_eq!(
        crtime_of(None, Some(&le(42))),
        42,
        "no birth time: the xattr"
    );
    assert_eq!(
        crtime_of(None, None),
        0,
        "neither: fd_getcrtime() fails, 0 stays"
    );
}

#[test]
fn a_zero_birth_time_is_no_birth_time() {
    // The nanoseconds do not rescue it: systemd tests tv_sec only.
    assert_eq!(crtime_of(Some((0, 123_000)), None), 0);
    assert_eq!(crtime_of(Some((0, 0)), Some(&42u64.to_le_bytes())), 42);
    // A negative one loads as USEC_INFINITY, which counts as none as well.
    assert_eq!(crtime_of(Some((-5, 0)), None), 0);
    assert_eq!(crtime_of(Some((-5, 0)), Some(&7u64.to_le_bytes())), 7);
}

#[test]
fn an_invalid_xattr_is_ignored() {
    let birth = Some((100, 0));
    for bad in [
        &[1u8, 0, 0, 0, 0, 0, 0][..],
        &[1u8, 0, 0, 0, 0, 0, 0, 0, 0][..],
        &0u64.to_le_bytes()[..],
        &u64::MAX.to_le_bytes()[..],
    ] {
        assert_eq!(crtime_of(birth, Some(bad)), 100_000_000, "{bad:?}");
        assert_eq!(crtime_of(None, Some(bad)), 0, "{bad:?}");
    }
    // Little endian, as fd_setcrtime() stores it.
    assert_eq!(crtime_of(None, Some(&[0, 1, 0, 0, 0, 0, 0, 0])), 256);
}

#[test]
fn subvolume_times_load_unsigned() {
    assert_eq!(
        subvol_usec((1_700_000_000, 123_456_789)),
        1_700_000_000_123_456
    );
    assert_eq!(subvol_usec((0, 999)), 0);
}

#[test]
fn raw_images_record_birth_and_modification_time() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("img.raw");
    std::fs::write(&f, "x").unwrap();
    let w = weak_id(&f, ImageKind::Raw).unwrap();
    let m = std::fs::metadata(&f).unwrap();
    assert_eq!(w.inode, m.ino());
    assert_eq!(
        w.mtime,
        (m.mtime() as u64) * 1_000_000 + (m.mtime_nsec() as u64) / 1000
    );
    let st = stat::identity(
        rustix::fs::open(&f, rustix::fs::OFlags::PATH, rustix::fs::Mode::empty())
            .unwrap()
            .as_fd(),
    )
    .unwrap();
    assert_eq!(w.crtime, crtime_of(st.btime, None));
    assert!(w.on_mount_id > 0);
}

#[test]
fn the_crtime_xattr_counts_when_older() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("ext");
    std::fs::create_dir(&d).unwrap();
    // 1970-01-01 00:00:01.000002: older than any birth time here.
    set_crtime_xattr(&d, &1_000_002u64.to_le_bytes());
    let w = weak_id(&d, ImageKind::Directory).unwrap();
    assert_eq!((w.crtime, w.mtime), (1_000_002, 0));
    let f = t.path().join("img.raw");
    std::fs::write(&f, "x").unwrap();
    set_crtime_xattr(&f, &u64::MAX.to_le_bytes());
    let before = weak_id(&f, ImageKind::Raw).unwrap();
    set_crtime_xattr(&f, &4_000_000_000_000_000u64.to_le_bytes());
    assert_eq!(
        weak_id(&f, ImageKind::Raw).unwrap().crtime,
        before.crtime,
        "a later xattr loses to the birth time, an invalid one is ignored"
    );
}

#[test]
fn block_devices_record_no_times() {
    let t = tempfile::tempdir().unwrap();
    let dev = t.path().join("blk");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &dev,
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(7, 200),
    )
    .unwrap();
    let w = weak_id(&dev, ImageKind::Block).unwrap();
    assert_eq!((w.crtime, w.mtime), (0, 0));
    assert_eq!(w.inode, std::fs::symlink_metadata(&dev).unwrap().ino());
}
