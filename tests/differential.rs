//! Differential tests against the real systemd-sysext/systemd-confext 262 from a Debian unstable
//! chroot (`make chroot`): the same scenario tree is merged by systemd on one copy and by
//! extmerge on an identical copy, then the accepted sets, the merged file listings, the meta
//! files and the overlay shapes are compared. Deliberate differences are asserted as such.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn chroot_dir() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/chroot/unstable");
    assert!(
        p.join(".extmerge-ready").exists() && p.join("usr/bin/systemd-sysext").exists(),
        "the Debian unstable chroot is missing: run `make chroot` (make test does it)"
    );
    // mountinfo shows canonical paths: compare against those.
    std::fs::canonicalize(&p).unwrap()
}

/// A private namespace with the chroot's /proc, /sys, /dev, /run and two scenario copies.
/// The chroot is bind-mounted onto itself first: systemd's dissect helper makes "/" a slave
/// mount, which fails with EINVAL when the chroot's "/" is not a mount point.
struct Env {
    chroot: PathBuf,
    _t: tempfile::TempDir,
    /// Mount point inside the chroot for systemd's copy (path as seen from inside).
    sd_inner: PathBuf,
    /// Host path of systemd's copy, as seen through the chroot (the one to inspect).
    sd: PathBuf,
    /// Host path of extmerge's copy.
    ours: PathBuf,
    leak: LeakCheck,
}

fn sh(cmd: &str) {
    run(Command::new("sh").args(["-euc", cmd]));
}

impl Env {
    fn new() -> Env {
        enter_private_mount_ns();
        let chroot = chroot_dir();
        let c = chroot.display();
        sh(&format!(
            "mount --bind {c} {c}; mount -t proc proc {c}/proc; mount --rbind /sys {c}/sys; mount --rbind /dev {c}/dev; \
             mount -t tmpfs -o mode=755 tmpfs {c}/run; mount -t tmpfs tmpfs {c}/tmp"
        ));
        let t = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(t.path()).unwrap();
        let sd_inner = PathBuf::from("/tmp/sd");
        let sd = chroot.join("tmp/sd");
        std::fs::create_dir_all(&sd).unwrap();
        let leak = LeakCheck::new(&base);
        Env {
            chroot,
            _t: t,
            sd_inner,
            sd,
            ours: base.join("ours"),
            leak,
        }
    }

    /// Copy the scenario tree to both places; systemd's copy is a shared bind so the mounts its
    /// private child makes propagate back (DESIGN.md, "Known traps").
    fn place(&self, tree: &Path) {
        run(Command::new("cp").arg("-a").arg(tree).arg(&self.ours));
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", tree.display()))
            .arg(&self.sd));
        run(Command::new("mount")
            .arg("--bind")
            .arg(&self.sd)
            .arg(&self.sd));
        run(Command::new("mount").arg("--make-rshared").arg(&self.sd));
    }

    fn systemd(&self, class: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new("chroot");
        c.arg(&self.chroot)
            .arg(format!("/usr/bin/systemd-{class}"))
            .args(args);
        c.arg(format!("--root={}", self.sd_inner.display()));
        c.env_clear()
            .env("PATH", "/usr/bin:/usr/sbin")
            .env("SYSTEMD_LOG_LEVEL", "debug");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn ours(&self, class: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_extmerge"));
        c.arg(format!("--class={class}"))
            .args(args)
            .arg(format!("--root={}", self.ours.display()));
        c.env_remove("JOURNAL_STREAM").env("EXTMERGE_LOG", "debug");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// extmerge run on systemd's copy (`args` include the class and verb).
    fn ours_on_sd(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_extmerge"))
            .args(args)
            .arg(format!("--root={}", self.sd.display()))
            .envs(env.iter().copied())
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "extmerge {args:?} on systemd's copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn finish(self) {
        let out = self.ours("all", &["unmerge"], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&self.sd)
            .status();
        let c = self.chroot.display();
        sh(&format!("umount -R -l {c}"));
        self.leak.assert_clean();
    }
}

/// (path, type, mode, uid, gid, content hash or link target) of every entry below `dir`.
fn listing(dir: &Path, skip: &str) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, skip: &str, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if rel == skip {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("link->{}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_file() {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&p).unwrap().hash(&mut h);
                format!("file:{:016x}", h.finish())
            } else if ft.is_char_device() {
                format!("char:{}", m.rdev())
            } else {
                "other".to_string()
            };
            out.insert(
                rel,
                format!(
                    "{what} {:o} {}:{}",
                    m.permissions().mode() & 0o7777,
                    m.uid(),
                    m.gid()
                ),
            );
            if ft.is_dir() {
                walk(base, &p, skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// Mount attributes and overlay shape of the mount at `target`, with paths made root-relative.
fn overlay_shape(target: &Path, roots: &[&Path]) -> Option<String> {
    let norm = |v: &str| {
        // Ephemeral uppers live on each tool's private tmpfs: only their last component matters.
        if v.starts_with("/run/systemd/sysext/") || v.starts_with("/run/extmerge/ws/") {
            let last = Path::new(v)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            return format!("<private tmpfs>/{last}");
        }
        let mut v = v.to_string();
        for r in roots {
            v = v.replace(&*r.to_string_lossy(), "<root>");
        }
        v
    };
    let t = target.to_string_lossy().into_owned();
    let info = mountinfo();
    let line = info
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(t.as_str()))?;
    let opts: Vec<&str> = line
        .split(' ')
        .nth(5)
        .unwrap()
        .split(',')
        .filter(|o| !o.starts_with("relatime"))
        .collect();
    let sup = line.split(" - ").nth(1).unwrap();
    let mut parts = sup.split(' ');
    let (fstype, source, superopts) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap_or(""),
    );
    let mut lowers = 0;
    let mut rest = Vec::new();
    for o in superopts.split(',') {
        if let Some(v) = o.strip_prefix("lowerdir=") {
            lowers += v.split(':').count();
        } else if o.starts_with("lowerdir+=") {
            lowers += 1;
        } else if let Some(v) = o.strip_prefix("upperdir=") {
            rest.push(format!("upperdir={}", norm(v)));
        } else if let Some(v) = o.strip_prefix("workdir=") {
            rest.push(format!("workdir={}", norm(v)));
        } else if o != "rw" && o != "ro" && !o.starts_with("uuid=") {
            rest.push(o.to_string());
        }
    }
    rest.sort();
    let mut opts = opts;
    opts.sort();
    Some(format!(
        "{fstype} {source} [{}] lowers={lowers} {}",
        opts.join(","),
        rest.join(",")
    ))
}

/// One scenario: a tree builder, the class, extra args and environment.
struct Scenario {
    name: &'static str,
    class: &'static str,
    hierarchies: &'static [&'static str],
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    build: fn(&Path),
}

fn w(root: &Path, files: &[(&str, &str)]) {
    write_files(root, files);
}

/// A mutable directory for /opt (mode 0755) holding one file `name`.
fn mutable_opt(r: &Path, name: &str) {
    w(
        r,
        &[(&format!("var/lib/extensions.mutable/opt/{name}"), name)],
    );
    std::fs::set_permissions(
        r.join("var/lib/extensions.mutable/opt"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

/// A Debian host with a mutable directory for /opt and the sysext directory `cf` providing
/// `opt/cf`: what `Mutable=auto` from a configuration file would use.
fn host_with_mutable_opt(r: &Path) {
    host(r, OS);
    mutable_opt(r, "u");
    sysext_at(r, "var/lib/extensions/cf", "cf", "ID=_any\n", "opt/cf", "c");
}

/// A directory sysext `name` at `root/at` with one file.
fn sysext_at(root: &Path, at: &str, name: &str, release: &str, file: &str, content: &str) {
    common::sysext_dir(&root.join(at), name, release, &[(file, content)]);
}

fn image(root: &Path, at: &str, name: &str, release: &str, fs: &str) {
    let src = root.parent().unwrap().join("img-src").join(name);
    sysext_at(
        &src,
        ".",
        name,
        release,
        &format!("usr/share/{name}/data"),
        name,
    );
    let out = root.join(at);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    match fs {
        "squashfs" => mkfs_squashfs(&src, &out),
        "erofs" => mkfs_erofs(&src, &out),
        _ => mkfs_ext4(&src, &out, 8),
    }
}

fn host(root: &Path, os_release: &str) {
    w(
        root,
        &[
            ("usr/lib/os-release", os_release),
            ("usr/bin/host", "h"),
            ("usr/share/doc/x", "host"),
            ("etc/hostname", "h\n"),
            ("opt/hostopt", "o"),
        ],
    );
}

const OS: &str = "ID=debian\nID_LIKE=\"linux-family other\"\nVERSION_ID=13\nSYSEXT_LEVEL=1.0\n";

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "dir_any",
            class: "sysext",
            hierarchies: &["usr", "opt"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/a",
                    "a",
                    "ID=_any\n",
                    "usr/bin/a",
                    "a",
                );
            },
        },
        Scenario {
            name: "id_and_version",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "etc/extensions/v",
                    "v",
                    "ID=debian\nVERSION_ID=13\n",
                    "usr/bin/v",
                    "v",
                );
            },
        },
        Scenario {
            name: "id_like",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "run/extensions/l",
                    "l",
                    "ID=other\nVERSION_ID=13\n",
                    "usr/bin/l",
                    "l",
                );
            },
        },
        Scenario {
            name: "version_mismatch_ignored",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/old",
                    "old",
                    "ID=debian\nVERSION_ID=12\n",
                    "usr/bin/old",
                    "o",
                );
                sysext_at(
                    r,
                    "var/lib/extensions/new",
                    "new",
                    "ID=debian\nVERSION_ID=13\n",
                    "usr/bin/new",
                    "n",
                );
            },
        },
        Scenario {
            name: "level_beats_version",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/lv",
                    "lv",
                    "ID=debian\nVERSION_ID=99\nSYSEXT_LEVEL=1.0\n",
                    "usr/bin/lv",
                    "l",
                );
            },
        },
        Scenario {
            name: "architecture_mismatch",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/arm",
                    "arm",
                    "ID=_any\nARCHITECTURE=s390x\n",
                    "usr/bin/arm",
                    "a",
                );
                sysext_at(
                    r,
                    "var/lib/extensions/any",
                    "any",
                    "ID=_any\nARCHITECTURE=_any\n",
                    "usr/bin/any",
                    "a",
                );
            },
        },
        Scenario {
            name: "initrd_scope_only_ignored",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/i",
                    "i",
                    "ID=_any\nSYSEXT_SCOPE=initrd\n",
                    "usr/bin/i",
                    "i",
                );
                sysext_at(
                    r,
                    "var/lib/extensions/s",
                    "s",
                    "ID=_any\nSYSEXT_SCOPE=system\n",
                    "usr/bin/s",
                    "s",
                );
            },
        },
        Scenario {
            name: "squashfs_image",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                image(
                    r,
                    "var/lib/extensions/sq.raw",
                    "sq",
                    "ID=_any\n",
                    "squashfs",
                );
            },
        },
        Scenario {
            name: "erofs_image",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                image(
                    r,
                    "etc/extensions/er.sysext.raw",
                    "er",
                    "ID=debian\nSYSEXT_LEVEL=1.0\n",
                    "erofs",
                );
            },
        },
        Scenario {
            name: "ext4_image",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                image(r, "run/extensions/e4.raw", "e4", "ID=_any\n", "ext4");
            },
        },
        Scenario {
            name: "precedence_first_dir_wins",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(r, "etc/extensions/p", "p", "ID=_any\n", "usr/bin/p", "etc");
                sysext_at(
                    r,
                    "var/lib/extensions/p",
                    "p",
                    "ID=_any\n",
                    "usr/bin/p",
                    "var",
                );
            },
        },
        Scenario {
            name: "mask_with_empty_dir",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/m",
                    "m",
                    "ID=_any\n",
                    "usr/bin/m",
                    "m",
                );
                std::fs::create_dir_all(r.join("etc/extensions/m")).unwrap();
                sysext_at(
                    r,
                    "var/lib/extensions/k",
                    "k",
                    "ID=_any\n",
                    "usr/bin/k",
                    "k",
                );
            },
        },
        Scenario {
            name: "dev_null_link_masks_nothing",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/d",
                    "d",
                    "ID=_any\n",
                    "usr/bin/d",
                    "d",
                );
                std::fs::create_dir_all(r.join("etc/extensions")).unwrap();
                symlink("/dev/null", r.join("etc/extensions/d.raw")).unwrap();
            },
        },
        Scenario {
            name: "absolute_symlink_inside_root",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                image(r, "opt/store/tool-1.2.raw", "tool", "ID=_any\n", "squashfs");
                std::fs::create_dir_all(r.join("etc/extensions")).unwrap();
                symlink("/opt/store/tool-1.2.raw", r.join("etc/extensions/tool.raw")).unwrap();
            },
        },
        Scenario {
            name: "vpick_highest_version",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/vp.v/vp_1.9",
                    "vp",
                    "ID=_any\n",
                    "usr/bin/vp",
                    "1.9",
                );
                sysext_at(
                    r,
                    "var/lib/extensions/vp.v/vp_1.10",
                    "vp",
                    "ID=_any\n",
                    "usr/bin/vp",
                    "1.10",
                );
            },
        },
        Scenario {
            name: "layer_order_shadowing",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/app_9",
                    "app_9",
                    "ID=_any\n",
                    "usr/share/doc/x",
                    "nine",
                );
                sysext_at(
                    r,
                    "var/lib/extensions/app_10",
                    "app_10",
                    "ID=_any\n",
                    "usr/share/doc/x",
                    "ten",
                );
            },
        },
        Scenario {
            name: "release_name_stem_fallback",
            class: "sysext",
            hierarchies: &["usr"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/foo_1.2",
                    "foo",
                    "ID=_any\n",
                    "usr/bin/foo",
                    "f",
                );
            },
        },
        Scenario {
            name: "sysext_usr_and_opt",
            class: "sysext",
            hierarchies: &["usr", "opt"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(
                    r,
                    "var/lib/extensions/both",
                    "both",
                    "ID=_any\n",
                    "opt/both/bin",
                    "b",
                );
                w(r, &[("var/lib/extensions/both/usr/bin/both", "b")]);
            },
        },
        Scenario {
            name: "missing_opt_created",
            class: "sysext",
            hierarchies: &["usr", "opt"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                std::fs::remove_dir_all(r.join("opt")).unwrap();
                sysext_at(
                    r,
                    "var/lib/extensions/o",
                    "o",
                    "ID=_any\n",
                    "opt/o/bin",
                    "o",
                );
            },
        },
        Scenario {
            name: "confext_dir",
            class: "confext",
            hierarchies: &["etc"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                w(
                    r,
                    &[
                        (
                            "run/confexts/c/etc/extension-release.d/extension-release.c",
                            "ID=_any\n",
                        ),
                        ("run/confexts/c/etc/c.conf", "c"),
                        ("run/confexts/c/etc/hostname", "ext\n"),
                    ],
                );
            },
        },
        Scenario {
            name: "confext_flatcar_self_upper",
            class: "confext",
            hierarchies: &["etc"],
            args: &["--mutable=auto"],
            env: &[],
            build: |r| {
                host(r, "ID=flatcar\nVERSION_ID=4000.0.0\n");
                w(r, &[("usr/lib/confexts/00-default/etc/extension-release.d/extension-release.00-default", "ID=_any\n"), ("usr/lib/confexts/00-default/etc/default.conf", "d")]);
                std::fs::create_dir_all(r.join("var/lib/extensions.mutable")).unwrap();
                symlink("/etc", r.join("var/lib/extensions.mutable/etc")).unwrap();
            },
        },
        Scenario {
            name: "sysext_mutable_yes",
            class: "sysext",
            hierarchies: &["usr", "opt"],
            args: &["--mutable=yes"],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(r, "var/lib/extensions/y", "y", "ID=_any\n", "opt/y", "y");
            },
        },
        Scenario {
            name: "sysext_mutable_import_env",
            class: "sysext",
            hierarchies: &["opt"],
            args: &[],
            env: &[("SYSTEMD_SYSEXT_MUTABLE_MODE", "import")],
            build: |r| {
                host(r, OS);
                mutable_opt(r, "imported");
                sysext_at(r, "var/lib/extensions/im", "im", "ID=_any\n", "opt/im", "i");
            },
        },
        Scenario {
            name: "config_file_mutable_auto",
            class: "sysext",
            hierarchies: &["opt"],
            args: &[],
            env: &[],
            build: |r| {
                host_with_mutable_opt(r);
                w(
                    r,
                    &[("etc/systemd/sysext.conf", "[SysExt]\nMutable=auto\n")],
                );
            },
        },
        // systemd 262 ignores the whole configuration when one file cannot be read ("Failed
        // to parse sysext config file, ignoring"): here a drop-in with a line over its 1 MiB
        // line limit, which is also over extmerge's 1 MiB file cap. Mutable=auto is not applied.
        Scenario {
            name: "config_file_unreadable_dropin_ignores_all",
            class: "sysext",
            hierarchies: &["opt"],
            args: &[],
            env: &[],
            build: |r| {
                host_with_mutable_opt(r);
                let long = format!("[SysExt]\n#{}\n", "x".repeat(2 << 20));
                w(
                    r,
                    &[
                        ("etc/systemd/sysext.conf", "[SysExt]\nMutable=auto\n"),
                        ("etc/systemd/sysext.conf.d/10-long.conf", &long),
                    ],
                );
            },
        },
        // The first main file found is a directory: no configuration at all, not the next
        // directory's main file.
        Scenario {
            name: "config_main_file_a_directory_ignores_all",
            class: "sysext",
            hierarchies: &["opt"],
            args: &[],
            env: &[],
            build: |r| {
                host_with_mutable_opt(r);
                w(
                    r,
                    &[("usr/lib/systemd/sysext.conf", "[SysExt]\nMutable=auto\n")],
                );
                std::fs::create_dir_all(r.join("etc/systemd/sysext.conf")).unwrap();
            },
        },
        // A drop-in that is a directory: systemd fails to read it and ignores the whole
        // configuration, the main file's Mutable= included.
        Scenario {
            name: "config_dropin_a_directory_ignores_all",
            class: "sysext",
            hierarchies: &["opt"],
            args: &[],
            env: &[],
            build: |r| {
                host_with_mutable_opt(r);
                w(
                    r,
                    &[("etc/systemd/sysext.conf", "[SysExt]\nMutable=auto\n")],
                );
                std::fs::create_dir_all(r.join("etc/systemd/sysext.conf.d/10-dir.conf")).unwrap();
            },
        },
        Scenario {
            name: "sysext_mutable_ephemeral",
            class: "sysext",
            hierarchies: &["opt"],
            args: &["--mutable=ephemeral"],
            env: &[],
            build: |r| {
                host(r, OS);
                sysext_at(r, "var/lib/extensions/ep", "ep", "ID=_any\n", "opt/ep", "e");
            },
        },
        Scenario {
            name: "nothing_found",
            class: "sysext",
            hierarchies: &["usr", "opt"],
            args: &[],
            env: &[],
            build: |r| {
                host(r, OS);
                std::fs::create_dir_all(r.join("var/lib/extensions")).unwrap();
            },
        },
    ]
}

fn compare(s: &Scenario) {
    let env = Env::new();
    let tree = env.ours.parent().unwrap().join("tree");
    (s.build)(&tree);
    // Every copy gets the same modes whatever the umask did.
    env.place(&tree);
    let sd_out = env.systemd(s.class, &[&["merge"][..], s.args].concat(), s.env);
    let our_out = env.ours(s.class, &[&["merge"][..], s.args].concat(), s.env);
    let ctx = format!(
        "scenario {}\n--- systemd:\n{}\n--- extmerge:\n{}",
        s.name,
        String::from_utf8_lossy(&sd_out.stderr),
        String::from_utf8_lossy(&our_out.stderr)
    );
    assert!(sd_out.status.success(), "systemd failed: {ctx}");
    assert!(our_out.status.success(), "extmerge failed: {ctx}");
    let meta = if s.class == "sysext" {
        ".systemd-sysext"
    } else {
        ".systemd-confext"
    };
    let list = if s.class == "sysext" {
        "extensions"
    } else {
        "confexts"
    };
    for h in s.hierarchies {
        let (a, b) = (env.sd.join(h), env.ours.join(h));
        let (sa, sb) = (
            overlay_shape(&a, &[&env.sd, &env.sd_inner]),
            overlay_shape(&b, &[&env.ours]),
        );
        assert_eq!(sa, sb, "/{h}: overlay shape differs; {ctx}");
        assert_eq!(
            listing(&a, meta),
            listing(&b, meta),
            "/{h}: merged listings differ; {ctx}"
        );
        if sa.is_some() {
            let read = |p: &Path, f: &str| std::fs::read_to_string(p.join(meta).join(f)).ok();
            assert_eq!(
                read(&a, list),
                read(&b, list),
                "/{h}: {list} file differs; {ctx}"
            );
            assert_eq!(
                read(&a, "work_dir"),
                read(&b, "work_dir"),
                "/{h}: work_dir differs; {ctx}"
            );
            for (p, d) in [(&a, read(&a, "dev")), (&b, read(&b, "dev"))] {
                let st = std::fs::metadata(p).unwrap().dev();
                assert_eq!(
                    d,
                    Some(format!(
                        "{}:{}\n",
                        rustix::fs::major(st),
                        rustix::fs::minor(st)
                    )),
                    "{ctx}"
                );
            }
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode(&a), mode(&b), "/{h}: merged root mode; {ctx}");
        }
    }
    env.finish();
}

macro_rules! differential {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let all = scenarios();
            let s = all.iter().find(|s| s.name == stringify!($name)).expect("scenario defined");
            compare(s);
        }
    )*};
}

differential!(
    dir_any,
    id_and_version,
    id_like,
    version_mismatch_ignored,
    level_beats_version,
    architecture_mismatch,
    initrd_scope_only_ignored,
    squashfs_image,
    erofs_image,
    ext4_image,
    precedence_first_dir_wins,
    mask_with_empty_dir,
    dev_null_link_masks_nothing,
    absolute_symlink_inside_root,
    vpick_highest_version,
    layer_order_shadowing,
    release_name_stem_fallback,
    sysext_usr_and_opt,
    missing_opt_created,
    confext_dir,
    confext_flatcar_self_upper,
    sysext_mutable_yes,
    sysext_mutable_import_env,
    config_file_mutable_auto,
    config_file_unreadable_dropin_ignores_all,
    config_main_file_a_directory_ignores_all,
    config_dropin_a_directory_ignores_all,
    nothing_found,
    sysext_mutable_ephemeral,
);

#[test]
fn every_scenario_has_a_test() {
    assert!(scenarios().len() >= 20);
}

/// systemd recognises extmerge's merge as its own: status lists it and unmerge removes it.
#[test]
fn systemd_status_and_unmerge_accept_our_merge() {
    let env = Env::new();
    let tree = env.ours.parent().unwrap().join("tree");
    host(&tree, OS);
    sysext_at(
        &tree,
        "var/lib/extensions/a",
        "a",
        "ID=_any\n",
        "usr/bin/a",
        "a",
    );
    image(
        &tree,
        "var/lib/extensions/sq.raw",
        "sq",
        "ID=_any\n",
        "squashfs",
    );
    env.place(&tree);
    // Merge with extmerge onto the copy systemd sees.
    env.ours_on_sd(&["merge", "--class=sysext"], &[]);
    let st = env.systemd("sysext", &["status", "--json=short"], &[]);
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let usr = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hierarchy"] == "/usr")
        .expect("/usr row");
    assert_eq!(usr["extensions"], serde_json::json!(["a", "sq"]), "{v}");
    let un = env.systemd("sysext", &["unmerge"], &[]);
    assert!(
        un.status.success(),
        "{}",
        String::from_utf8_lossy(&un.stderr)
    );
    assert!(
        String::from_utf8_lossy(&un.stderr).contains("Unmerged"),
        "{}",
        String::from_utf8_lossy(&un.stderr)
    );
    assert!(
        overlay_shape(&env.sd.join("usr"), &[&env.sd]).is_none(),
        "systemd unmerged our overlay"
    );
    env.finish();
}

/// The JSON of `status` and `list` has systemd 262's fields, in its order, with its types and
/// meaning (extmerge's own fields come after them), and `refresh` exits as 262's does.
#[test]
fn status_and_list_json_and_exit_codes_match_systemd() {
    use serde_json::Value;
    let env = Env::new();
    let tree = env.ours.parent().unwrap().join("tree");
    host(&tree, OS);
    sysext_at(
        &tree,
        "var/lib/extensions/a",
        "a",
        "ID=_any\n",
        "usr/bin/a",
        "a",
    );
    image(
        &tree,
        "var/lib/extensions/sq.raw",
        "sq",
        "ID=_any\n",
        "squashfs",
    );
    env.place(&tree);
    let json = |o: &Output| -> Vec<Value> {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    // The keys of systemd's object, in order, lead ours; shared values have the same type.
    let same_shape = |sd: &Value, ours: &Value, what: &str| {
        let (sd, ours) = (sd.as_object().unwrap(), ours.as_object().unwrap());
        let sd_keys: Vec<&String> = sd.keys().collect();
        let our_keys: Vec<&String> = ours.keys().take(sd_keys.len()).collect();
        assert_eq!(our_keys, sd_keys, "{what}: key order");
        for (k, v) in sd {
            let kind = |v: &Value| match v {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            assert_eq!(kind(&ours[k]), kind(v), "{what}: type of {k}");
        }
    };
    let rows = |o: &Output| json(o);
    for merged in [false, true] {
        let sd = rows(&env.systemd("sysext", &["status", "--json=short"], &[]));
        let ours = rows(&env.ours("sysext", &["status", "--json=short"], &[]));
        assert_eq!(sd.len(), ours.len(), "{sd:?} {ours:?}");
        for (a, b) in sd.iter().zip(&ours) {
            same_shape(a, b, "status");
            assert_eq!(a["hierarchy"], b["hierarchy"]);
            assert_eq!(a["extensions"], b["extensions"], "merged={merged}");
            let empty = a["extensions"].as_array().unwrap().is_empty();
            assert_eq!(a["since"].is_null(), empty, "{a}");
            assert_eq!(b["since"].is_null(), empty, "{b}");
        }
        if !merged {
            assert!(env.systemd("sysext", &["merge"], &[]).status.success());
            assert!(env.ours("sysext", &["merge"], &[]).status.success());
        }
    }
    let sd = rows(&env.systemd("sysext", &["list", "--json=short"], &[]));
    let ours: Vec<Value> = rows(&env.ours("sysext", &["list", "--json=short"], &[]))
        .into_iter()
        .filter(|r| !r["name"].is_null())
        .collect();
    assert_eq!(sd.len(), ours.len(), "{sd:?} {ours:?}");
    for (a, b) in sd.iter().zip(&ours) {
        same_shape(a, b, "list");
        assert_eq!((&a["name"], &a["type"]), (&b["name"], &b["type"]));
        let strip = |v: &Value, root: &Path| {
            v.as_str()
                .unwrap()
                .replacen(&*root.to_string_lossy(), "", 1)
        };
        assert_eq!(
            strip(&a["path"], &env.sd_inner),
            strip(&b["path"], &env.ours)
        );
        assert!(b["time"].as_u64().unwrap() > 0);
    }
    // An unchanged refresh exits 0 under systemd's name, as 262's does; extmerge says 77.
    let sd = env.systemd("sysext", &["refresh"], &[]);
    assert_eq!(
        sd.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sd.stderr)
    );
    let named = env.ours.parent().unwrap().join("bin/systemd-sysext");
    std::fs::create_dir_all(named.parent().unwrap()).unwrap();
    symlink(env!("CARGO_BIN_EXE_extmerge"), &named).unwrap();
    let ours = Command::new(&named)
        .arg("refresh")
        .arg(format!("--root={}", env.ours.display()))
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&ours.stderr);
    assert_eq!(ours.status.code(), Some(0), "{log}");
    assert!(log.contains("Skipping extension refresh"), "{log}");
    assert_eq!(
        env.ours("sysext", &["refresh"], &[]).status.code(),
        Some(77)
    );
    env.finish();
}

/// Deliberate difference: a directory sysext shipping usr/lib/os-release makes systemd fail the
/// whole merge; extmerge skips that one extension and merges the rest.
#[test]
fn deliberate_difference_forbidden_content_skips_one_instead_of_failing_all() {
    let env = Env::new();
    let tree = env.ours.parent().unwrap().join("tree");
    host(&tree, OS);
    sysext_at(
        &tree,
        "var/lib/extensions/bad",
        "bad",
        "ID=_any\n",
        "usr/lib/os-release",
        "ID=evil\n",
    );
    sysext_at(
        &tree,
        "var/lib/extensions/good",
        "good",
        "ID=_any\n",
        "usr/bin/good",
        "g",
    );
    env.place(&tree);
    let sd = env.systemd("sysext", &["merge"], &[]);
    assert!(
        !sd.status.success(),
        "systemd 262 fails the whole merge here"
    );
    let ours = env.ours("sysext", &["merge"], &[]);
    assert!(ours.status.success());
    assert_eq!(
        std::fs::read_to_string(env.ours.join("usr/bin/good")).unwrap(),
        "g"
    );
    assert_eq!(
        std::fs::read_to_string(env.ours.join("usr/.systemd-sysext/extensions")).unwrap(),
        "good\n"
    );
    env.finish();
}

/// Merge `class` with extmerge onto systemd's copy, then systemd 262's own `refresh` must skip
/// (its record equals ours field for field) and remount nothing. Returns extmerge's log.
fn assert_systemd_skips_our_merge(
    env: &Env,
    class: &str,
    hierarchy: &str,
    args: &[&str],
    vars: &[(&str, &str)],
) -> String {
    // The root carries the systemd that refreshes it: extmerge reads the generation from there.
    let bin = env.sd.join("usr/bin/systemd-sysext");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env.chroot.join("usr/bin/systemd-sysext"), &bin).unwrap();
    let class_arg = format!("--class={class}");
    let out = env.ours_on_sd(&[&[class_arg.as_str(), "merge"][..], args].concat(), vars);
    let ours_log = String::from_utf8_lossy(&out.stderr).into_owned();
    let meta = format!(".systemd-{class}");
    let h = env.sd.join(hierarchy);
    let ours_origin = std::fs::read_to_string(h.join(&meta).join("origin")).unwrap();
    let before = overlay_shape(&h, &[&env.sd]);
    let r = env.systemd(class, &[&["refresh"][..], args].concat(), vars);
    let log = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{log}");
    assert!(
        log.contains("Skipping extension refresh because no change was found"),
        "systemd did not skip after our merge; our origin:\n{ours_origin}\nsystemd log:\n{log}"
    );
    assert_eq!(before, overlay_shape(&h, &[&env.sd]), "nothing remounted");
    ours_log
}

/// systemd 262's own `refresh` must skip after extmerge merged the same tree (issue: origin record).
fn systemd_refresh_skips_after_our_merge(name: &str) {
    let all = scenarios();
    let s = all
        .iter()
        .find(|s| s.name == name)
        .expect("scenario defined");
    let env = Env::new();
    let tree = env.ours.parent().unwrap().join("tree");
    (s.build)(&tree);
    env.place(&tree);
    assert_systemd_skips_our_merge(&env, s.class, s.hierarchies[0], s.args, s.env);
    env.finish();
}

macro_rules! systemd_skips {
    ($($test:ident => $scenario:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            systemd_refresh_skips_after_our_merge($scenario);
        }
    )*};
}

systemd_skips!(
    systemd_refresh_skips_dir => "dir_any",
    systemd_refresh_skips_squashfs => "squashfs_image",
    systemd_refresh_skips_erofs_suffix => "erofs_image",
    systemd_refresh_skips_symlinked_image => "absolute_symlink_inside_root",
    systemd_refresh_skips_vpick => "vpick_highest_version",
    systemd_refresh_skips_usr_and_opt => "sysext_usr_and_opt",
    systemd_refresh_skips_confext => "confext_dir",
    systemd_refresh_skips_flatcar_etc => "confext_flatcar_self_upper",
    systemd_refresh_skips_mutable_yes => "sysext_mutable_yes",
    systemd_refresh_skips_import_env => "sysext_mutable_import_env",
    systemd_refresh_skips_ephemeral => "sysext_mutable_ephemeral",
);

/// systemd's copy of a tree with the host files only, placed; the test adds the extensions.
fn env_with_host() -> Env {
    let env = Env::new();
    let tree = env.ours.parent().unwrap().join("tree");
    host(&tree, OS);
    std::fs::create_dir_all(tree.join("run/extensions")).unwrap();
    env.place(&tree);
    env
}

/// extmerge's own unmerge of systemd's copy (before the test's own mounts go away).
fn unmerge_sd(env: &Env) {
    env.ours_on_sd(&["--class=sysext", "unmerge"], &[]);
}

/// The root's own systemd 262 (the chroot's binary, copied in) is recognised, and said so.
#[test]
fn systemd_262_in_the_root_is_recognised_and_skips() {
    let env = env_with_host();
    sysext_at(
        &env.sd,
        "var/lib/extensions/a",
        "a",
        "ID=_any\n",
        "usr/bin/a",
        "a",
    );
    let log = assert_systemd_skips_our_merge(&env, "sysext", "usr", &[], &[]);
    let why = "/usr/bin/systemd-sysext has refresh-skip logic and links libsystemd-shared-262.so: systemd 262 reads upstream's record";
    assert!(
        log.contains(&format!("Writing the systemd 260+ refresh-skip record (string mutable mode, mountOptions) for the booted system's sysext refresh: {why}.")),
        "{log}"
    );
    env.finish();
}

/// A directory whose `user.crtime_usec` is older than its birth time: systemd records the xattr.
#[test]
fn systemd_refresh_skips_with_a_crtime_xattr() {
    let env = env_with_host();
    sysext_at(
        &env.sd,
        "var/lib/extensions/x",
        "x",
        "ID=_any\n",
        "usr/bin/x",
        "x",
    );
    run(Command::new("setfattr")
        .args(["-n", "user.crtime_usec", "-v", "0x0100000000000000"])
        .arg(env.sd.join("var/lib/extensions/x")));
    assert_systemd_skips_our_merge(&env, "sysext", "usr", &[], &[]);
    let origin = std::fs::read_to_string(env.sd.join("usr/.systemd-sysext/origin")).unwrap();
    assert!(origin.contains("\"crtime\" : 1,"), "{origin}");
    env.finish();
}

/// A block device image: systemd records crtime and mtime 0.
#[test]
fn systemd_refresh_skips_a_block_device_image() {
    let env = env_with_host();
    let img = env.ours.parent().unwrap().join("blk.img");
    image(
        &env.ours.parent().unwrap().join("x"),
        "../blk.img",
        "blk",
        "ID=_any\n",
        "squashfs",
    );
    let lo = WritableLoop::attach(&img);
    std::fs::create_dir_all(env.sd.join("var/lib/extensions")).unwrap();
    lo.node_at(&env.sd.join("var/lib/extensions/blk"));
    assert_systemd_skips_our_merge(&env, "sysext", "usr", &[], &[]);
    let origin = std::fs::read_to_string(env.sd.join("usr/.systemd-sysext/origin")).unwrap();
    assert!(
        origin.contains("\"crtime\" : 0,\n\t\t\t\"mtime\" : 0"),
        "{origin}"
    );
    unmerge_sd(&env);
    drop(lo);
    env.finish();
}

/// A btrfs subvolume: systemd records the subvolume's otime and ctime.
#[test]
fn systemd_refresh_skips_a_btrfs_subvolume() {
    let env = env_with_host();
    let img = env.ours.parent().unwrap().join("sub.img");
    let store = env.sd.join("run/extensions");
    mount_fresh_btrfs(&img, &store);
    run(Command::new("btrfs")
        .args(["-q", "subvolume", "create"])
        .arg(store.join("sub")));
    sysext_at(&store, "sub", "sub", "ID=_any\n", "usr/bin/sub", "s");
    assert_systemd_skips_our_merge(&env, "sysext", "usr", &[], &[]);
    unmerge_sd(&env);
    run(Command::new("umount").arg(&store));
    env.finish();
}

/// A directory whose birth time has 0 seconds (and some nanoseconds): systemd ignores it.
#[test]
fn systemd_refresh_skips_with_a_zero_birth_time() {
    let env = env_with_host();
    let base = env.ours.parent().unwrap();
    sysext_at(
        &base.join("ext4src/z"),
        ".",
        "z",
        "ID=_any\n",
        "usr/bin/z",
        "z",
    );
    let img = base.join("z.img");
    mkfs_ext4(&base.join("ext4src"), &img, 8);
    for field in ["crtime 0", "crtime_extra 20000"] {
        run(Command::new("debugfs")
            .args(["-w", "-R", &format!("set_inode_field /z {field}")])
            .arg(&img));
    }
    let store = env.sd.join("run/extensions");
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&store));
    let birth = rustix::fs::statx(
        rustix::fs::CWD,
        store.join("z"),
        rustix::fs::AtFlags::empty(),
        rustix::fs::StatxFlags::BTIME,
    )
    .unwrap()
    .stx_btime;
    assert_eq!((birth.tv_sec, birth.tv_nsec), (0, 5000), "the fixture");
    assert_systemd_skips_our_merge(&env, "sysext", "usr", &[], &[]);
    unmerge_sd(&env);
    run(Command::new("umount").arg(&store));
    env.finish();
}
