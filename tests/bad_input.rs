//! Bad-input corpus (issue 8, point 4): a table of broken, hostile and odd inputs, each placed
//! into a root that also holds one good sysext and one good confext, each with the outcome it
//! must have. For every case the real binary merges the root and the test checks:
//!
//! * the exit status;
//! * exactly one log line (warning, error, or the "Ignoring …" verdict) names the bad input,
//!   and it gives the expected reason — and no other warning or error is logged;
//! * the good extensions are merged, the root's own `/usr` and `/etc` files still show;
//! * a `refresh` right after is skipped (nothing changed) and leaves one overlay per hierarchy;
//! * after `unmerge` the root's `/usr` and `/etc` are exactly as before and no mount or loop
//!   device is left ([`LeakCheck`]).
//!
//! Some inputs are not bad at all for systemd (names with spaces, setuid files in a confext):
//! those cases expect a merge. State-file cases merge first, corrupt the state record, then
//! check that `refresh` re-merges with a clear reason. The `/var` cases use the library API
//! (the binary does not mount `/var`). Root, each case in its own private mount namespace.

mod common;

use common::*;
use extmerge::initrd::cmdline;
use extmerge::initrd::var::{ensure_var, spec_from_cmdline};
use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Exit status of a refresh that found nothing to do.
const EXIT_SKIPPED: i32 = 77;

/// One case's temporary root (in its own private mount namespace) with the good extensions.
struct Ctx {
    t: TestRoot,
    /// The root passed with `--root`.
    root: PathBuf,
}

impl std::ops::Deref for Ctx {
    type Target = TestRoot;
    fn deref(&self) -> &TestRoot {
        &self.t
    }
}

impl Ctx {
    fn new() -> Ctx {
        let t = TestRoot::new(&[
            ("usr/lib/os-release", DEBIAN),
            ("usr/bin/host-tool", "host\n"),
            ("usr/share/host-data", "host\n"),
            ("etc/hostname", "box\n"),
            ("etc/host.conf", "host\n"),
        ]);
        sysext_dir(
            &t.p("var/lib/extensions/good-sys"),
            "good-sys",
            DEBIAN,
            &[("usr/share/good-sys", "good-sys\n")],
        );
        confext_dir(
            &t.p("var/lib/confexts/good-conf"),
            "good-conf",
            DEBIAN,
            &[("etc/good-conf.conf", "good-conf\n")],
        );
        Ctx {
            root: t.path.clone(),
            t,
        }
    }
}

fn mkdirs(p: &Path) {
    std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", p.display()));
}

/// A squashfs sysext image named `name` (extension-release.`name`, `usr/share/bad-marker`) at `rel`.
fn squashfs_sysext(c: &Ctx, rel: &str, name: &str) -> PathBuf {
    let src = c.scratch(&format!("src-{}", rel.replace('/', "_")));
    sysext_dir(&src, name, DEBIAN, &[("usr/share/bad-marker", "bad\n")]);
    let out = c.p(rel);
    mkdirs(out.parent().unwrap());
    mkfs_squashfs(&src, &out);
    out
}

/// The default bad raw image: a squashfs sysext `bad` at /var/lib/extensions/bad.raw.
fn bad_squashfs(c: &Ctx) -> PathBuf {
    squashfs_sysext(c, "var/lib/extensions/bad.raw", "bad")
}

/// The bad image stored outside the search directory (linked from it), so that sidecars of the
/// wrong type next to it are not discovered as images themselves.
fn stored_bad_squashfs(c: &Ctx) {
    squashfs_sysext(c, "var/store/bad.raw", "bad");
    mkdirs(&c.p("var/lib/extensions"));
    symlink("/var/store/bad.raw", c.p("var/lib/extensions/bad.raw")).unwrap();
}

/// Keep the first `len` bytes of a file.
fn truncate(p: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.set_len(len).unwrap();
}

/// Overwrite bytes of a file at `offset`.
fn patch(p: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// `veritysetup format` the default bad image: writes bad.verity and bad.roothash, returns the hash.
fn verity_bad(c: &Ctx) -> String {
    let img = bad_squashfs(c);
    let out = Command::new("veritysetup")
        .arg("format")
        .arg(&img)
        .arg(c.p("var/lib/extensions/bad.verity"))
        .output()
        .expect("veritysetup (cryptsetup-bin) is installed by make test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(c.p("var/lib/extensions/bad.roothash"), format!("{hash}\n")).unwrap();
    hash
}

/// A self-signed P-256 certificate in `<root>/etc/verity.d/`, trusted for root hash signatures.
fn trusted_cert(c: &Ctx) {
    let dir = c.p("etc/verity.d");
    mkdirs(&dir);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "3",
            "-subj",
            "/CN=bad-input test",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .arg("-keyout")
        .arg(c.scratch("signing.key"))
        .arg("-out")
        .arg(dir.join("test.crt")));
}

/// A GPT disk image of 4 MiB from an sfdisk script.
fn gpt_image(p: &Path, script: &str) {
    mkdirs(p.parent().unwrap());
    let f = std::fs::File::create(p).unwrap();
    f.set_len(4 << 20).unwrap();
    drop(f);
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(p)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk (util-linux) is installed");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a case must end with.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The bad input is left out: exit 0, exactly one line names `image` and gives `reason`.
    Refused {
        image: &'static str,
        reason: &'static str,
    },
    /// Not bad after all (systemd accepts it too): merged, `marker` (root-relative) shows.
    Merged {
        image: &'static str,
        marker: &'static str,
    },
    /// Passed over without a word, as systemd does (masks, lock files): exit 0, no report.
    Silent,
    /// Merge cleanly, corrupt the state record with the setup fn, then `refresh` must re-merge
    /// (exit 0) and say `reason`.
    RefreshAfterCorruption { reason: &'static str },
    /// Library `/var` handling: `cmdline` must give an error naming `names` and `reason`, either
    /// when parsed or from `ensure_var` (1 s timeout), and nothing is mounted at `<root>/var`.
    VarFails {
        cmdline: &'static str,
        names: &'static str,
        reason: &'static str,
    },
}

/// One entry of the corpus.
struct Case {
    name: &'static str,
    /// Places the bad input (for `RefreshAfterCorruption`: corrupts the merged state).
    setup: fn(&Ctx),
    expect: Expect,
    /// Extra arguments for `merge`/`refresh`.
    args: &'static [&'static str],
    /// Run extmerge without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so mode 000 means unreadable.
    no_dac_caps: bool,
    /// Extra checks after the merge.
    check: Option<fn(&Ctx, &str)>,
}

const fn case(name: &'static str, setup: fn(&Ctx), expect: Expect) -> Case {
    Case {
        name,
        setup,
        expect,
        args: &[],
        no_dac_caps: false,
        check: None,
    }
}

const fn refused(image: &'static str, reason: &'static str) -> Expect {
    Expect::Refused { image, reason }
}

fn no_setup(_: &Ctx) {}

/// Sysext `bad` as a directory with these files besides its extension-release.
fn bad_dir(c: &Ctx, files: &[(&str, &str)]) {
    sysext_dir(&c.p("var/lib/extensions/bad"), "bad", DEBIAN, files);
}

/// Sysext directory `bad` whose extension-release.bad is replaced by what `f` makes there.
fn bad_dir_release(c: &Ctx, f: impl FnOnce(&Path)) {
    let dir = c.p("var/lib/extensions/bad");
    write_files(&dir, &[("usr/share/bad-marker", "bad\n")]);
    let rd = dir.join("usr/lib/extension-release.d");
    mkdirs(&rd);
    f(&rd.join("extension-release.bad"));
}

/// The state record inside the merged `/usr` is on a read-only overlay: put a corrupted copy of
/// the meta dir over it, as a bind mount that the next refresh removes with the old overlay.
fn corrupt_state(c: &Ctx, f: impl FnOnce(&Path)) {
    let meta = c.p("usr/.systemd-sysext");
    let copy = c.scratch("meta-copy");
    run(Command::new("cp").arg("-a").arg(&meta).arg(&copy));
    f(&copy.join("extmerge-state.json"));
    run(Command::new("mount").arg("--bind").arg(&copy).arg(&meta));
}

fn cases() -> Vec<Case> {
    vec![
        // ---- Images that are not (whole) file systems ----
        case(
            "zero_length_image",
            |c| write_files(&c.root, &[("var/lib/extensions/bad.raw", "")]),
            refused("'bad'", "empty (0 bytes)"),
        ),
        case(
            "truncated_squashfs_superblock",
            |c| truncate(&bad_squashfs(c), 100),
            refused("'bad'", "is truncated: its squashfs superblock says"),
        ),
        case(
            "truncated_squashfs_body",
            |c| {
                let p = bad_squashfs(c);
                let head = std::fs::read(&p).unwrap();
                let used = u64::from_le_bytes(head[40..48].try_into().unwrap());
                truncate(&p, used - 1)
            },
            refused("'bad'", "is truncated"),
        ),
        case(
            "truncated_erofs",
            |c| {
                let src = c.scratch("src-erofs");
                let big = "x".repeat(20_000);
                sysext_dir(
                    &src,
                    "bad",
                    DEBIAN,
                    &[
                        ("usr/share/bad-marker", "bad\n"),
                        ("usr/share/bad-big", &big),
                    ],
                );
                let p = c.p("var/lib/extensions/bad.raw");
                mkdirs(p.parent().unwrap());
                mkfs_erofs(&src, &p);
                // The kernel mounts a truncated erofs image; only later reads fail.
                let len = std::fs::metadata(&p).unwrap().len();
                truncate(&p, len - 4096)
            },
            refused("'bad'", "is truncated: its erofs superblock says"),
        ),
        case(
            "truncated_ext4",
            |c| {
                let src = c.scratch("src-ext4");
                sysext_dir(&src, "bad", DEBIAN, &[("usr/share/bad-marker", "bad\n")]);
                let p = c.p("var/lib/extensions/bad.raw");
                mkdirs(p.parent().unwrap());
                mkfs_ext4(&src, &p, 4);
                truncate(&p, 64 << 10)
            },
            refused(
                "'bad'",
                "is truncated: its ext4 superblock says the file system takes 4194304 bytes",
            ),
        ),
        case(
            "ext4_with_corrupted_group_descriptors",
            |c| {
                let src = c.scratch("src-ext4");
                sysext_dir(&src, "bad", DEBIAN, &[("usr/share/bad-marker", "bad\n")]);
                let p = c.p("var/lib/extensions/bad.raw");
                mkdirs(p.parent().unwrap());
                run(Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-b", "4096", "-E", "root_owner=0:0", "-d"])
                    .arg(&src)
                    .arg(&p)
                    .arg("4M"));
                // Block 1 holds the group descriptors with 4 KiB blocks.
                patch(&p, 4096, &[0xffu8; 4096]);
            },
            refused("'bad'", "mounting /dev/loop"),
        ),
        case(
            "garbage_image",
            |c| {
                write_files(
                    &c.root,
                    &[("var/lib/extensions/bad.raw", "not an image at all\n")],
                )
            },
            refused("'bad'", "unrecognized image format"),
        ),
        case(
            "wrong_squashfs_magic",
            |c| patch(&bad_squashfs(c), 0, b"hsqX"),
            refused("'bad'", "unrecognized image format"),
        ),
        case(
            // vfat: neither this kernel nor extmerge's prober has it.
            "filesystem_the_kernel_lacks",
            |c| {
                let p = c.p("var/lib/extensions/bad.raw");
                mkdirs(p.parent().unwrap());
                let mut boot = vec![0u8; 1 << 20];
                boot[..3].copy_from_slice(&[0xeb, 0x58, 0x90]);
                boot[3..11].copy_from_slice(b"mkfs.fat");
                boot[82..90].copy_from_slice(b"FAT32   ");
                boot[510..512].copy_from_slice(&[0x55, 0xaa]);
                std::fs::write(&p, boot).unwrap();
            },
            refused("'bad'", "unrecognized image format"),
        ),
        case(
            "gpt_without_partitions",
            |c| gpt_image(&c.p("var/lib/extensions/bad.raw"), "label: gpt\n"),
            refused("'bad'", "partition"),
        ),
        case(
            "gpt_root_partition_without_file_system",
            |c| {
                gpt_image(
                    &c.p("var/lib/extensions/bad.raw"),
                    "label: gpt\nsize=2MiB, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709\n",
                )
            },
            refused("'bad'", "no known file system"),
        ),
        case(
            // The partition holds the first 4 KiB of a squashfs that declares more: refused by
            // name from its superblock, before a loop device is attached.
            "gpt_root_partition_holding_a_truncated_squashfs",
            |c| {
                let src = c.scratch("src-partition");
                sysext_dir(&src, "bad", DEBIAN, &[("usr/share/bad-marker", "bad\n")]);
                // Incompressible, so the file system is far larger than the partition.
                let blob = random_bytes(32 * 1024, 7);
                std::fs::write(src.join("usr/share/bad-blob"), blob).unwrap();
                let fs = c.scratch("partition.squashfs");
                mkfs_squashfs(&src, &fs);
                let p = c.p("var/lib/extensions/bad.raw");
                gpt_image(
                    &p,
                    "label: gpt\nstart=2048, size=8, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name=bad-root\n",
                );
                patch(&p, 2048 * 512, &std::fs::read(&fs).unwrap()[..4096]);
            },
            refused(
                "'bad'",
                "bad.raw: the root-x86-64 partition \"bad-root\" is truncated: its squashfs superblock says the file system takes",
            ),
        ),
        // ---- extension-release ----
        case(
            "missing_extension_release_in_directory",
            |c| {
                write_files(
                    &c.root,
                    &[("var/lib/extensions/bad/usr/share/bad-marker", "bad\n")],
                )
            },
            refused(
                "'bad'",
                "no usr/lib/extension-release.d/extension-release.bad",
            ),
        ),
        case(
            "missing_extension_release_in_image",
            |c| {
                let src = c.scratch("src-norel");
                write_files(&src, &[("usr/share/bad-marker", "bad\n")]);
                let p = c.p("var/lib/extensions/bad.raw");
                mkdirs(p.parent().unwrap());
                mkfs_squashfs(&src, &p);
            },
            refused("'bad'", "extension-release.bad"),
        ),
        case(
            "empty_extension_release",
            |c| bad_dir_release(c, |p| std::fs::write(p, "").unwrap()),
            refused("'bad'", "release data"),
        ),
        case(
            "binary_garbage_extension_release",
            |c| {
                bad_dir_release(c, |p| {
                    std::fs::write(p, b"\x00\xff\xfe=\x01\nID\n=\n\x7fELF\x02\x01").unwrap()
                })
            },
            refused("'bad'", "embedded NUL byte"),
        ),
        case(
            // The quoted ID runs to the end of the file; the value is shown escaped, on one line.
            "extension_release_with_unterminated_quote",
            |c| {
                bad_dir_release(c, |p| {
                    std::fs::write(p, "ID=\"debian\nVERSION_ID=13\n").unwrap()
                })
            },
            refused("'bad'", "ID=debian\\nVERSION_ID=13\\n matches neither"),
        ),
        case(
            "extension_release_for_another_os",
            |c| {
                sysext_dir(
                    &c.p("var/lib/extensions/bad"),
                    "bad",
                    "ID=fedora\nVERSION_ID=40\n",
                    &[("usr/share/bad-marker", "bad\n")],
                )
            },
            refused("'bad'", "ID=fedora matches neither"),
        ),
        case(
            "extension_release_is_a_directory",
            |c| bad_dir_release(c, mkdirs),
            refused("'bad'", "extension-release.bad"),
        ),
        case(
            // Must be refused without being opened (a read would block forever).
            "extension_release_is_a_fifo",
            |c| {
                bad_dir_release(c, |p| {
                    run(Command::new("mkfifo").arg(p));
                })
            },
            refused("'bad'", "not a regular file (fifo)"),
        ),
        case(
            "extension_release_symlink_loop",
            |c| bad_dir_release(c, |p| symlink("extension-release.bad", p).unwrap()),
            refused("'bad'", "symbolic links"),
        ),
        case(
            // Resolved inside the image it points at nothing; outside it would reach the root's
            // own os-release, which would match the host and be accepted.
            "extension_release_symlink_escaping_the_image",
            |c| {
                bad_dir_release(c, |p| {
                    symlink("../../../../../../../../../usr/lib/os-release", p).unwrap()
                })
            },
            refused("'bad'", "extension-release.bad"),
        ),
        // ---- names ----
        case(
            "name_with_spaces",
            |c| {
                sysext_dir(
                    &c.p("var/lib/extensions/bad name"),
                    "bad name",
                    DEBIAN,
                    &[("usr/share/bad-marker", "bad\n")],
                )
            },
            Expect::Merged {
                image: "'bad name'",
                marker: "usr/share/bad-marker",
            },
        ),
        case(
            // systemd 262 fails the whole merge here (it does not escape ':' in lowerdir=);
            // extmerge passes layers one by one (lowerdir+), so the name is no problem.
            "name_with_colon",
            |c| {
                sysext_dir(
                    &c.p("var/lib/extensions/bad:name"),
                    "bad:name",
                    DEBIAN,
                    &[("usr/share/bad-marker", "bad\n")],
                )
            },
            Expect::Merged {
                image: "'bad:name'",
                marker: "usr/share/bad-marker",
            },
        ),
        case(
            "name_with_comma",
            |c| {
                confext_dir(
                    &c.p("var/lib/confexts/bad,name"),
                    "bad,name",
                    DEBIAN,
                    &[("etc/bad-marker.conf", "bad\n")],
                )
            },
            Expect::Merged {
                image: "'bad,name'",
                marker: "etc/bad-marker.conf",
            },
        ),
        case(
            "name_with_backslash_colon_comma_and_spaces_in_a_raw_image",
            |c| {
                squashfs_sysext(c, "var/lib/extensions/bad x\\y:z,w.raw", "bad x\\y:z,w");
            },
            Expect::Merged {
                image: "'bad x\\y:z,w'",
                marker: "usr/share/bad-marker",
            },
        ),
        case(
            // Control characters make an invalid image name (systemd: skipped).
            "name_with_newline",
            |c| {
                sysext_dir(
                    &c.p("var/lib/extensions/bad\nname"),
                    "bad\nname",
                    DEBIAN,
                    &[("usr/share/bad-marker", "bad\n")],
                )
            },
            refused("/var/lib/extensions/bad\\nname", "invalid image name"),
        ),
        // ---- links and directory shapes ----
        case(
            "symlink_loop",
            |c| {
                mkdirs(&c.p("var/lib/extensions"));
                symlink("bad.raw", c.p("var/lib/extensions/bad.raw")).unwrap();
            },
            refused("bad.raw", "symbolic links"),
        ),
        case(
            "symlink_loop_between_two_directories",
            |c| {
                mkdirs(&c.p("etc/extensions"));
                symlink("/var/lib/ping", c.p("etc/extensions/bad.raw")).unwrap();
                symlink("/var/lib/pong", c.p("var/lib/ping")).unwrap();
                symlink("ping", c.p("var/lib/pong")).unwrap();
            },
            refused("bad.raw", "symbolic links"),
        ),
        case(
            // A valid image outside the root; an absolute link to its host path resolves inside
            // the root, where there is nothing.
            "absolute_symlink_escaping_the_root",
            |c| {
                squashfs_sysext(c, "../outside/bad.raw", "bad");
                mkdirs(&c.p("var/lib/extensions"));
                symlink(
                    c.scratch("outside/bad.raw"),
                    c.p("var/lib/extensions/bad.raw"),
                )
                .unwrap();
            },
            refused("bad.raw", "dangling symlink"),
        ),
        case(
            "relative_symlink_escaping_the_root",
            |c| {
                squashfs_sysext(c, "../outside/bad.raw", "bad");
                mkdirs(&c.p("var/lib/extensions"));
                symlink(
                    "../../../../../../../../outside/bad.raw",
                    c.p("var/lib/extensions/bad.raw"),
                )
                .unwrap();
            },
            refused("bad.raw", "dangling symlink"),
        ),
        case(
            // The newest version is a link climbing out of the root with `..`: it stays inside
            // the root, where it dangles, and as in systemd an unresolvable entry fails the pick.
            "vpick_entry_escaping_with_dotdot",
            |c| {
                squashfs_sysext(c, "../outside/bad_2.raw", "bad");
                squashfs_sysext(c, "var/lib/extensions/bad.raw.v/bad_1.raw", "bad");
                symlink(
                    "../../../../../../../../../outside/bad_2.raw",
                    c.p("var/lib/extensions/bad.raw.v/bad_2.raw"),
                )
                .unwrap();
            },
            refused("bad.raw.v", "/outside does not exist"),
        ),
        case(
            // `..` as the version is just a string (systemd's version_is_valid() allows it).
            "vpick_dotdot_version",
            |c| {
                squashfs_sysext(c, "var/lib/extensions/bad.raw.v/bad_...raw", "bad");
            },
            Expect::Merged {
                image: "'bad'",
                marker: "usr/share/bad-marker",
            },
        ),
        case(
            "vpick_directory_empty",
            |c| mkdirs(&c.p("var/lib/extensions/bad.v")),
            refused("bad.v", "versioned directory has no"),
        ),
        case(
            // A directory named like a raw image is a directory image called `bad.raw`; its
            // extension-release.bad still matches (systemd strips .raw when matching).
            "directory_named_like_a_raw_image",
            |c| {
                sysext_dir(
                    &c.p("var/lib/extensions/bad.raw"),
                    "bad",
                    DEBIAN,
                    &[("usr/share/bad-marker", "bad\n")],
                )
            },
            Expect::Merged {
                image: "'bad.raw'",
                marker: "usr/share/bad-marker",
            },
        ),
        case(
            // Flatcar disables a built-in sysext by replacing its enabling link with one to
            // /dev/null. Under --root that link dangles (the root's /dev is empty); it must stay
            // quiet. (It masks nothing else: systemd skips it like any non-image.)
            "dev_null_link",
            |c| {
                mkdirs(&c.p("etc/extensions"));
                symlink("/dev/null", c.p("etc/extensions/bad.raw")).unwrap();
            },
            Expect::Silent,
        ),
        case(
            "lock_file_named_like_an_image",
            |c| {
                squashfs_sysext(c, "var/lib/extensions/.#bad.raw", "bad");
            },
            Expect::Silent,
        ),
        case(
            "search_directory_is_a_file",
            |c| write_files(&c.root, &[("etc/extensions", "not a directory\n")]),
            refused("/etc/extensions", "search directory"),
        ),
        case(
            // Must be reported, never opened (opening a fifo for reading would block).
            "fifo_named_like_an_image",
            |c| {
                mkdirs(&c.p("var/lib/extensions"));
                run(Command::new("mkfifo").arg(c.p("var/lib/extensions/bad.raw")));
            },
            refused("bad.raw", "fifo"),
        ),
        case(
            "roothash_sidecar_is_a_directory",
            |c| {
                stored_bad_squashfs(c);
                mkdirs(&c.p("var/store/bad.roothash"));
            },
            refused("'bad'", "bad.roothash"),
        ),
        case(
            "verity_sidecar_is_a_directory",
            |c| {
                stored_bad_squashfs(c);
                std::fs::write(
                    c.p("var/store/bad.roothash"),
                    format!("{}\n", "ab".repeat(32)),
                )
                .unwrap();
                mkdirs(&c.p("var/store/bad.verity"));
            },
            refused("'bad'", "bad.verity"),
        ),
        // ---- unreadable (extmerge runs without the capabilities that bypass file modes) ----
        Case {
            no_dac_caps: true,
            ..case(
                "unreadable_image",
                |c| {
                    let p = bad_squashfs(c);
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
                },
                refused("'bad'", "Permission denied"),
            )
        },
        Case {
            no_dac_caps: true,
            ..case(
                "unreadable_extension_release",
                |c| {
                    bad_dir(c, &[("usr/share/bad-marker", "bad\n")]);
                    let p = c.p(
                        "var/lib/extensions/bad/usr/lib/extension-release.d/extension-release.bad",
                    );
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
                },
                refused("'bad'", "Permission denied"),
            )
        },
        Case {
            no_dac_caps: true,
            ..case(
                "unreadable_directory_extension",
                |c| {
                    bad_dir(c, &[("usr/share/bad-marker", "bad\n")]);
                    let p = c.p("var/lib/extensions/bad");
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
                },
                refused("'bad'", "Permission denied"),
            )
        },
        // ---- forbidden or dangerous content ----
        case(
            // One layer too many: 499 extensions + the meta layer + the host /usr. The
            // highest-priority 498 merge; the lowest is left out with the reason.
            "layers_501",
            |c| {
                for i in 0..498 {
                    let name = format!("aa-many-{i:03}");
                    sysext_dir(
                        &c.p(&format!("var/lib/extensions/{name}")),
                        &name,
                        DEBIAN,
                        &[(&format!("usr/share/many/{name}"), "x")],
                    );
                }
            },
            refused(
                "'aa-many-000'",
                "overlayfs stacks at most 500 layers per hierarchy and extensions of higher priority take them all",
            ),
        ),
        case(
            "os_release_in_a_directory_sysext",
            |c| bad_dir(c, &[("usr/lib/os-release", "ID=evil\n")]),
            refused("'bad'", "usr/lib/os-release"),
        ),
        // A link to the root itself: the whole OS tree offered as an extension. Its content
        // holds extmerge's own hash cache and the merged /usr; neither counts as content, so
        // the refresh right after the merge skips.
        case(
            "directory_extension_linking_to_the_root",
            |c| {
                mkdirs(&c.p("var/lib/extensions"));
                symlink("/", c.p("var/lib/extensions/bad")).unwrap();
            },
            refused("'bad'", "usr/lib/os-release"),
        ),
        case(
            "os_release_in_an_image",
            |c| {
                let src = c.scratch("src-osrel");
                sysext_dir(&src, "bad", DEBIAN, &[("usr/lib/os-release", "ID=evil\n")]);
                let p = c.p("var/lib/extensions/bad.raw");
                mkdirs(p.parent().unwrap());
                mkfs_squashfs(&src, &p);
            },
            refused("'bad'", "usr/lib/os-release"),
        ),
        Case {
            check: Some(check_etc_nosuid_nodev),
            ..case(
                // Merged like systemd does: the confext overlay is nosuid, so the bit is inert.
                "confext_with_a_setuid_binary",
                |c| {
                    confext_dir(
                        &c.p("var/lib/confexts/bad"),
                        "bad",
                        DEBIAN,
                        &[("etc/bad-marker.conf", "bad\n")],
                    );
                    let p = c.p("var/lib/confexts/bad/etc/bad-suid");
                    std::fs::write(&p, "#!/bin/sh\n").unwrap();
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).unwrap();
                },
                Expect::Merged {
                    image: "'bad'",
                    marker: "etc/bad-suid",
                },
            )
        },
        Case {
            check: Some(check_etc_nosuid_nodev),
            ..case(
                "confext_image_with_a_setuid_binary",
                |c| {
                    let src = c.scratch("src-suid");
                    confext_dir(&src, "bad", DEBIAN, &[("etc/bad-marker.conf", "bad\n")]);
                    let f = src.join("etc/bad-suid");
                    std::fs::write(&f, "#!/bin/sh\n").unwrap();
                    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4755)).unwrap();
                    let p = c.p("var/lib/confexts/bad.raw");
                    mkdirs(p.parent().unwrap());
                    mkfs_squashfs(&src, &p);
                },
                Expect::Merged {
                    image: "'bad'",
                    marker: "etc/bad-suid",
                },
            )
        },
        Case {
            check: Some(check_etc_nosuid_nodev),
            ..case(
                // Merged like systemd does: the confext overlay is nodev.
                "confext_with_a_device_node",
                |c| {
                    confext_dir(
                        &c.p("var/lib/confexts/bad"),
                        "bad",
                        DEBIAN,
                        &[("etc/bad-marker.conf", "bad\n")],
                    );
                    run(Command::new("mknod")
                        .arg(c.p("var/lib/confexts/bad/etc/bad-mem"))
                        .args(["c", "1", "1"]));
                },
                Expect::Merged {
                    image: "'bad'",
                    marker: "etc/bad-mem",
                },
            )
        },
        // ---- verity sidecars (checked before any activation; this host has no device-mapper) ----
        case(
            "roothash_malformed_hex",
            |c| {
                verity_bad(c);
                write_files(
                    &c.root,
                    &[(
                        "var/lib/extensions/bad.roothash",
                        "zz3c0ffee0ddba11c0ffee0ddba11c0ffee0ddba11c0ffee0ddba11c0ffee0dd\n",
                    )],
                );
            },
            refused("'bad'", "invalid character 'z'"),
        ),
        case(
            "roothash_odd_number_of_digits",
            |c| {
                let h = verity_bad(c);
                write_files(&c.root, &[("var/lib/extensions/bad.roothash", &h[1..])]);
            },
            refused("'bad'", "odd number of hex digits"),
        ),
        case(
            "roothash_of_the_wrong_length",
            |c| {
                let h = verity_bad(c);
                write_files(&c.root, &[("var/lib/extensions/bad.roothash", &h[..40])]);
            },
            refused(
                "'bad'",
                "root hash is 20 bytes but the verity tree uses sha256",
            ),
        ),
        case(
            "roothash_empty",
            |c| {
                verity_bad(c);
                write_files(&c.root, &[("var/lib/extensions/bad.roothash", "\n")]);
            },
            refused("'bad'", "root hash is empty"),
        ),
        case(
            "verity_tree_does_not_match",
            |c| {
                verity_bad(c);
                // The tree of another image: its superblock is fine, its top block is not ours.
                let other = c.scratch("other.raw");
                let src = c.scratch("src-other");
                sysext_dir(&src, "other", DEBIAN, &[("usr/share/other", "o\n")]);
                mkfs_squashfs(&src, &other);
                run(Command::new("veritysetup")
                    .arg("format")
                    .arg(&other)
                    .arg(c.p("var/lib/extensions/bad.verity")));
            },
            refused("'bad'", "does not match the image's hash tree"),
        ),
        case(
            "verity_tree_garbage",
            |c| {
                verity_bad(c);
                write_files(
                    &c.root,
                    &[("var/lib/extensions/bad.verity", &"garbage ".repeat(128))],
                );
            },
            refused("'bad'", "no verity superblock"),
        ),
        case(
            "verity_tree_truncated",
            |c| {
                verity_bad(c);
                truncate(&c.p("var/lib/extensions/bad.verity"), 100);
            },
            refused(
                "'bad'",
                "is 100 bytes, too short to hold its 512-byte superblock",
            ),
        ),
        Case {
            args: &["--image-policy=root=signed+absent:usr=signed+absent"],
            ..case(
                // With a trusted certificate in place, so the signature itself is examined.
                "garbage_roothash_signature",
                |c| {
                    verity_bad(c);
                    trusted_cert(c);
                    write_files(
                        &c.root,
                        &[(
                            "var/lib/extensions/bad.roothash.p7s",
                            "-----BEGIN PKCS7-----\nnope\n",
                        )],
                    );
                },
                refused("'bad'", "signature is not trusted"),
            )
        },
        case(
            "empty_roothash_signature",
            |c| {
                verity_bad(c);
                write_files(&c.root, &[("var/lib/extensions/bad.roothash.p7s", "")]);
            },
            refused("'bad'", "is empty"),
        ),
        // ---- the state record of a merge ----
        case(
            "state_file_truncated",
            |c| {
                corrupt_state(c, |p| {
                    let len = std::fs::metadata(p).unwrap().len();
                    truncate(p, len / 2)
                })
            },
            Expect::RefreshAfterCorruption {
                reason: "the state record of the current merge is unusable (parsing",
            },
        ),
        case(
            "state_file_empty",
            |c| corrupt_state(c, |p| truncate(p, 0)),
            Expect::RefreshAfterCorruption {
                reason: "the state record of the current merge is unusable (parsing",
            },
        ),
        case(
            "state_file_from_the_future",
            |c| {
                corrupt_state(c, |p| {
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                    v["state"]["version"] = serde_json::json!(99);
                    std::fs::write(p, serde_json::to_vec(&v).unwrap()).unwrap();
                })
            },
            Expect::RefreshAfterCorruption {
                reason: "state format 99",
            },
        ),
        case(
            "state_file_of_the_wrong_shape",
            |c| corrupt_state(c, |p| std::fs::write(p, "[1, 2, 3]\n").unwrap()),
            Expect::RefreshAfterCorruption {
                reason: "the state record of the current merge is unusable (parsing",
            },
        ),
        // ---- /var from the kernel command line ----
        case(
            "mount_extra_with_too_many_fields",
            no_setup,
            Expect::VarFails {
                cmdline: "systemd.mount-extra=/dev/vdb:/var:ext4:rw:extra",
                names: "systemd.mount-extra=/dev/vdb:/var:ext4:rw:extra",
                reason: "more than 4 ':'-separated fields",
            },
        ),
        case(
            "mount_extra_without_device",
            no_setup,
            Expect::VarFails {
                cmdline: "systemd.mount-extra=:/var",
                names: "systemd.mount-extra=:/var",
                reason: "WHAT is empty",
            },
        ),
        case(
            "mount_extra_with_a_remount_option",
            no_setup,
            Expect::VarFails {
                cmdline: "systemd.mount-extra=LABEL=nope:/var:ext4:rw,remount",
                names: "systemd.mount-extra=LABEL=nope:/var:ext4:rw,remount",
                reason: "option 'remount' is not supported",
            },
        ),
        case(
            "rd_var_without_a_value",
            no_setup,
            Expect::VarFails {
                cmdline: "rd.extmerge.var",
                names: "rd.extmerge.var",
                reason: "needs a value",
            },
        ),
        case(
            "var_device_label_never_appears",
            no_setup,
            Expect::VarFails {
                cmdline: "systemd.mount-extra=LABEL=extmerge-nope:/var:ext4",
                names: "LABEL=extmerge-nope",
                reason: "did not appear within 1.0s",
            },
        ),
        case(
            "var_device_path_never_appears",
            no_setup,
            Expect::VarFails {
                cmdline: "rd.extmerge.var=/dev/disk/by-id/extmerge-never-there",
                names: "/dev/disk/by-id/extmerge-never-there",
                reason: "did not appear within 1.0s",
            },
        ),
    ]
}

/// The merged /etc must be nosuid and nodev (what makes setuid files and device nodes inert).
fn check_etc_nosuid_nodev(c: &Ctx, log: &str) {
    let lines = c.mounts_at("etc");
    let line = lines
        .last()
        .unwrap_or_else(|| panic!("/etc not merged: {log}"));
    let opts: Vec<&str> = line.split(' ').nth(5).unwrap_or("").split(',').collect();
    assert!(
        opts.contains(&"nosuid") && opts.contains(&"nodev"),
        "confext overlay must be nosuid,nodev: {line}"
    );
}

/// Every path below `dir` with its type, mode, owner and content (or link target).
fn listing(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let what = if m.is_dir() {
                walk(base, &p, out);
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else {
                format!("{:?}", std::fs::read(&p).ok())
            };
            out.insert(
                rel,
                format!("{:o} {}:{} {what}", m.mode(), m.uid(), m.gid()),
            );
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Run the binary on the case's root.
fn extmerge(c: &Ctx, case: &Case, verb: &str) -> Output {
    let bin = env!("CARGO_BIN_EXE_extmerge");
    let mut cmd = if case.no_dac_caps {
        let mut s = Command::new("setpriv");
        s.args([
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
            bin,
        ]);
        s
    } else {
        Command::new(bin)
    };
    cmd.arg(verb)
        .args(case.args)
        .arg(format!("--root={}", c.root.display()))
        .env_remove("EXTMERGE_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("SYSTEMD_EXEC_PID")
        .output()
        .unwrap_or_else(|e| panic!("running extmerge {verb}: {e}"))
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Log lines that report a problem: warnings, errors and "Ignoring …" verdicts.
fn report_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("WARN") || t.starts_with("ERROR") || t.contains("Ignoring ")
        })
        .collect()
}

/// Marker files a bad input carries; they must not show unless the input is merged.
const BAD_MARKERS: &[&str] = &["usr/share/bad-marker", "etc/bad-marker.conf"];

/// Checks that hold after every merge: the good extensions and the root's own files show.
fn check_goods(c: &Ctx, sysext_merged: bool, log: &str) {
    assert_eq!(
        c.read("etc/good-conf.conf").as_deref(),
        Some("good-conf\n"),
        "good confext not merged: {log}"
    );
    if sysext_merged {
        assert_eq!(
            c.read("usr/share/good-sys").as_deref(),
            Some("good-sys\n"),
            "good sysext not merged: {log}"
        );
    }
    assert_eq!(c.read("usr/bin/host-tool").as_deref(), Some("host\n"));
    assert_eq!(c.read("usr/share/host-data").as_deref(), Some("host\n"));
    assert_eq!(c.read("etc/hostname").as_deref(), Some("box\n"));
    assert_eq!(c.read("etc/host.conf").as_deref(), Some("host\n"));
    assert_eq!(
        c.read("usr/lib/os-release").as_deref(),
        Some(DEBIAN),
        "the OS identity must never change"
    );
    for h in ["usr", "etc"] {
        let n = c.mounts_at(h).len();
        assert!(
            n <= 1,
            "/{h} carries {n} mounts, expected one overlay at most: {:#?}",
            c.mounts_at(h)
        );
    }
}

/// Run one case; returns a description of what went wrong.
fn run_case(case: &Case) -> Result<(), String> {
    let started = Instant::now();
    let c = Ctx::new();
    let leak = &c.leak;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case_in(case, &c)));
    // Whatever happened, unmerge and look for leaks, so one case cannot poison the next.
    // (A corrupted meta copy bound over /usr's meta dir goes with the overlay it sits on.)
    let out = extmerge(&c, &plain(&[]), "unmerge");
    let cleanup = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(out.status.success(), "unmerge: {}", stderr_of(&out));
        leak.assert_clean();
    }));
    eprintln!("{}: {:?}", case.name, started.elapsed());
    let msg = |e: Box<dyn std::any::Any + Send>| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".to_string())
    };
    match (result, cleanup) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), _) => Err(msg(e)),
        (Ok(()), Err(e)) => Err(format!("cleanup: {}", msg(e))),
    }
}

/// Settings for runs outside a case's own merge (clean-up, state and /var cases).
fn plain(args: &'static [&'static str]) -> Case {
    Case {
        args,
        ..case("plain", no_setup, Expect::Silent)
    }
}

fn run_case_in(case: &Case, c: &Ctx) {
    match case.expect {
        Expect::VarFails {
            cmdline,
            names,
            reason,
        } => return var_case(c, cmdline, names, reason),
        Expect::RefreshAfterCorruption { reason } => return state_case(case, c, reason),
        _ => {}
    }
    (case.setup)(c);
    let usr_before = listing(&c.p("usr"));
    let etc_before = listing(&c.p("etc"));

    let out = extmerge(c, case, "merge");
    let log = stderr_of(&out);
    let code = out.status.code();
    let reports = report_lines(&log);
    eprintln!("{}: merge exit {code:?}, reports: {reports:#?}", case.name);
    match case.expect {
        Expect::Refused { image, reason } => {
            assert_eq!(code, Some(0), "merge exit status: {log}");
            let naming: Vec<&&str> = reports.iter().filter(|l| l.contains(image)).collect();
            assert_eq!(
                naming.len(),
                1,
                "expected exactly one report naming {image}: {log}"
            );
            assert!(
                naming[0].contains(reason),
                "the report on {image} lacks {reason:?}: {}",
                naming[0]
            );
            assert_eq!(reports.len(), 1, "unrelated reports: {log}");
            check_goods(c, true, &log);
            for m in BAD_MARKERS {
                assert!(c.read(m).is_none(), "{m} of the refused input shows: {log}");
            }
        }
        Expect::Merged { image, marker } => {
            assert_eq!(code, Some(0), "merge exit status: {log}");
            assert!(reports.is_empty(), "no warning expected: {log}");
            assert!(
                log.lines()
                    .any(|l| l.contains("Using extensions") && l.contains(image)),
                "{image} not among the merged extensions: {log}"
            );
            assert!(
                std::fs::symlink_metadata(c.p(marker)).is_ok(),
                "{marker} does not show: {log}"
            );
            check_goods(c, true, &log);
        }
        Expect::Silent => {
            assert_eq!(code, Some(0), "merge exit status: {log}");
            assert!(reports.is_empty(), "no report expected: {log}");
            check_goods(c, true, &log);
            for m in BAD_MARKERS {
                assert!(c.read(m).is_none(), "{m} shows: {log}");
            }
        }
        Expect::RefreshAfterCorruption { .. } | Expect::VarFails { .. } => unreachable!(),
    }
    if let Some(check) = case.check {
        check(c, &log);
    }

    {
        let out = extmerge(c, case, "refresh");
        let rlog = stderr_of(&out);
        assert_eq!(
            out.status.code(),
            Some(EXIT_SKIPPED),
            "refresh right after the merge must be skipped: {rlog}"
        );
        check_goods(c, true, &rlog);
    }

    let out = extmerge(c, case, "unmerge");
    assert!(out.status.success(), "unmerge: {}", stderr_of(&out));
    assert!(c.mounts_at("usr").is_empty() && c.mounts_at("etc").is_empty());
    assert_eq!(listing(&c.p("usr")), usr_before, "/usr changed");
    assert_eq!(listing(&c.p("etc")), etc_before, "/etc changed");
}

/// Merge, corrupt the state record, refresh: re-merged with a reason, one overlay per hierarchy.
fn state_case(case: &Case, c: &Ctx, reason: &str) {
    let out = extmerge(c, case, "merge");
    let log = stderr_of(&out);
    assert!(out.status.success(), "{log}");
    check_goods(c, true, &log);
    (case.setup)(c);
    let out = extmerge(c, &plain(&["--class=sysext"]), "refresh");
    let log = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "refresh must re-merge: {log}");
    assert!(
        log.contains(reason),
        "refresh gives no reason {reason:?}: {log}"
    );
    // At most one warning, and it is the one that names the reason.
    let reports = report_lines(&log);
    assert!(
        reports.len() <= 1 && reports.iter().all(|l| l.contains(reason)),
        "{log}"
    );
    check_goods(c, true, &log);
    assert_eq!(c.mounts_at("usr").len(), 1, "one overlay on /usr: {log}");
    let mounts = mountinfo_lines_containing(&c.scratch("meta-copy").display().to_string());
    assert!(
        mounts.is_empty(),
        "the corrupted copy went with the old overlay: {mounts:#?}"
    );
    // The new record is sound: the next refresh skips.
    let out = extmerge(c, &plain(&["--class=sysext"]), "refresh");
    assert_eq!(out.status.code(), Some(EXIT_SKIPPED), "{}", stderr_of(&out));
}

/// The `/var` spec fails (parse, options or device wait) naming the spec; nothing is mounted;
/// the extensions still merge afterwards.
fn var_case(c: &Ctx, line: &str, names: &str, reason: &str) {
    let params = cmdline::parse(line);
    let started = Instant::now();
    let err = match spec_from_cmdline(&params, true) {
        Err(e) => e,
        Ok(None) => panic!("{line}: no /var spec found"),
        Ok(Some(spec)) => match ensure_var(&c.root, Some(&spec), Duration::from_secs(1)) {
            Ok(o) => panic!("{line}: ensure_var succeeded: {o:?}"),
            Err(e) => format!("{e:#}"),
        },
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a missing device must not hang: {:?}",
        started.elapsed()
    );
    eprintln!("{line}: {err}");
    assert!(err.contains(names), "error does not name {names:?}: {err}");
    assert!(err.contains(reason), "error lacks {reason:?}: {err}");
    assert!(
        c.mounts_at("var").is_empty(),
        "nothing may be mounted at /var: {:#?}",
        c.mounts_at("var")
    );
    let out = extmerge(c, &plain(&[]), "merge");
    let log = stderr_of(&out);
    assert!(out.status.success(), "{log}");
    assert!(report_lines(&log).is_empty(), "{log}");
    check_goods(c, true, &log);
}

macro_rules! bad_input {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                enter_private_mount_ns();
                let all = cases();
                let case = all
                    .iter()
                    .find(|c| c.name == stringify!($name))
                    .expect("case defined in the table");
                if let Err(e) = run_case(case) {
                    panic!("bad-input case {}: {e}", case.name);
                }
            }
        )*
        /// Every case in the table has its own test, and the corpus is big enough.
        #[test]
        fn every_case_has_a_test() {
            let tests = [$(stringify!($name)),*];
            let all = cases();
            assert!(all.len() >= 40, "the corpus needs at least 40 cases");
            for c in &all {
                assert!(tests.contains(&c.name), "case {} has no test", c.name);
            }
            let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), all.len(), "duplicate case names");
        }
    };
}

bad_input!(
    zero_length_image,
    truncated_squashfs_superblock,
    truncated_squashfs_body,
    truncated_erofs,
    truncated_ext4,
    ext4_with_corrupted_group_descriptors,
    garbage_image,
    wrong_squashfs_magic,
    filesystem_the_kernel_lacks,
    gpt_without_partitions,
    gpt_root_partition_without_file_system,
    gpt_root_partition_holding_a_truncated_squashfs,
    missing_extension_release_in_directory,
    missing_extension_release_in_image,
    empty_extension_release,
    binary_garbage_extension_release,
    extension_release_with_unterminated_quote,
    extension_release_for_another_os,
    extension_release_is_a_directory,
    extension_release_is_a_fifo,
    extension_release_symlink_loop,
    extension_release_symlink_escaping_the_image,
    name_with_spaces,
    name_with_colon,
    name_with_comma,
    name_with_backslash_colon_comma_and_spaces_in_a_raw_image,
    name_with_newline,
    symlink_loop,
    symlink_loop_between_two_directories,
    absolute_symlink_escaping_the_root,
    relative_symlink_escaping_the_root,
    vpick_entry_escaping_with_dotdot,
    vpick_dotdot_version,
    vpick_directory_empty,
    directory_named_like_a_raw_image,
    dev_null_link,
    lock_file_named_like_an_image,
    search_directory_is_a_file,
    fifo_named_like_an_image,
    roothash_sidecar_is_a_directory,
    verity_sidecar_is_a_directory,
    unreadable_image,
    unreadable_extension_release,
    unreadable_directory_extension,
    layers_501,
    os_release_in_a_directory_sysext,
    directory_extension_linking_to_the_root,
    os_release_in_an_image,
    confext_with_a_setuid_binary,
    confext_image_with_a_setuid_binary,
    confext_with_a_device_node,
    roothash_malformed_hex,
    roothash_odd_number_of_digits,
    roothash_of_the_wrong_length,
    roothash_empty,
    verity_tree_does_not_match,
    verity_tree_garbage,
    verity_tree_truncated,
    garbage_roothash_signature,
    empty_roothash_signature,
    state_file_truncated,
    state_file_empty,
    state_file_from_the_future,
    state_file_of_the_wrong_shape,
    mount_extra_with_too_many_fields,
    mount_extra_without_device,
    mount_extra_with_a_remount_option,
    rd_var_without_a_value,
    var_device_label_never_appears,
    var_device_path_never_appears,
);
