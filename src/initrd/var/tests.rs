//! Unit tests (no root): spec parsing, options, timeouts, superblock and GPT readers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rustix::mount::MountAttrFlags;

use super::device::{encode_devnode_name, entry_tags, GptEntry};
use super::spec::{simplify, split_fields};
use super::*;
use crate::initrd::cmdline::parse;
use crate::ondisk::bytes::slice_reader;
use crate::ondisk::gpt::read_gpt;
use crate::ondisk::gpt::testing::{disk, write_header, Entry, Layout};

fn spec(cmdline: &str, in_initrd: bool) -> Result<Option<VarSpec>, String> {
    spec_from_cmdline(&parse(cmdline), in_initrd)
}

fn ok(cmdline: &str) -> VarSpec {
    spec(cmdline, true)
        .unwrap_or_else(|e| panic!("{cmdline}: {e}"))
        .unwrap_or_else(|| panic!("{cmdline}: no spec"))
}

fn err(cmdline: &str) -> String {
    match spec(cmdline, true) {
        Err(e) => e,
        Ok(s) => panic!("{cmdline}: expected an error, got {s:?}"),
    }
}

#[test]
fn mount_extra_with_every_kind_of_what() {
    let s = ok("quiet systemd.mount-extra=LABEL=var:/var");
    assert_eq!(s.what, What::Label("var".into()));
    assert_eq!((s.fstype, s.options), (None, None));
    assert_eq!(s.source_param, "systemd.mount-extra=LABEL=var:/var");
    let cases = [
        ("/dev/vdb", What::Path("/dev/vdb".into())),
        ("UUID=0a1b-2c", What::Uuid("0a1b-2c".into())),
        ("PARTUUID=6a3b", What::PartUuid("6a3b".into())),
        ("PARTLABEL=var", What::PartLabel("var".into())),
    ];
    for (what, expected) in cases {
        assert_eq!(
            ok(&format!("systemd.mount-extra={what}:/var")).what,
            expected
        );
        assert_eq!(ok(&format!("rd.extmerge.var={what}")).what, expected);
    }
}

#[test]
fn fstype_and_options() {
    let s = ok("systemd.mount-extra=UUID=abc:/var:xfs:noatime,x-systemd.device-timeout=5");
    assert_eq!(s.fstype.as_deref(), Some("xfs"));
    assert_eq!(
        s.options.as_deref(),
        Some("noatime,x-systemd.device-timeout=5")
    );
    // Empty fields are kept (DONT_COALESCE); "auto" and empty both mean "probe".
    let s = ok("systemd.mount-extra=LABEL=v:/var::rw");
    assert_eq!((s.fstype, s.options.as_deref()), (None, Some("rw")));
    assert_eq!(ok("rd.extmerge.var=LABEL=v:auto").fstype, None);
    let s = ok("rd.extmerge.var=/dev/vdb:btrfs:subvol=@var,compress=zstd");
    assert_eq!(s.fstype.as_deref(), Some("btrfs"));
    assert_eq!(s.options.as_deref(), Some("subvol=@var,compress=zstd"));
    // A trailing ':' after the last field leaves nothing over, as upstream.
    assert_eq!(
        ok("systemd.mount-extra=LABEL=v:/var:ext4:rw:")
            .options
            .as_deref(),
        Some("rw")
    );
}

#[test]
fn escapes_quotes_and_colons_in_what() {
    let s = ok(r"systemd.mount-extra=/dev/disk/by-path/pci-0000\x3a00\x3a05.0:/var:ext4");
    assert_eq!(
        s.what,
        What::Path("/dev/disk/by-path/pci-0000:00:05.0".into())
    );
    // The kernel command line parser removed the outer quotes; tag quotes go too.
    let p = vec![Param {
        key: "rd.extmerge.var".into(),
        value: Some("LABEL=\"my var\":ext4".into()),
    }];
    let s = spec_from_cmdline(&p, true).unwrap_or_default();
    assert_eq!(s.map(|s| s.what), Some(What::Label("my var".into())));
    assert_eq!(
        ok(r#"systemd.mount-extra="LABEL=a b:/var""#).what,
        What::Label("a b".into())
    );
}

#[test]
fn bad_specs_are_clear_errors() {
    assert!(err("rd.extmerge.var=").contains("WHAT is empty"));
    assert!(err("rd.extmerge.var").contains("needs a value"));
    assert!(err("systemd.mount-extra=:/var").contains("WHAT is empty"));
    assert!(err("systemd.mount-extra=FOO=bar:/var").contains("unknown tag"));
    assert!(err("rd.extmerge.var=ID=x").contains("unknown tag"));
    assert!(err("systemd.mount-extra=vdb:/var").contains("absolute device path"));
    assert!(err("systemd.mount-extra=LABEL=:/var").contains("empty value"));
    assert!(err("systemd.mount-extra=LABEL=a:/var:ext4:rw:more").contains("at most 4 fields"));
    assert!(err(r"systemd.mount-extra=/dev/a\:b:/var").contains("ignores this entry"));
    assert!(err("rd.extmerge.var=LABEL=x:ext4:rw:extra").contains("more than 3"));
    assert!(err("rd.extmerge.var=/dev/vdb:ext4:bind").contains("not supported for /var"));
    let unbalanced = vec![Param {
        key: "rd.extmerge.var".into(),
        value: Some("/dev/vdb:ext4:'x".into()),
    }];
    let e = spec_from_cmdline(&unbalanced, true)
        .err()
        .unwrap_or_default();
    assert!(e.contains("unbalanced"), "{e}");
    // Every message names the parameter it came from.
    assert!(err("rd.extmerge.var=NOPE=1").starts_with("rd.extmerge.var=NOPE=1: "));
}

#[test]
fn other_mount_points_and_foreign_entries_are_ignored() {
    for cmdline in [
        "systemd.mount-extra=LABEL=x:/srv",
        "systemd.mount-extra=LABEL=x:/var/lib",
        "systemd.mount-extra=LABEL=x:var",
        "systemd.mount-extra=a:/srv:b:c:d",
        "systemd.mount-extra",
        "rd.systemd.mount-extra=LABEL=x:/var",
        "systemd.mount_extra=LABEL=x:/var",
        "",
    ] {
        assert_eq!(spec(cmdline, true), Ok(None), "{cmdline}");
    }
    // WHERE is compared after path_simplify().
    assert_eq!(
        ok("systemd.mount-extra=LABEL=x://var/./").what,
        What::Label("x".into())
    );
}

#[test]
fn non_block_var_is_left_to_the_booted_system() {
    for cmdline in [
        "systemd.mount-extra=tmpfs:/var:tmpfs",
        r"systemd.mount-extra=srv\x3a/export:/var:nfs4",
        "systemd.mount-extra=/data/var:/var:none:bind",
        "systemd.mount-extra=/dev/sdb:/var:ext4:_netdev",
        // The first /var entry defines var.mount, so a later block entry does not count.
        "systemd.mount-extra=tmpfs:/var:tmpfs systemd.mount-extra=LABEL=v:/var",
    ] {
        assert_eq!(spec(cmdline, true), Ok(None), "{cmdline}");
    }
}

#[test]
fn precedence_rd_var_first_mount_extra_first_entry() {
    let both = "systemd.mount-extra=LABEL=a:/var rd.extmerge.var=LABEL=b";
    assert_eq!(ok(both).what, What::Label("b".into()));
    assert_eq!(ok(both).source_param, "rd.extmerge.var=LABEL=b");
    // rd.extmerge.var only counts in the initrd.
    let outside = spec(both, false).ok().flatten().map(|s| s.what);
    assert_eq!(outside, Some(What::Label("a".into())));
    assert_eq!(spec("rd.extmerge.var=LABEL=b", false), Ok(None));
    // rd.extmerge.var: the last one wins, like every kernel parameter.
    assert_eq!(
        ok("rd.extmerge.var=LABEL=1 rd.extmerge.var=LABEL=2").what,
        What::Label("2".into())
    );
    // systemd.mount-extra: the first /var entry wins, as in the generator (duplicates fail).
    let two = "systemd.mount-extra=LABEL=x:/srv systemd.mount-extra=LABEL=1:/var \
               systemd.mount-extra=LABEL=2:/var";
    assert_eq!(ok(two).what, What::Label("1".into()));
}

#[test]
fn field_splitting_matches_extract_many_words() {
    let f = |s: &str, n: usize| split_fields(s, n);
    let strs = |v: Vec<Vec<u8>>| {
        v.into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(f("", 4).map(strs), Ok(vec![String::new()]));
    assert_eq!(
        f("a:/var", 4).map(strs),
        Ok(vec!["a".into(), "/var".into()])
    );
    assert_eq!(
        f("a:/var:", 4).map(strs),
        Ok(vec!["a".into(), "/var".into(), String::new()])
    );
    assert_eq!(f(r"a\\:b", 4).map(strs), Ok(vec!["a\\".into(), "b".into()]));
    assert!(f("a:b:c:d:e", 4).is_err());
    assert!(f("a:b:c:d::", 4).is_err());
    assert!(f("trailing\\", 4).is_err());
    assert!(f(r"nul\x00", 4).is_err());
}

#[test]
fn where_simplification() {
    assert_eq!(simplify(b"//var/./"), b"/var");
    assert_eq!(simplify(b"/var/../var"), b"/var/../var");
    assert_eq!(simplify(b"var"), b"var");
    assert_eq!(simplify(b"/"), b"/");
}

#[test]
fn mount_options_are_classified() {
    let plan = MountPlan::from_options("").unwrap_or_default();
    assert_eq!(plan, MountPlan::default());
    assert!(!plan.read_only);
    let plan = MountPlan::from_options(
        "defaults,ro,noatime,nosuid,x-initrd.mount,nofail,data=journal,commit=5,lazytime,discard",
    )
    .unwrap_or_default();
    assert!(plan.read_only);
    assert_eq!(
        plan.attrs,
        MountAttrFlags::MOUNT_ATTR_NOATIME | MountAttrFlags::MOUNT_ATTR_NOSUID
    );
    assert_eq!(plan.sb_flags, vec!["lazytime".to_string()]);
    assert_eq!(
        plan.params,
        vec![
            ("data".to_string(), Some("journal".to_string())),
            ("commit".to_string(), Some("5".to_string())),
            ("discard".to_string(), None),
        ]
    );
    let plan = MountPlan::from_options("ro,rw,noatime,relatime,nodev,dev").unwrap_or_default();
    assert_eq!(plan, MountPlan::default());
    for refused in ["bind", "remount", "rshared", "private"] {
        assert!(MountPlan::from_options(refused).is_err(), "{refused}");
    }
    assert!(MountPlan::from_options("=x").is_err());
}

#[test]
fn timeouts() {
    let t = |s: &str, initrd: bool| timeout_from_cmdline(&parse(s), initrd);
    assert_eq!(t("", true), Duration::from_secs(30));
    assert_eq!(t("rd.extmerge.var_timeout=5", true), Duration::from_secs(5));
    assert_eq!(t("rd.extmerge.var-timeout=7", true), Duration::from_secs(7));
    assert_eq!(
        t("rd.extmerge.var_timeout=0.3", true),
        Duration::from_millis(300)
    );
    assert_eq!(
        t("rd.extmerge.var_timeout=500ms", true),
        Duration::from_millis(500)
    );
    assert_eq!(
        t("rd.extmerge.var_timeout=2s", true),
        Duration::from_secs(2)
    );
    assert_eq!(t("rd.extmerge.var_timeout=0", true), Duration::ZERO);
    for bad in ["abc", "-1", "inf", "1e3", "", "NaN"] {
        let cmdline = format!("rd.extmerge.var_timeout={bad}");
        assert_eq!(t(&cmdline, true), DEFAULT_TIMEOUT, "{bad}");
    }
    assert_eq!(t("rd.extmerge.var_timeout", true), DEFAULT_TIMEOUT);
    assert_eq!(t("rd.extmerge.var_timeout=99999999999", true), MAX_TIMEOUT);
    assert_eq!(t("rd.extmerge.var_timeout=5", false), DEFAULT_TIMEOUT);
}

#[test]
fn devnode_names_are_encoded_like_udev() {
    assert_eq!(encode_devnode_name("my var"), r"my\x20var");
    assert_eq!(encode_devnode_name("a/b\\c"), r"a\x2fb\x5cc");
    assert_eq!(encode_devnode_name("Var_1-2.3:#+=@"), "Var_1-2.3:#+=@");
    assert_eq!(encode_devnode_name("dätä"), "dätä");
}

fn mkfs_ext4(dir: &Path, label: &str, uuid: &str) -> PathBuf {
    let img = dir.join("ext4.img");
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-U", uuid])
        .arg(&img)
        .arg("8M")
        .output()
        .unwrap_or_else(|e| panic!("running mkfs.ext4: {e}"));
    assert!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    img
}

#[test]
fn ext4_label_and_uuid_are_read_from_the_superblock() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let uuid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
    let img = mkfs_ext4(dir.path(), "extmerge-var", uuid);
    let info = probe_path(&img).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        info,
        Some(FsInfo {
            fstype: "ext4",
            label: Some("extmerge-var".into()),
            uuid: Some(uuid.into()),
        })
    );
}

#[test]
fn btrfs_label_and_uuid_are_read_from_the_superblock() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let img = dir.path().join("btrfs.img");
    let file = std::fs::File::create(&img).unwrap_or_else(|e| panic!("{e}"));
    file.set_len(128 << 20).unwrap_or_else(|e| panic!("{e}"));
    let uuid = "b7d1e6a0-1c9e-4a57-8a55-6e1f0f1f2a3b";
    let out = Command::new("mkfs.btrfs")
        .args(["-q", "-f", "-L", "btrfs-var", "-U", uuid])
        .arg(&img)
        .output()
        .unwrap_or_else(|e| panic!("running mkfs.btrfs: {e}"));
    assert!(
        out.status.success(),
        "mkfs.btrfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = probe_path(&img).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(info.as_ref().map(|i| i.fstype), Some("btrfs"));
    assert_eq!(
        info.as_ref().and_then(|i| i.label.as_deref()),
        Some("btrfs-var")
    );
    assert_eq!(info.as_ref().and_then(|i| i.uuid.as_deref()), Some(uuid));
}

#[test]
fn xfs_and_unknown_superblocks() {
    // mkfs.xfs is not on every build host: a hand-made superblock with the fields we read.
    let mut head = vec![0u8; device::SB_PROBE_LEN];
    head[..4].copy_from_slice(b"XFSB");
    head[32..48].copy_from_slice(&[0x11; 16]);
    head[108..114].copy_from_slice(b"xfsvar");
    let info = probe_superblock(&head);
    assert_eq!(info.as_ref().map(|i| i.fstype), Some("xfs"));
    assert_eq!(
        info.as_ref().and_then(|i| i.label.as_deref()),
        Some("xfsvar")
    );
    assert_eq!(
        info.and_then(|i| i.uuid).as_deref(),
        Some("11111111-1111-1111-1111-111111111111")
    );
    // No label, zero UUID: both unset. Short or empty input: nothing.
    head[108..114].fill(0);
    head[32..48].fill(0);
    assert_eq!(
        probe_superblock(&head),
        Some(FsInfo {
            fstype: "xfs",
            label: None,
            uuid: None
        })
    );
    assert_eq!(probe_superblock(&[0u8; 4096]), None);
    assert_eq!(probe_superblock(&[]), None);
}

/// A 256 KiB disk with a primary GPT and one used entry in slot `slot`.
fn gpt_image(sector: usize, slot: usize, part_uuid: [u8; 16], name: &str) -> Vec<u8> {
    let entry = Entry {
        slot,
        type_uuid: [0xAA; 16], // any non-zero type
        part_uuid,
        first_lba: 40,
        last_lba: 47,
        flags: 0,
        label: name.to_string(),
    };
    disk(&Layout::new(sector), &[entry])
}

fn entry_of(img: &[u8], sector: u32, number: u32) -> Result<Option<GptEntry>, String> {
    // The header at the disk's logical sector size, as the /var scan reads it.
    read_gpt(&mut slice_reader(img), img.len() as u64, Some(sector))
        .map(|t| entry_tags(&t, number))
        .map_err(|e| format!("{e:#}"))
}

#[test]
fn gpt_partuuid_and_partlabel() {
    let uuid: [u8; 16] = core::array::from_fn(|i| i as u8 * 0x11);
    for sector in [512usize, 4096] {
        let s = sector as u32;
        let img = gpt_image(sector, 2, uuid, "var-dätä");
        let expected = GptEntry {
            partuuid: "00112233-4455-6677-8899-aabbccddeeff".into(),
            partlabel: "var-dätä".into(),
        };
        assert_eq!(entry_of(&img, s, 3), Ok(Some(expected)), "{sector}");
        assert_eq!(entry_of(&img, s, 1), Ok(None), "unused entry");
        assert_eq!(entry_of(&img, s, 0), Ok(None), "numbers start at 1");
        assert_eq!(entry_of(&img, s, 129), Ok(None), "beyond the array");
        let mut broken = img.clone();
        broken[sector + 40] ^= 1;
        let e = entry_of(&broken, s, 3).unwrap_err();
        assert!(e.starts_with("GPT header checksum mismatch"), "{e}");
        // The header at the disk's logical sector size only: no probing of other sizes.
        let other = if sector == 512 { 4096 } else { 512 };
        assert_eq!(
            entry_of(&img, other, 3),
            Err(format!(
                "no GPT partition table: no valid 'EFI PART' header at byte {other}"
            ))
        );
    }
}

/// A /var disk whose header declares an oversized or misplaced array is refused with the
/// reason, the array unread, instead of being scanned for PARTUUID=.
#[test]
fn gpt_with_oversized_entry_array_is_refused() {
    let mut img = gpt_image(512, 0, [1; 16], "var");
    let l = Layout {
        count: 1024,
        entry_size: 1 << 16,
        ..Layout::new(512)
    };
    write_header(&mut img, &l);
    let mut reads = Vec::new();
    let mut inner = slice_reader(&img);
    let mut read = |off: u64, buf: &mut [u8]| {
        reads.push(off);
        inner(off, buf)
    };
    let e = read_gpt(&mut read, img.len() as u64, Some(512)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GPT header declares an entry array of 1024 × 65536 = 67108864 bytes: refusing (at most 1048576 bytes)"
    );
    assert_eq!(reads, vec![512], "only the header was read");
}
