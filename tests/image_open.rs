//! Opening images: probing, loop devices, detached mounts (root, private mount ns).
//!
//! Every test that mounts or attaches enters its own mount namespace first and ends
//! with a `LeakCheck`: no mount and no loop device may survive the dropped handles.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    enter_private_mount_ns, mkfs_btrfs, mkfs_erofs, mkfs_ext4, mkfs_squashfs, mkfs_xfs,
    mountinfo_lines_containing, require_root, wait_until, write_files, LeakCheck,
    LOOP_RELEASE_TIMEOUT,
};
use extmerge::image::{ImageFile, OpenedImage};
use extmerge::kernel::fscontext::{
    drain_fs_log, erofs_file_backed_supported, mount_detached, MountFlags,
};
use extmerge::kernel::loopdev::{loops_backed_by, LoopDevice, LoopOptions};
use extmerge::kernel::root::Root;
use extmerge::ondisk::superblock::{probe_bytes, FsType, Probed, PROBE_LEN};
use rustix::fs::{openat, Mode, OFlags, CWD};
use rustix::mount::{move_mount, unmount, MoveMountFlags, UnmountFlags};

const HELLO: &str = "hello from the image\n";

/// Open the image at the host path `path` as a merge does: opened once inside a root (here
/// `/`), then probed and mounted from that open file.
fn open_image(path: &Path, flags: MountFlags) -> anyhow::Result<OpenedImage> {
    let root = Root::open(Path::new("/"))?;
    let img = ImageFile::open(&root, path)?;
    extmerge::image::open_image(&img, flags)
}

/// A small extension tree: a data file, an executable and an extension-release.
fn sample_tree(root: &Path) -> PathBuf {
    let tree = root.join("tree");
    write_files(
        &tree,
        &[
            ("usr/lib/hello", HELLO),
            ("usr/bin/tool", "#!/bin/sh\necho tool\n"),
            (
                "usr/lib/extension-release.d/extension-release.img",
                "ID=_any\n",
            ),
        ],
    );
    tree
}

/// Build an image of `tree` in format `fstype` at `out`.
fn build(fstype: FsType, tree: &Path, out: &Path) {
    match fstype {
        FsType::Squashfs => mkfs_squashfs(tree, out),
        FsType::Erofs => mkfs_erofs(tree, out),
        FsType::Ext4 => mkfs_ext4(tree, out, 4),
        FsType::Btrfs => mkfs_btrfs(tree, out),
        FsType::Xfs => mkfs_xfs(tree, out),
    }
}

/// Read a file through a detached mount fd (relative to the mount's root).
fn read_through(mount: impl AsFd, rel: &str) -> String {
    let fd = openat(mount, rel, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .unwrap_or_else(|e| panic!("openat {rel} through the detached mount: {e}"));
    let mut s = String::new();
    File::from(fd).read_to_string(&mut s).expect("reading");
    s
}

/// `" /dev/loopN "` as it appears as a mount source in mountinfo (spaces avoid
/// matching loop1 against loop10).
fn as_mount_source(dev: &Path) -> String {
    format!(" {} ", dev.display())
}

/// True when the loop device `number` has no backing file (it has been released).
fn loop_released(number: u32) -> bool {
    !Path::new(&format!("/sys/block/loop{number}/loop/backing_file")).exists()
}

fn sysfs_loop_attr(number: u32, attr: &str) -> String {
    let p = format!("/sys/block/loop{number}/{attr}");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("reading {p}: {e}"))
        .trim()
        .to_owned()
}

/// Common body: build, open, read through the mount, prove it is detached, drop, no leak.
fn open_and_read(fstype: FsType) {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let tree = sample_tree(tmp.path());
    let img = tmp.path().join(format!("sample.{fstype}.raw"));
    build(fstype, &tree, &img);
    assert_eq!(probe_path(&img).unwrap(), Probed::Filesystem(fstype));

    let started = Instant::now();
    let opened = open_image(&img, MountFlags::default())
        .unwrap_or_else(|e| panic!("open_image({}): {e:#}", img.display()));
    let elapsed = started.elapsed();
    eprintln!(
        "open_image {fstype}: {elapsed:?}, loop={:?}, dio={:?}",
        opened.loop_device.as_ref().map(|l| &l.path),
        opened
            .loop_device
            .as_ref()
            .and_then(LoopDevice::direct_io_active)
    );

    assert_eq!(opened.fstype, fstype);
    assert_eq!(opened.backing, img);
    assert_eq!(read_through(&opened.mount, "usr/lib/hello"), HELLO);
    assert!(read_through(
        &opened.mount,
        "usr/lib/extension-release.d/extension-release.img"
    )
    .contains("ID=_any"));

    // Detached: neither the image path nor the loop device is in the mount table.
    let tmp_str = tmp.path().to_string_lossy().into_owned();
    assert!(mountinfo_lines_containing(&tmp_str).is_empty());
    match (&opened.loop_device, fstype) {
        (None, FsType::Erofs) => assert!(
            erofs_file_backed_supported(),
            "erofs needs no loop device only where file-backed erofs is supported"
        ),
        (Some(lo), _) => {
            assert!(mountinfo_lines_containing(&as_mount_source(&lo.path)).is_empty());
            assert_eq!(
                loops_backed_by(tmp.path()),
                vec![(lo.path.clone(), img.canonicalize().unwrap())]
            );
        }
        (None, _) => panic!("{fstype} from a regular file must use a loop device"),
    }

    drop(opened);
    leak.assert_clean();
}

#[test]
fn image_probe_bytes_magics_and_short_input() {
    let at = |off: usize, magic: &[u8], len: usize| {
        let mut v = vec![0u8; len];
        v[off..off + magic.len()].copy_from_slice(magic);
        v
    };
    let erofs = 0xE0F5_E1E2u32.to_le_bytes();
    let ext = 0xEF53u16.to_le_bytes();

    // Each magic at its offset, with exactly enough bytes and with a full probe buffer.
    assert_eq!(probe_bytes(b"hsqs"), Probed::Filesystem(FsType::Squashfs));
    assert_eq!(
        probe_bytes(&at(0, b"hsqs", PROBE_LEN)),
        Probed::Filesystem(FsType::Squashfs)
    );
    assert_eq!(
        probe_bytes(&at(1024, &erofs, 1028)),
        Probed::Filesystem(FsType::Erofs)
    );
    assert_eq!(
        probe_bytes(&at(1080, &ext, 1082)),
        Probed::Filesystem(FsType::Ext4)
    );
    assert_eq!(
        probe_bytes(&at(0x10040, b"_BHRfS_M", PROBE_LEN)),
        Probed::Filesystem(FsType::Btrfs)
    );
    assert_eq!(
        probe_bytes(&at(512, b"EFI PART", 520)),
        Probed::Gpt { sector_size: 512 }
    );
    assert_eq!(
        probe_bytes(&at(4096, b"EFI PART", 8192)),
        Probed::Gpt { sector_size: 4096 }
    );

    // Truncated: the magic would start inside but does not fit -> Unknown, no panic.
    assert_eq!(probe_bytes(&[]), Probed::Unknown);
    assert_eq!(probe_bytes(b"hsq"), Probed::Unknown);
    assert_eq!(
        probe_bytes(&at(1024, &erofs, 1028)[..1027]),
        Probed::Unknown
    );
    assert_eq!(probe_bytes(&at(1080, &ext, 1082)[..1081]), Probed::Unknown);
    assert_eq!(
        probe_bytes(&at(0x10040, b"_BHRfS_M", PROBE_LEN)[..PROBE_LEN - 1]),
        Probed::Unknown
    );
    assert_eq!(
        probe_bytes(&at(512, b"EFI PART", 520)[..519]),
        Probed::Unknown
    );
    for len in [
        0, 1, 511, 512, 1023, 1024, 1079, 1080, 4095, 4096, PROBE_LEN,
    ] {
        assert_eq!(
            probe_bytes(&vec![0u8; len]),
            Probed::Unknown,
            "{len} zero bytes"
        );
    }

    // Magic at a wrong offset, wrong endianness, or garbage: Unknown.
    assert_eq!(probe_bytes(&at(1, b"hsqs", 4096)), Probed::Unknown);
    assert_eq!(probe_bytes(b"sqsh"), Probed::Unknown); // big-endian squashfs is not Linux's
    assert_eq!(
        probe_bytes(&at(1024, &0xE0F5_E1E2u32.to_be_bytes(), 2048)),
        Probed::Unknown
    );
    assert_eq!(probe_bytes(&at(1081, &ext, 2048)), Probed::Unknown);
    assert_eq!(
        probe_bytes(&at(0x10000, b"_BHRfS_M", PROBE_LEN)),
        Probed::Unknown
    );
    let garbage = common::random_bytes(PROBE_LEN, 0x2545_F491_4F6C_DD1D);
    assert_eq!(probe_bytes(&garbage), Probed::Unknown);
    assert_eq!(probe_bytes(&[0xff; PROBE_LEN]), Probed::Unknown);

    // A filesystem wins over a stale GPT header (that is what the kernel would mount).
    let mut both = at(512, b"EFI PART", 2048);
    both[1080..1082].copy_from_slice(&ext);
    assert_eq!(probe_bytes(&both), Probed::Filesystem(FsType::Ext4));

    assert_eq!(FsType::Squashfs.kernel_name(), "squashfs");
    assert_eq!(FsType::Erofs.kernel_name(), "erofs");
    assert_eq!(FsType::Ext4.kernel_name(), "ext4");
    assert_eq!(FsType::Btrfs.kernel_name(), "btrfs");
}

/// The prober over the first bytes of the image at `path` (as `ImageFile` hands them over).
fn probe_path(path: &Path) -> std::io::Result<Probed> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(PROBE_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(probe_bytes(&head))
}

#[test]
fn device_probe_errors_name_the_path() {
    let probe = extmerge::initrd::var::probe_path;
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.raw");
    let err = format!("{:#}", probe(&missing).unwrap_err());
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");

    let err = format!("{:#}", probe(tmp.path()).unwrap_err());
    assert!(err.contains(&*tmp.path().to_string_lossy()), "{err}");
    assert!(err.contains("not a regular file or block device"), "{err}");

    let short = tmp.path().join("short.raw");
    std::fs::write(&short, b"hsqs").unwrap();
    assert_eq!(probe(&short).unwrap(), None, "squashfs is no /var");
    assert_eq!(
        probe_path(&short).unwrap(),
        Probed::Filesystem(FsType::Squashfs)
    );
    let empty = tmp.path().join("empty.raw");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(probe_path(&empty).unwrap(), Probed::Unknown);
}

#[test]
fn image_open_squashfs() {
    require_root();
    open_and_read(FsType::Squashfs);
}

#[test]
fn image_open_erofs_file_backed() {
    require_root();
    // This host runs 6.18 with CONFIG_EROFS_FS_BACKED_BY_FILE: no loop device expected.
    assert!(erofs_file_backed_supported());
    open_and_read(FsType::Erofs);
}

#[test]
fn image_open_ext4() {
    require_root();
    open_and_read(FsType::Ext4);
}

#[test]
fn image_open_btrfs() {
    require_root();
    open_and_read(FsType::Btrfs);
}

/// systemd mounts xfs extension images as well; read-only with `norecovery`.
#[test]
fn image_open_xfs() {
    require_root();
    open_and_read(FsType::Xfs);
}

#[test]
fn image_erofs_through_loop_device() {
    // The fallback path for kernels without file-backed erofs.
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let img = tmp.path().join("e.raw");
    mkfs_erofs(&sample_tree(tmp.path()), &img);
    let lo = LoopDevice::attach(
        &img,
        LoopOptions {
            direct_io: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mount = mount_detached(&lo.path, FsType::Erofs, MountFlags::default()).unwrap();
    drop(lo); // the mount alone keeps the device bound
    assert_eq!(read_through(&mount, "usr/lib/hello"), HELLO);
    assert_eq!(loops_backed_by(tmp.path()).len(), 1);
    drop(mount);
    leak.assert_clean();
}

#[test]
fn image_erofs_long_path_is_opened_through_its_fd() {
    // fsconfig string values are capped at 256 bytes; the image is handed to the kernel as
    // the short /proc/thread-self/fd/N of the file opened inside the root, so a long path
    // needs no loop fallback where file-backed erofs is available.
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let deep = tmp.path().join("d".repeat(200)).join("e".repeat(200));
    std::fs::create_dir_all(&deep).unwrap();
    let img = deep.join("long.raw");
    mkfs_erofs(&sample_tree(tmp.path()), &img);
    assert!(img.as_os_str().len() > 256);
    let opened = open_image(&img, MountFlags::default()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(opened.fstype, FsType::Erofs);
    assert_eq!(
        opened.loop_device.is_none(),
        erofs_file_backed_supported(),
        "file-backed where the kernel can, a loop device where it cannot"
    );
    assert_eq!(read_through(&opened.mount, "usr/lib/hello"), HELLO);
    drop(opened);
    leak.assert_clean();
}

/// Open `img` expecting failure; return the error text after checking it names the path
/// and that nothing leaked.
fn expect_open_error(tmp: &Path, img: &Path) -> String {
    let leak = LeakCheck::new(tmp);
    let err = match open_image(img, MountFlags::default()) {
        Ok(opened) => panic!("{} opened as {:?}", img.display(), opened.fstype),
        Err(e) => format!("{e:#}"),
    };
    eprintln!("{}: {err}", img.display());
    assert!(
        err.contains(&*img.to_string_lossy()),
        "error must name the image: {err}"
    );
    leak.assert_clean();
    err
}

#[test]
fn image_open_rejects_empty_file() {
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("empty.raw");
    File::create(&img).unwrap();
    let err = expect_open_error(tmp.path(), &img);
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn image_open_rejects_garbage() {
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("garbage.raw");
    let mut f = File::create(&img).unwrap();
    f.write_all(b"\x7fELF this is no filesystem").unwrap();
    f.write_all(&[0xa5; 100_000]).unwrap();
    drop(f);
    let err = expect_open_error(tmp.path(), &img);
    assert!(err.contains("unrecognized image format"), "{err}");
    assert!(
        err.contains("7f 45 4c 46"),
        "error shows the first bytes: {err}"
    );
}

#[test]
fn image_open_rejects_directory_and_missing() {
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("adir");
    std::fs::create_dir(&dir).unwrap();
    let err = expect_open_error(tmp.path(), &dir);
    assert!(err.contains("not a regular file (directory)"), "{err}");
    expect_open_error(tmp.path(), &tmp.path().join("missing.raw"));
}

#[test]
fn image_open_rejects_gpt_for_now() {
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("disk.raw");
    let mut disk = vec![0u8; 64 * 1024];
    disk[510] = 0x55;
    disk[511] = 0xaa;
    disk[512..520].copy_from_slice(b"EFI PART");
    std::fs::write(&img, &disk).unwrap();
    let err = expect_open_error(tmp.path(), &img);
    assert!(err.contains("GPT disk image (DDI)"), "{err}");
}

/// A valid image cut to its first `keep` bytes: the magic is there, the rest is not.
fn truncated(fstype: FsType, keep: u64) -> String {
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full.raw");
    build(fstype, &sample_tree(tmp.path()), &full);
    let img = tmp.path().join("truncated.raw");
    std::fs::copy(&full, &img).unwrap();
    File::options()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(keep)
        .unwrap();
    assert_eq!(probe_path(&img).unwrap(), Probed::Filesystem(fstype));
    expect_open_error(tmp.path(), &img)
}

#[test]
fn image_open_rejects_truncated_squashfs() {
    require_root();
    truncated(FsType::Squashfs, 100);
}

#[test]
fn image_open_rejects_truncated_erofs() {
    // Fails file-backed, then again through the loop fallback; neither may leak.
    require_root();
    truncated(FsType::Erofs, 1100);
}

#[test]
fn image_open_rejects_truncated_ext4() {
    require_root();
    truncated(FsType::Ext4, 2048);
}

#[test]
fn image_mount_error_carries_kernel_log() {
    // squashfs bytes offered to the erofs driver: the fs-context log explains why.
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let img = tmp.path().join("sq.raw");
    mkfs_squashfs(&sample_tree(tmp.path()), &img);
    let lo = LoopDevice::attach(&img, LoopOptions::default()).unwrap();
    for fstype in [FsType::Erofs, FsType::Ext4, FsType::Btrfs] {
        let err = format!(
            "{:#}",
            mount_detached(&lo.path, fstype, MountFlags::default()).unwrap_err()
        );
        eprintln!("{fstype}: {err}");
        assert!(err.contains(&*lo.path.to_string_lossy()), "{err}");
        assert!(err.contains(fstype.kernel_name()), "{err}");
    }
    // A regular file is not a block device for ext4: ENOTBLK, with the kernel's words.
    let err = format!(
        "{:#}",
        mount_detached(&img, FsType::Ext4, MountFlags::default()).unwrap_err()
    );
    eprintln!("ext4 on a file: {err}");
    assert!(err.contains(&*img.to_string_lossy()), "{err}");
    drop(lo);
    leak.assert_clean();
}

#[test]
fn image_drain_fs_log_reads_messages() {
    require_root();
    enter_private_mount_ns();
    let fs = rustix::mount::fsopen("erofs", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC).unwrap();
    // An unknown parameter is refused and explained in the fs-context log.
    assert!(rustix::mount::fsconfig_set_flag(&fs, "no-such-option").is_err());
    let log = drain_fs_log(fs.as_fd());
    eprintln!("{log:?}");
    assert!(!log.is_empty(), "expected a kernel message");
    assert!(log.iter().any(|l| l.contains("no-such-option")), "{log:?}");
    assert!(drain_fs_log(fs.as_fd()).is_empty(), "the log is drained");
}

#[test]
fn image_loop_device_is_read_only_and_autoclear() {
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let img = tmp.path().join("ro.raw");
    mkfs_ext4(&sample_tree(tmp.path()), &img, 4);
    let before = std::fs::read(&img).unwrap();

    let lo = LoopDevice::attach(&img, LoopOptions::default()).unwrap();
    let n = lo.number;
    assert_eq!(lo.path, PathBuf::from(format!("/dev/loop{n}")));
    assert_eq!(sysfs_loop_attr(n, "ro"), "1");
    assert_eq!(sysfs_loop_attr(n, "loop/autoclear"), "1");
    assert_eq!(sysfs_loop_attr(n, "loop/partscan"), "0");
    assert_eq!(sysfs_loop_attr(n, "size"), (before.len() / 512).to_string());
    assert_eq!(
        loops_backed_by(tmp.path()),
        vec![(lo.path.clone(), img.canonicalize().unwrap())]
    );

    // Writing must fail, whether at open time or at write time.
    match File::options().write(true).open(&lo.path) {
        Err(e) => eprintln!("opening the read-only loop device for writing: {e}"),
        Ok(mut f) => {
            let res = f.write_all(&[0u8; 4096]).and_then(|()| f.sync_all());
            eprintln!("writing to the read-only loop device: {res:?}");
            assert!(res.is_err(), "writing to {} succeeded", lo.path.display());
        }
    }

    // The device is readable and shows the image.
    let mut head = vec![0u8; 2048];
    File::open(&lo.path).unwrap().read_exact(&mut head).unwrap();
    assert_eq!(head, before[..2048]);

    // Autoclear: dropping our only fd releases the device.
    drop(lo);
    assert!(
        wait_until(LOOP_RELEASE_TIMEOUT, || loop_released(n)),
        "loop{n} still bound after the last close"
    );
    assert_eq!(std::fs::read(&img).unwrap(), before, "image unchanged");
    leak.assert_clean();
}

#[test]
fn image_loop_released_after_opened_image_dropped() {
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let img = tmp.path().join("sq.raw");
    mkfs_squashfs(&sample_tree(tmp.path()), &img);
    let opened = open_image(&img, MountFlags::default()).unwrap();
    let n = opened.loop_device.as_ref().unwrap().number;

    // The mount alone keeps the device bound once our loop fd is gone...
    let OpenedImage {
        mount, loop_device, ..
    } = opened;
    drop(loop_device);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!loop_released(n), "loop{n} released while still mounted");
    assert_eq!(read_through(&mount, "usr/lib/hello"), HELLO);

    // ...and closing the mount fd releases it.
    let started = Instant::now();
    drop(mount);
    assert!(
        wait_until(LOOP_RELEASE_TIMEOUT, || loop_released(n)),
        "loop{n} still bound after the mount was dropped"
    );
    eprintln!(
        "loop{n} released {:?} after the mount fd closed",
        started.elapsed()
    );
    leak.assert_clean();
}

#[test]
fn image_loop_offset_and_size_limit() {
    // DDI partitions will be attached this way: an image embedded at an offset.
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let sq = tmp.path().join("sq.raw");
    mkfs_squashfs(&sample_tree(tmp.path()), &sq);
    let sq_bytes = std::fs::read(&sq).unwrap();
    let offset = 1024 * 1024u64;
    let container = tmp.path().join("container.raw");
    let mut data = vec![0x5au8; offset as usize];
    data.extend_from_slice(&sq_bytes);
    data.extend_from_slice(&[0x5a; 8192]);
    std::fs::write(&container, &data).unwrap();

    let lo = LoopDevice::attach(
        &container,
        LoopOptions {
            offset,
            size_limit: sq_bytes.len() as u64,
            direct_io: true,
            block_size: 0,
        },
    )
    .unwrap();
    assert_eq!(
        sysfs_loop_attr(lo.number, "loop/offset"),
        offset.to_string()
    );
    assert_eq!(
        sysfs_loop_attr(lo.number, "loop/sizelimit"),
        sq_bytes.len().to_string()
    );
    assert_eq!(
        probe_path(&lo.path).unwrap(),
        Probed::Filesystem(FsType::Squashfs)
    );
    let mount = mount_detached(&lo.path, FsType::Squashfs, MountFlags::default()).unwrap();
    assert_eq!(read_through(&mount, "usr/lib/hello"), HELLO);
    drop((mount, lo));
    leak.assert_clean();
}

#[test]
fn image_loop_attach_races_are_retried() {
    // Several threads asking LOOP_CTL_GET_FREE at once get the same number; the
    // losers see EBUSY from LOOP_CONFIGURE and must retry, not fail.
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let img = tmp.path().join("sq.raw");
    mkfs_squashfs(&sample_tree(tmp.path()), &img);
    const THREADS: usize = 8;
    let barrier = std::sync::Barrier::new(THREADS);
    let devices: Vec<LoopDevice> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    LoopDevice::attach(&img, LoopOptions::default())
                        .unwrap_or_else(|e| panic!("{e:#}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut numbers: Vec<u32> = devices.iter().map(|d| d.number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), THREADS, "every attach got its own device");
    assert_eq!(loops_backed_by(tmp.path()).len(), THREADS);
    drop(devices);
    leak.assert_clean();
}

#[test]
fn image_block_device_is_mounted_directly() {
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let img = tmp.path().join("e4.raw");
    mkfs_ext4(&sample_tree(tmp.path()), &img, 4);
    let lo = LoopDevice::attach(&img, LoopOptions::default()).unwrap();
    let opened = open_image(&lo.path, MountFlags::default()).unwrap();
    assert_eq!(opened.fstype, FsType::Ext4);
    assert!(
        opened.loop_device.is_none(),
        "no loop on top of a block device"
    );
    assert_eq!(
        loops_backed_by(tmp.path()).len(),
        1,
        "no second loop device"
    );
    assert_eq!(read_through(&opened.mount, "usr/lib/hello"), HELLO);
    drop((opened, lo));
    leak.assert_clean();
}

/// Mount options (per-mount field 6) of the mountinfo line whose mount point is `mnt`.
fn mount_options_at(mnt: &Path) -> Vec<String> {
    let mnt = mnt.to_string_lossy().into_owned();
    let lines = mountinfo_lines_containing(&format!(" {mnt} "));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    fields[5].split(',').map(str::to_owned).collect()
}

#[test]
fn image_mount_flags_are_applied() {
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let img = tmp.path().join("sq.raw");
    mkfs_squashfs(&sample_tree(tmp.path()), &img);

    for (flags, nosuid, noexec) in [
        (MountFlags::default(), false, false),
        (
            MountFlags {
                nosuid: true,
                noexec: false,
            },
            true,
            false,
        ),
        (
            MountFlags {
                nosuid: true,
                noexec: true,
            },
            true,
            true,
        ),
    ] {
        let opened = open_image(&img, flags).unwrap();
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        // Attach in the private namespace only, to look at the flags in mountinfo.
        move_mount(
            &opened.mount,
            "",
            CWD,
            &mnt,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .unwrap();
        let opts = mount_options_at(&mnt);
        eprintln!("{flags:?}: {opts:?}");
        assert!(opts.contains(&"ro".to_owned()), "{opts:?}");
        assert!(opts.contains(&"nodev".to_owned()), "{opts:?}");
        assert_eq!(opts.contains(&"nosuid".to_owned()), nosuid, "{opts:?}");
        assert_eq!(opts.contains(&"noexec".to_owned()), noexec, "{opts:?}");
        assert_eq!(
            std::fs::read_to_string(mnt.join("usr/lib/hello")).unwrap(),
            HELLO
        );
        unmount(&mnt, UnmountFlags::DETACH).unwrap();
        drop(opened);
    }
    leak.assert_clean();
}

#[test]
fn image_open_timings() {
    // Not a benchmark: rough per-format numbers for the report (run with --no-capture).
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let tree = sample_tree(tmp.path());
    const ROUNDS: u32 = 10;
    for fstype in [FsType::Squashfs, FsType::Erofs, FsType::Ext4, FsType::Btrfs] {
        let img = tmp.path().join(format!("t.{fstype}.raw"));
        build(fstype, &tree, &img);
        let mut total = Duration::ZERO;
        let mut worst = Duration::ZERO;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let opened = open_image(&img, MountFlags::default()).unwrap();
            let took = started.elapsed();
            total += took;
            worst = worst.max(took);
            drop(opened);
            // Wait for autoclear so every round gets a fresh device, as at boot.
            assert!(wait_until(LOOP_RELEASE_TIMEOUT, || loops_backed_by(
                tmp.path()
            )
            .is_empty()));
        }
        eprintln!(
            "timing open_image {fstype}: mean {:?}, worst {worst:?} over {ROUNDS}",
            total / ROUNDS
        );
    }
    leak.assert_clean();
}

/// The conflict walk trusts `no_xattrs` to skip looking for overlayfs markers: it must be set
/// only where the kernel can read no xattr at all, a squashfs without an xattr table, and for
/// nothing else: a squashfs that stores one (even `user.*` on a plain file), erofs, ext4.
#[test]
fn only_a_squashfs_without_an_xattr_table_is_opened_as_holding_no_xattrs() {
    require_root();
    enter_private_mount_ns();
    let tmp = tempfile::tempdir().unwrap();
    let leak = LeakCheck::new(tmp.path());
    let tree = sample_tree(tmp.path());
    let mut seen = Vec::new();
    for fstype in [FsType::Squashfs, FsType::Erofs, FsType::Ext4] {
        let img = tmp.path().join(format!("plain.{fstype}.raw"));
        build(fstype, &tree, &img);
        let opened = open_image(&img, MountFlags::default()).unwrap();
        seen.push((fstype, opened.no_xattrs));
    }
    rustix::fs::lsetxattr(
        tree.join("usr/lib/hello"),
        "user.note",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let img = tmp.path().join("xattr.squashfs.raw");
    mkfs_squashfs(&tree, &img);
    let opened = open_image(&img, MountFlags::default()).unwrap();
    seen.push((FsType::Squashfs, opened.no_xattrs));
    drop(opened);
    assert_eq!(
        seen,
        [
            (FsType::Squashfs, true),
            (FsType::Erofs, false),
            (FsType::Ext4, false),
            (FsType::Squashfs, false)
        ]
    );
    leak.assert_clean();
}
