//! The pure verity/DDI/signature layer against the real tools, without device-mapper:
//! fixtures are made at test time with `veritysetup` (cryptsetup-bin), `openssl` and
//! `systemd-repart` from the Debian unstable chroot (`make chroot`).

mod common;

use std::fs;
use std::os::unix::fs::{symlink, FileExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use extmerge::decide::arch;
use extmerge::gather::certs;
use extmerge::image::ddi::{self, Designator, PartitionRole};
use extmerge::image::sidecar;
use extmerge::kernel::root::Root;
use extmerge::ondisk::bytes::format_uuid;
use extmerge::ondisk::gpt::{crc32, FLAG_READ_ONLY};
use extmerge::ondisk::signature;
use extmerge::ondisk::verity::{self, CorruptBlock, VeritySuperblock};
use tempfile::TempDir;

// ---- helpers -------------------------------------------------------------------

/// Run a command; panic with its output when it cannot start or fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("running {cmd:?}: {e} (missing tool? run scripts/install-deps.sh)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tmp() -> TempDir {
    TempDir::new().expect("creating a temporary directory")
}

/// `Key: value` lines of `veritysetup format`/`dump` output.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no '{key}:' in veritysetup output:\n{text}"))
}

fn file_reader(path: &Path, base: u64) -> impl FnMut(u64, &mut [u8]) -> std::io::Result<()> {
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    move |off, buf| f.read_exact_at(buf, base + off)
}

fn flip_byte(path: &Path, at: u64) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x01;
    f.write_all_at(&b, at).unwrap();
}

fn random_file(path: &Path, len: usize, seed: u64) {
    fs::write(path, common::random_bytes(len, seed)).unwrap();
}

fn superblock_of(hash: &Path, offset: u64) -> VeritySuperblock {
    let mut b = vec![0u8; verity::SUPERBLOCK_SIZE];
    file_reader(hash, 0)(offset, &mut b).unwrap();
    verity::parse_superblock(&b).unwrap()
}

/// A data file and its hash tree made by `veritysetup format`.
struct VerityFixture {
    _dir: TempDir,
    data: PathBuf,
    hash: PathBuf,
    roothash: String,
    format_output: String,
}

fn veritysetup_format(data_len: usize, args: &[&str]) -> VerityFixture {
    let dir = tmp();
    let data = dir.path().join("data.img");
    let hash = dir.path().join("hash.img");
    random_file(&data, data_len, data_len as u64);
    let out = run(Command::new("veritysetup")
        .arg("format")
        .args(args)
        .arg(&data)
        .arg(&hash));
    VerityFixture {
        roothash: field(&out, "Root hash"),
        format_output: out,
        _dir: dir,
        data,
        hash,
    }
}

/// A self-signed certificate and key: `kind` is `rsa`, `P-256` or `P-384`.
fn make_cert(dir: &Path, name: &str, kind: &str, serial: Option<&str>) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    let mut c = Command::new("openssl");
    c.args(["req", "-x509", "-nodes", "-days", "3", "-subj"])
        .arg(format!("/CN=extmerge test {name}"));
    match kind {
        "rsa" => c.args(["-newkey", "rsa:2048"]),
        curve => c
            .args(["-newkey", "ec", "-pkeyopt"])
            .arg(format!("ec_paramgen_curve:{curve}")),
    };
    if let Some(s) = serial {
        c.args(["-set_serial", s]);
    }
    run(c.arg("-keyout").arg(&key).arg("-out").arg(&crt));
    (key, crt)
}

/// `openssl smime -sign -binary -outform der` over `content` (as systemd's tests do).
fn smime_sign(dir: &Path, content: &str, cert: &(PathBuf, PathBuf), extra: &[&str]) -> Vec<u8> {
    let input = dir.join("content.txt");
    let out = dir.join("sig.p7s");
    fs::write(&input, content).unwrap();
    run(Command::new("openssl")
        .args(["smime", "-sign", "-binary", "-outform", "der"])
        .args(extra)
        .arg("-in")
        .arg(&input)
        .arg("-signer")
        .arg(&cert.1)
        .arg("-inkey")
        .arg(&cert.0)
        .arg("-out")
        .arg(&out));
    fs::read(&out).unwrap()
}

/// The certificates `<root>/…/verity.d` trusts, loaded the way a merge loads them.
fn load_certs(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    certs::load(&Root::open(root).unwrap()).unwrap()
}

fn trusted(certs: &[&(PathBuf, PathBuf)]) -> Vec<(PathBuf, Vec<u8>)> {
    certs
        .iter()
        .map(|(_, crt)| {
            (
                crt.clone(),
                signature::first_pem_certificate(&fs::read(crt).unwrap()).unwrap(),
            )
        })
        .collect()
}

// ---- verity superblock and tree --------------------------------------------------

#[test]
fn superblock_matches_veritysetup_dump() {
    let cases: [(&[&str], u64); 3] = [
        (&[], 0),
        (
            &[
                "--format=0",
                "--hash=sha512",
                "--data-block-size=1024",
                "--hash-block-size=512",
                "--salt=abcd",
            ],
            0,
        ),
        (&["--hash-offset=8192", "--salt=-"], 8192),
    ];
    for (args, offset) in cases {
        let fx = veritysetup_format(600_000, args);
        let dump = run(Command::new("veritysetup")
            .arg("dump")
            .arg(format!("--hash-offset={offset}"))
            .arg(&fx.hash));
        let sb = superblock_of(&fx.hash, offset);
        assert_eq!(format_uuid(&sb.uuid), field(&dump, "UUID"), "{args:?}");
        assert_eq!(sb.hash_type.to_string(), field(&dump, "Hash type"));
        assert_eq!(sb.data_blocks.to_string(), field(&dump, "Data blocks"));
        assert_eq!(
            sb.data_block_size.to_string(),
            field(&dump, "Data block size")
        );
        assert_eq!(
            sb.hash_block_size.to_string(),
            field(&dump, "Hash block size")
        );
        assert_eq!(sb.algorithm, field(&dump, "Hash algorithm"));
        let salt = if sb.salt.is_empty() {
            "-".to_string()
        } else {
            extmerge::ondisk::bytes::hex(&sb.salt)
        };
        assert_eq!(salt, field(&dump, "Salt"));
        let g = verity::geometry(&sb, offset).unwrap();
        assert_eq!(
            g.level_blocks.iter().sum::<u64>().to_string(),
            field(&dump, "Hash blocks"),
            "{args:?}"
        );

        // The bounded reader agrees, and the tree ends where veritysetup's file ends.
        let (hash_len, data_len) = (file_len(&fx.hash), file_len(&fx.data));
        let (sb2, g2) =
            verity::read_superblock(&mut file_reader(&fx.hash, 0), offset, hash_len, data_len)
                .unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
        assert_eq!((&sb2, g2.hash_end), (&sb, hash_len), "{args:?}");

        let rh = verity::parse_roothash(&fx.roothash).unwrap();
        verity::check_top_hash(&mut file_reader(&fx.hash, 0), &sb, offset, &rh)
            .unwrap_or_else(|e| panic!("{args:?}: {e:#}\n{}", fx.format_output));
        verity::verify_all(
            &mut file_reader(&fx.data, 0),
            &mut file_reader(&fx.hash, 0),
            &sb,
            offset,
            &rh,
        )
        .unwrap();
    }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .len()
}

/// A tree from veritysetup whose hash or data file was cut short is refused from the lengths
/// alone, with the sizes, before any tree block is read.
#[test]
fn truncated_hash_or_data_is_refused_by_declared_sizes() {
    let fx = veritysetup_format(700_000, &[]);
    let (hash_len, data_len) = (file_len(&fx.hash), file_len(&fx.data));
    // 700000 bytes hold 170 whole 4 KiB blocks; veritysetup covers exactly those.
    let (sb, g) =
        verity::read_superblock(&mut file_reader(&fx.hash, 0), 0, hash_len, data_len).unwrap();
    assert_eq!((sb.data_blocks, g.hash_end), (170, hash_len));
    let err = |hash: u64, data: u64| {
        let mut read = file_reader(&fx.hash, 0);
        format!(
            "{:#}",
            verity::read_superblock(&mut read, 0, hash, data).unwrap_err()
        )
    };
    assert_eq!(
        err(hash_len, 170 * 4096 - 1),
        "verity superblock declares 170 data blocks of 4096 bytes (696320 bytes), but the data is only 696319 bytes: refusing"
    );
    assert_eq!(
        err(hash_len - 1, data_len),
        format!(
            "verity hash tree needs {hash_len} bytes for 2 levels, but the hash device is only {} bytes: refusing",
            hash_len - 1
        )
    );
    assert_eq!(
        err(511, data_len),
        "the verity hash tree is 511 bytes, too short to hold its 512-byte superblock at byte 0 (truncated?)"
    );
}

#[test]
fn check_top_hash_catches_wrong_roothash_and_flipped_top_block() {
    let fx = veritysetup_format(700_000, &[]);
    let sb = superblock_of(&fx.hash, 0);
    let rh = verity::parse_roothash(&fx.roothash).unwrap();
    verity::check_top_hash(&mut file_reader(&fx.hash, 0), &sb, 0, &rh).unwrap();
    verity::check_root_hash(
        &mut file_reader(&fx.data, 0),
        &mut file_reader(&fx.hash, 0),
        &sb,
        0,
        &rh,
    )
    .unwrap();

    let mut wrong = rh.clone();
    wrong[31] ^= 0x80;
    let e = verity::check_top_hash(&mut file_reader(&fx.hash, 0), &sb, 0, &wrong).unwrap_err();
    assert_eq!(
        e.downcast_ref::<CorruptBlock>(),
        Some(&CorruptBlock::Root),
        "{e:#}"
    );

    let g = verity::geometry(&sb, 0).unwrap();
    let top = g.level_start.last().unwrap() * u64::from(sb.hash_block_size);
    flip_byte(&fx.hash, top + 3);
    let e = verity::check_top_hash(&mut file_reader(&fx.hash, 0), &sb, 0, &rh).unwrap_err();
    assert!(
        e.to_string().contains("does not match the root hash"),
        "{e:#}"
    );
}

#[test]
fn verify_all_finds_one_flipped_data_byte() {
    let fx = veritysetup_format(300_000, &[]);
    let sb = superblock_of(&fx.hash, 0);
    let rh = verity::parse_roothash(&fx.roothash).unwrap();
    let block = 41u64;
    flip_byte(&fx.data, block * 4096 + 1234);
    // The top hash still matches: only data reads (or a full verify) can notice.
    verity::check_top_hash(&mut file_reader(&fx.hash, 0), &sb, 0, &rh).unwrap();
    let e = verity::verify_all(
        &mut file_reader(&fx.data, 0),
        &mut file_reader(&fx.hash, 0),
        &sb,
        0,
        &rh,
    )
    .unwrap_err();
    assert_eq!(
        e.downcast_ref::<CorruptBlock>(),
        Some(&CorruptBlock::Data { index: block }),
        "{e:#}"
    );
    // veritysetup agrees that the image is corrupt.
    let st = Command::new("veritysetup")
        .arg("verify")
        .arg(&fx.data)
        .arg(&fx.hash)
        .arg(&fx.roothash)
        .output()
        .unwrap();
    assert!(!st.status.success());
}

// ---- sidecars --------------------------------------------------------------------

/// The sidecars of `image`, looked up inside the root `root` as a merge does.
fn load_sidecars(root: &Path, image: &Path) -> anyhow::Result<sidecar::VeritySidecars> {
    let r = extmerge::kernel::root::Root::open(root)?;
    let rel = Path::new("/").join(image.strip_prefix(root).unwrap());
    let found = r.resolve(&rel)?;
    sidecar::load(&r, &found)
}

#[test]
fn sidecars_next_to_the_symlink_target() {
    let d = tmp();
    let store = d.path().join("store");
    let ext = d.path().join("extensions");
    fs::create_dir_all(&store).unwrap();
    fs::create_dir_all(&ext).unwrap();
    let rh = "AEA69771E07DCDAF5667B114EE6CAAED6D2DF19518A4C6E1672C868A39128BE7";
    fs::write(store.join("app.raw"), b"image").unwrap();
    fs::write(store.join("app.roothash"), format!("{rh}\n")).unwrap();
    fs::write(store.join("app.roothash.p7s"), b"\x30\x00").unwrap();
    fs::write(store.join("app.verity"), b"tree").unwrap();
    // decoys next to the link, which must not be used
    fs::write(ext.join("app.roothash"), "00").unwrap();
    symlink("../store/app.raw", ext.join("app.raw")).unwrap();

    let sc = load_sidecars(d.path(), &ext.join("app.raw")).unwrap();
    assert_eq!(
        sc.roothash,
        Some((Designator::Root, rh.to_ascii_lowercase()))
    );
    assert_eq!(sc.signature.as_deref(), Some(&b"\x30\x00"[..]));
    assert_eq!(
        sc.verity_data.as_ref().map(|t| t.shown.clone()),
        Some(store.join("app.verity"))
    );

    // not ending in .raw: suffixes are appended
    fs::write(store.join("usr.img"), b"image").unwrap();
    fs::write(store.join("usr.img.usrhash"), rh).unwrap();
    fs::write(store.join("usr.img.usrhash.p7s"), b"sig").unwrap();
    fs::write(
        store.join("usr.img.roothash.p7s"),
        b"ignored: the hash is for usr",
    )
    .unwrap();
    let sc = load_sidecars(d.path(), &store.join("usr.img")).unwrap();
    assert_eq!(sc.roothash.as_ref().map(|r| r.0), Some(Designator::Usr));
    assert_eq!(sc.signature.as_deref(), Some(&b"sig"[..]));
    assert!(sc.verity_data.is_none());

    // no root hash: the signature is not even looked at
    fs::write(store.join("plain.raw"), b"image").unwrap();
    fs::write(store.join("plain.roothash.p7s"), b"").unwrap();
    let sc = load_sidecars(d.path(), &store.join("plain.raw")).unwrap();
    assert!(sc.roothash.is_none() && sc.signature.is_none() && sc.verity_data.is_none());
}

#[test]
fn sidecar_errors_name_the_file() {
    let d = tmp();
    let img = d.path().join("bad.raw");
    fs::write(&img, b"image").unwrap();
    fs::write(
        d.path().join("bad.roothash"),
        "0123456789abcdef0123456789abcdeg",
    )
    .unwrap();
    let e = format!("{:#}", load_sidecars(d.path(), &img).unwrap_err());
    assert!(
        e.contains("bad.roothash") && e.contains("invalid character 'g'"),
        "{e}"
    );

    fs::write(d.path().join("bad.roothash"), "0123").unwrap();
    let e = format!("{:#}", load_sidecars(d.path(), &img).unwrap_err());
    assert!(e.contains("too short"), "{e}");

    fs::write(
        d.path().join("bad.roothash"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    fs::write(d.path().join("bad.roothash.p7s"), b"").unwrap();
    let e = format!("{:#}", load_sidecars(d.path(), &img).unwrap_err());
    assert!(e.contains("bad.roothash.p7s") && e.contains("empty"), "{e}");
}

#[test]
fn sidecar_roothash_from_xattr() {
    let d = tmp();
    let img = d.path().join("x.raw");
    fs::write(&img, b"image").unwrap();
    let rh = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    rustix::fs::setxattr(
        &img,
        "user.verity.usrhash",
        rh.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setting a user xattr (the test directory's file system must support them)");
    let sc = load_sidecars(d.path(), &img).unwrap();
    assert_eq!(sc.roothash, Some((Designator::Usr, rh.to_string())));
    // the root hash is looked for first, and a malformed one is an error, not "absent"
    rustix::fs::setxattr(
        &img,
        "user.verity.roothash",
        b"not hex",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let e = format!("{:#}", load_sidecars(d.path(), &img).unwrap_err());
    assert!(
        e.contains("xattr user.verity.roothash") && e.contains("invalid character"),
        "{e}"
    );
}

// ---- signatures --------------------------------------------------------------------

const ROOTHASH: &str = "aea69771e07dcdaf5667b114ee6caaed6d2df19518a4c6e1672c868a39128be7";

#[test]
fn openssl_signatures_verify_against_the_right_cert() {
    let d = tmp();
    let rsa = make_cert(d.path(), "rsa", "rsa", None);
    let p256 = make_cert(d.path(), "p256", "P-256", None);
    let p384 = make_cert(d.path(), "p384", "P-384", None);
    let all = trusted(&[&rsa, &p256, &p384]);
    for (cert, extra) in [
        (&rsa, &["-noattr"][..]),
        (&rsa, &[][..]),
        (&p256, &["-noattr"][..]),
        (&p256, &["-md", "sha384"][..]),
        (&p384, &["-noattr", "-nocerts"][..]),
        (&p384, &[][..]),
    ] {
        let sig = smime_sign(d.path(), ROOTHASH, cert, extra);
        let who = signature::verify_roothash_signature(ROOTHASH, &sig, &all)
            .unwrap_or_else(|e| panic!("{} {extra:?}: {e:#}", cert.1.display()));
        assert_eq!(who, cert.1, "{extra:?}");
        // upper-case input is the same root hash
        signature::verify_roothash_signature(&ROOTHASH.to_uppercase(), &sig, &all).unwrap();

        let mut tampered = ROOTHASH.to_string();
        tampered.replace_range(0..1, "b");
        let e = format!(
            "{:#}",
            signature::verify_roothash_signature(&tampered, &sig, &all).unwrap_err()
        );
        assert!(e.contains("does not"), "{extra:?}: {e}");
    }
}

#[test]
fn untrusted_or_malformed_signatures_fail() {
    let d = tmp();
    let good = make_cert(d.path(), "good", "rsa", Some("0x1234"));
    let evil = make_cert(d.path(), "evil", "rsa", None);
    // same subject/issuer and serial as "good", different key: found, but must not verify
    let twin_dir = d.path().join("twin");
    fs::create_dir(&twin_dir).unwrap();
    let twin = make_cert(&twin_dir, "good", "rsa", Some("0x1234"));
    let only_good = trusted(&[&good]);

    let sig = smime_sign(d.path(), ROOTHASH, &evil, &["-noattr"]);
    let e = format!(
        "{:#}",
        signature::verify_roothash_signature(ROOTHASH, &sig, &only_good).unwrap_err()
    );
    assert!(e.contains("not trusted"), "{e}");

    let sig = smime_sign(d.path(), ROOTHASH, &twin, &["-noattr"]);
    let e = format!(
        "{:#}",
        signature::verify_roothash_signature(ROOTHASH, &sig, &only_good).unwrap_err()
    );
    assert!(e.contains("does not verify"), "{e}");

    let e = format!(
        "{:#}",
        signature::verify_roothash_signature(ROOTHASH, b"\x30\x03\x02\x01\x01", &only_good)
            .unwrap_err()
    );
    assert!(e.contains("not a DER PKCS#7"), "{e}");

    let sig = smime_sign(d.path(), ROOTHASH, &good, &["-noattr", "-nodetach"]);
    let e = format!(
        "{:#}",
        signature::verify_roothash_signature(ROOTHASH, &sig, &only_good).unwrap_err()
    );
    assert!(e.contains("detached"), "{e}");

    // signing "hash\n" (a roothash file with a newline) is not a signature of the hash
    let sig = smime_sign(d.path(), &format!("{ROOTHASH}\n"), &good, &["-noattr"]);
    assert!(signature::verify_roothash_signature(ROOTHASH, &sig, &only_good).is_err());
}

/// Which certificates `verity.d` trusts decides which signatures verify: a masked or
/// overridden certificate vouches for nothing (the loading rules: `gather::certs` tests).
#[test]
fn signatures_by_masked_or_overridden_certificates_are_not_trusted() {
    let d = tmp();
    let root = d.path().join("root");
    let keys = d.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let b = make_cert(&keys, "b", "P-256", None);
    let c = make_cert(&keys, "c", "rsa", None);
    let c2 = make_cert(&keys, "c2", "P-256", None);
    let e = make_cert(&keys, "e", "P-384", None);
    let put = |rel: &str, from: &Path| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::copy(from, &p).unwrap();
    };
    put("usr/lib/verity.d/b.crt", &b.1);
    put("usr/lib/verity.d/c.crt", &c.1);
    put("usr/local/lib/verity.d/c.crt", &c2.1); // overrides usr/lib
    put("usr/share/keys/e.pem", &e.1);
    fs::create_dir_all(root.join("etc/verity.d")).unwrap();
    fs::create_dir_all(root.join("run/verity.d")).unwrap();
    fs::write(root.join("run/verity.d/b.crt"), b"").unwrap(); // empty file masks b
    symlink("/usr/share/keys/e.pem", root.join("etc/verity.d/e.crt")).unwrap(); // resolved inside root

    let certs = load_certs(&root);
    let sig = smime_sign(d.path(), ROOTHASH, &b, &["-noattr"]);
    assert!(
        signature::verify_roothash_signature(ROOTHASH, &sig, &certs).is_err(),
        "b is masked"
    );
    let sig = smime_sign(d.path(), ROOTHASH, &c, &["-noattr"]);
    assert!(
        signature::verify_roothash_signature(ROOTHASH, &sig, &certs).is_err(),
        "c is overridden"
    );
    let sig = smime_sign(d.path(), ROOTHASH, &c2, &["-noattr"]);
    assert_eq!(
        signature::verify_roothash_signature(ROOTHASH, &sig, &certs).unwrap(),
        root.join("usr/local/lib/verity.d/c.crt")
    );
    let sig = smime_sign(d.path(), ROOTHASH, &e, &["-noattr"]);
    assert_eq!(
        signature::verify_roothash_signature(ROOTHASH, &sig, &certs).unwrap(),
        root.join("usr/share/keys/e.pem")
    );
}

// ---- DDIs made by systemd-repart -----------------------------------------------------

fn chroot_dir() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/chroot/unstable");
    assert!(
        p.join(".extmerge-ready").exists(),
        "the Debian unstable chroot is missing: run `make chroot` (make test does it)"
    );
    p
}

/// One `systemd-repart --json=short` partition record.
#[derive(serde::Deserialize, Debug)]
struct RepartPart {
    #[serde(rename = "type")]
    ty: String,
    label: String,
    uuid: String,
    offset: u64,
    raw_size: u64,
    roothash: String,
}

/// A signed sysext DDI built by systemd-repart in the chroot.
struct Ddi {
    dir: TempDir,
    image: PathBuf,
    cert: (PathBuf, PathBuf),
    parts: Vec<RepartPart>,
}

fn repart_ddi(sector: u32, key_kind: &str) -> Ddi {
    let chroot = chroot_dir();
    let dir = tempfile::Builder::new()
        .prefix("extmerge-verity-")
        .tempdir_in(chroot.join("tmp"))
        .unwrap();
    let inside = Path::new("/tmp").join(dir.path().file_name().unwrap());
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("usr/lib/extension-release.d")).unwrap();
    fs::create_dir_all(src.join("usr/share/test")).unwrap();
    fs::write(
        src.join("usr/lib/extension-release.d/extension-release.test"),
        "ID=_any\n",
    )
    .unwrap();
    // ~700 KiB of incompressible data: a two-level hash tree.
    random_file(&src.join("usr/share/test/blob"), 700_000, 7);
    let cert = make_cert(dir.path(), "signing", key_kind, None);
    let out = run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mkchroot.sh"))
            .args([
                "run",
                "systemd-repart",
                "--make-ddi=sysext",
                "--offline=yes",
                "--json=short",
            ])
            .arg(format!("--sector-size={sector}"))
            .arg(format!("--private-key={}/signing.key", inside.display()))
            .arg(format!("--certificate={}/signing.crt", inside.display()))
            .arg(format!("--copy-source={}/src", inside.display()))
            .arg(format!("{}/test.raw", inside.display())),
    );
    let parts: Vec<RepartPart> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("parsing repart JSON: {e}\n{out}"));
    Ddi {
        image: dir.path().join("test.raw"),
        dir,
        cert,
        parts,
    }
}

fn check_repart_ddi(sector: u32, key_kind: &str) {
    let ddi = repart_ddi(sector, key_kind);
    let parsed = ddi::parse_ddi_file(&ddi.image).unwrap();
    assert_eq!(parsed.sector_size, sector);
    assert_eq!(parsed.partitions.len(), 3, "{parsed:#?}");
    for (ours, theirs) in parsed.partitions.iter().zip(&ddi.parts) {
        assert_eq!(ours.type_name(), theirs.ty);
        assert_eq!(ours.label, theirs.label);
        assert_eq!(format_uuid(&ours.part_uuid), theirs.uuid);
        assert_eq!(
            (ours.offset, ours.size),
            (theirs.offset, theirs.raw_size),
            "{}",
            theirs.ty
        );
        assert_eq!(ours.arch, arch::native());
        assert!(ours.flags & FLAG_READ_ONLY != 0);
    }
    let layout = ddi::select(&parsed, arch::native()).unwrap();
    assert_eq!(layout.designator, Designator::Root);
    let (verity_part, sig_part) = (layout.verity.clone().unwrap(), layout.sig.clone().unwrap());
    assert_eq!(
        (layout.data.role, verity_part.role, sig_part.role),
        (
            PartitionRole::Data,
            PartitionRole::Verity,
            PartitionRole::VeritySig
        )
    );

    // root hash: partition UUIDs == signature JSON == repart's report
    let guessed = ddi::guess_roothash(&layout).unwrap();
    let image_len = file_len(&ddi.image);
    let (json_hash, sig) = signature::read_verity_sig(
        &mut file_reader(&ddi.image, 0),
        sig_part.offset,
        sig_part.size,
        image_len,
    )
    .unwrap();
    assert_eq!(guessed, json_hash);
    assert_eq!(guessed, ddi.parts[0].roothash);

    // the verity partition, as veritysetup sees it
    let data_file = ddi.dir.path().join("data.part");
    let hash_file = ddi.dir.path().join("hash.part");
    for (part, file) in [(&layout.data, &data_file), (&verity_part, &hash_file)] {
        let mut buf = vec![0u8; part.size as usize];
        file_reader(&ddi.image, part.offset)(0, &mut buf).unwrap();
        fs::write(file, buf).unwrap();
    }
    let dump = run(Command::new("veritysetup").arg("dump").arg(&hash_file));
    let sb = superblock_of(&hash_file, 0);
    let (bounded, _) = verity::read_superblock(
        &mut file_reader(&ddi.image, verity_part.offset),
        0,
        verity_part.size,
        layout.data.size,
    )
    .unwrap();
    assert_eq!(bounded, sb);
    assert_eq!(sb.data_blocks.to_string(), field(&dump, "Data blocks"));
    assert_eq!(format_uuid(&sb.uuid), field(&dump, "UUID"));
    run(Command::new("veritysetup")
        .arg("verify")
        .arg(&data_file)
        .arg(&hash_file)
        .arg(&guessed));
    let rh = verity::parse_roothash(&guessed).unwrap();
    let mut read_hash = file_reader(&ddi.image, verity_part.offset);
    let mut read_data = file_reader(&ddi.image, layout.data.offset);
    verity::check_top_hash(&mut read_hash, &sb, 0, &rh).unwrap();
    verity::verify_all(&mut read_data, &mut read_hash, &sb, 0, &rh).unwrap();

    // the embedded signature verifies against the certificate from <root>/usr/lib/verity.d
    let root = ddi.dir.path().join("root");
    fs::create_dir_all(root.join("usr/lib/verity.d")).unwrap();
    fs::copy(&ddi.cert.1, root.join("usr/lib/verity.d/sysexts.crt")).unwrap();
    let certs = load_certs(&root);
    let who = signature::verify_roothash_signature(&json_hash, &sig, &certs).unwrap();
    assert_eq!(who, root.join("usr/lib/verity.d/sysexts.crt"));
    let other = make_cert(ddi.dir.path(), "other", key_kind, None);
    assert!(signature::verify_roothash_signature(&json_hash, &sig, &trusted(&[&other])).is_err());

    // one flipped data byte: the top hash still checks out, the full verify finds the block
    let block = sb.data_blocks / 2;
    flip_byte(
        &ddi.image,
        layout.data.offset + block * u64::from(sb.data_block_size) + 100,
    );
    let mut read_hash = file_reader(&ddi.image, verity_part.offset);
    let mut read_data = file_reader(&ddi.image, layout.data.offset);
    verity::check_top_hash(&mut read_hash, &sb, 0, &rh).unwrap();
    let e = verity::verify_all(&mut read_data, &mut read_hash, &sb, 0, &rh).unwrap_err();
    assert_eq!(
        e.downcast_ref::<CorruptBlock>(),
        Some(&CorruptBlock::Data { index: block })
    );

    // The same image with a header (CRC made valid) declaring 2048 entries: refused, by name.
    let h = u64::from(sector);
    let mut header = vec![0u8; 92];
    file_reader(&ddi.image, h)(0, &mut header).unwrap();
    header[80..84].copy_from_slice(&2048u32.to_le_bytes());
    header[16..20].fill(0);
    let crc = crc32(&header);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    let f = fs::OpenOptions::new().write(true).open(&ddi.image).unwrap();
    f.write_all_at(&header, h).unwrap();
    assert_eq!(
        format!("{:#}", ddi::parse_ddi_file(&ddi.image).unwrap_err()),
        format!(
            "reading the partition table of {}: GPT header declares 2048 partition entries: refusing (1 to 1024 are accepted)",
            ddi.image.display()
        )
    );
}

#[test]
fn repart_ddi_512_rsa() {
    check_repart_ddi(512, "rsa");
}

#[test]
fn repart_ddi_4096_rsa() {
    check_repart_ddi(4096, "rsa");
}

#[test]
fn repart_ddi_512_ec() {
    check_repart_ddi(512, "P-256");
}
