//! dm-verity activation through libcryptsetup (feature `verity`).
//!
//! One read-only device per root hash, named `<roothash hex>-verity` like systemd's
//! `VERITY_SHARE` mode, so an existing device with the same root hash is reused (ours
//! from the initrd, or systemd's) instead of activated a second time, which the kernel
//! refuses for a block device that is already mapped. libcryptsetup and the kernel accept a
//! wrong root hash and only fail the reads later, so the caller must check it against the
//! hash tree first ([`crate::ondisk::verity::check_root_hash`]; `image::protect` does, before it
//! creates any device). libcryptsetup's messages are collected per call and end up in our
//! errors instead of on stderr.
//!
//! Dropping a [`VerityDevice`] asks for deferred removal, so a device that is mounted
//! lives exactly as long as its mounts (systemd does the same when it lets go of a
//! device). Static builds link libcryptsetup with a userspace hash backend (nettle,
//! docs/static-build.md), so no `af_alg`/`algif_hash` modules are needed in the initrd.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libcryptsetup_rs::consts::flags::{CryptActivate, CryptDeactivate, CryptVerity};
use libcryptsetup_rs::consts::vals::{CryptLogLevel, CryptStatusInfo, EncryptionFormat};
use libcryptsetup_rs::{
    CryptDevice, CryptInit, CryptParamsVerity, CryptParamsVerityRef, Either, LibcryptErr,
};

use crate::ondisk::bytes::hex;

/// Where device-mapper puts its device nodes.
const DM_DIR: &str = "/dev/mapper";
/// `DM_NAME_LEN` (128) minus the terminating NUL.
const DM_NAME_MAX: usize = 127;
const NAME_SUFFIX: &str = "-verity";
/// `CRYPT_DEACTIVATE_DEFERRED_CANCEL` (libcryptsetup >= 2.5; not in libcryptsetup-rs's flags).
const DEACTIVATE_DEFERRED_CANCEL: u32 = 1 << 2;
/// Largest root hash libcryptsetup hands back (`crypt_load` refuses digests over 4096 bytes).
const MAX_ROOTHASH: usize = 4096;
/// How long to wait for the device node after activation (libdevmapper creates it itself).
const NODE_WAIT: Duration = Duration::from_secs(2);

/// Parameters for one verity activation.
pub struct VeritySpec<'a> {
    /// The data: a loop device (or partition) holding the filesystem.
    pub data_device: &'a Path,
    /// The hash tree: a loop device, partition or `.verity` sidecar file.
    pub hash_device: &'a Path,
    /// Byte offset of the verity superblock in `hash_device` (0 for a separate partition or sidecar).
    pub hash_offset: u64,
    /// The root hash (binary, not hex).
    pub roothash: &'a [u8],
    /// PKCS#7 signature of the root hash, used only for the kernel keyring check.
    pub signature: Option<&'a [u8]>,
}

impl VeritySpec<'_> {
    /// "data X, hash Y (offset N)" for error messages.
    fn describe(&self) -> String {
        let mut s = format!(
            "data {}, hash {}",
            self.data_device.display(),
            self.hash_device.display()
        );
        if self.hash_offset != 0 {
            s.push_str(&format!(" (offset {})", self.hash_offset));
        }
        s
    }
}

/// An active dm-verity device; Drop removes it (deferred) unless `keep()` was called.
#[derive(Debug)]
pub struct VerityDevice {
    /// Device-mapper name: `<roothash hex>-verity`.
    pub name: String,
    /// Device node: `/dev/mapper/<name>`.
    pub path: PathBuf,
    /// True when an existing device with the same root hash was reused instead of activated.
    pub reused: bool,
    /// True when the kernel checked the signature against its keyring (false: activated by root hash).
    pub kernel_signed: bool,
    /// Remove the device on drop.
    armed: bool,
}

impl VerityDevice {
    /// Keep the device after this handle goes away (the merged overlay uses it); returns its node.
    pub fn keep(mut self) -> PathBuf {
        self.armed = false;
        std::mem::take(&mut self.path)
    }
}

/// Serialises device-mapper calls across threads (see [`activate`]).
static DM_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// This thread holds [`DM_LOCK`] (a device dropped inside `activate` must not lock again).
    static DM_HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Holds [`DM_LOCK`] unless this thread already does.
struct DmSerial(Option<std::sync::MutexGuard<'static, ()>>);

fn dm_serial() -> DmSerial {
    if DM_HELD.with(std::cell::Cell::get) {
        return DmSerial(None);
    }
    let guard = DM_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    DM_HELD.with(|h| h.set(true));
    DmSerial(Some(guard))
}

impl Drop for DmSerial {
    fn drop(&mut self) {
        if self.0.take().is_some() {
            DM_HELD.with(|h| h.set(false));
        }
    }
}

impl Drop for VerityDevice {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let _serial = dm_serial();
        // Deferred: while anyone (a mount, the device's other user) holds it, it stays and
        // goes away with the last one. Reused devices too, as systemd does on relinquish:
        // reuse cancelled their pending removal.
        let res = CryptInit::init_by_name_and_header(&self.name, None).and_then(|mut cd| {
            cd.activate_handle()
                .deactivate(&self.name, CryptDeactivate::DEFERRED)
        });
        match res {
            Ok(()) => tracing::debug!(device = %self.name, "dm-verity device released"),
            Err(err) => tracing::warn!(
                device = %self.name,
                "could not remove dm-verity device {}: {}",
                self.name,
                describe_err(&err, take_messages())
            ),
        }
    }
}

/// The device-mapper name for a root hash: lowercase hex + `-verity` (systemd's sharing name).
///
/// A hex string that would not fit device-mapper's 127-byte names (digests over 60 bytes)
/// is cut; reuse still compares the full root hash.
pub fn device_name(roothash: &[u8]) -> String {
    let mut hex = hex(roothash);
    hex.truncate(DM_NAME_MAX - NAME_SUFFIX.len());
    hex + NAME_SUFFIX
}

/// True if the kernel has device-mapper (loaded, built in, or loadable on first use).
pub fn dm_available() -> bool {
    let listed = |file: &str| {
        std::fs::read_to_string(file)
            .map(|s| s.lines().any(|l| l.trim_end().ends_with(" device-mapper")))
            .unwrap_or(false)
    };
    if listed("/proc/misc") || listed("/proc/devices") {
        return true;
    }
    // Opening the control node (created from modules.devname) autoloads dm_mod.
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(Path::new(DM_DIR).join("control"))
        .is_ok()
    {
        return true;
    }
    // libdevmapper creates the node itself and the open then loads the module.
    module_known("dm_mod") || module_known("dm-mod")
}

/// Whether `modules.dep` or `modules.builtin` of the running kernel names the module.
fn module_known(module: &str) -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let dir = Path::new("/lib/modules").join(release.trim());
    let needle = format!("/{module}.ko");
    ["modules.dep", "modules.builtin"].iter().any(|f| {
        std::fs::read_to_string(dir.join(f))
            .map(|s| {
                s.lines()
                    .any(|l| l.split(':').next().unwrap_or("").contains(&needle))
            })
            .unwrap_or(false)
    })
}

/// Activate read-only with libcryptsetup, or reuse an existing device with the same root hash.
///
/// With a signature the kernel keyring check is tried first; when the kernel cannot or will
/// not check it, the device is activated by root hash alone: the caller must already have
/// verified the signature in userspace (or its policy accepts unsigned images).
pub fn activate(spec: &VeritySpec) -> Result<VerityDevice> {
    // libdevmapper (under libcryptsetup) keeps process-wide state: one activation at a time,
    // even when images are opened on several threads.
    let _serial = dm_serial();
    let what = spec.describe();
    if spec.roothash.is_empty() {
        bail!("cannot activate dm-verity for {what}: the root hash is empty");
    }
    let name = device_name(spec.roothash);
    if !dm_available() {
        bail!(
            "cannot activate dm-verity device {name} for {what}: device-mapper not available \
             (no /dev/mapper/control, dm_mod neither loaded nor loadable)"
        );
    }
    init_logging();

    if let Some(dev) = reuse(&name, spec).with_context(|| format!("dm-verity for {what}"))? {
        return Ok(dev);
    }
    let mut cd = load(spec)?;

    let kernel_signed = match activate_new(&mut cd, &name, spec) {
        Ok(signed) => signed,
        Err(err) if err.errno == Some(libc::EEXIST) => {
            // Someone activated the same root hash between our check and our activation.
            drop(cd);
            return reuse(&name, spec)
                .with_context(|| format!("dm-verity for {what}"))?
                .ok_or_else(|| anyhow!("dm-verity device {name} for {what} appeared and vanished during activation"));
        }
        Err(err) => bail!(
            "cannot activate dm-verity device {name} for {what}: {}",
            err.text
        ),
    };
    drop(cd);

    // From here on Drop cleans up if anything fails.
    let mut dev = VerityDevice {
        path: Path::new(DM_DIR).join(&name),
        name,
        reused: false,
        kernel_signed,
        armed: true,
    };
    dev.path = wait_for_node(&dev.name, &dev.path)
        .with_context(|| format!("dm-verity device for {what}"))?;
    tracing::debug!(device = %dev.name, data = %spec.data_device.display(), kernel_signed, "dm-verity device activated");
    Ok(dev)
}

/// An activation failure with the errno (to spot EEXIST) and the full message.
struct ActivateError {
    errno: Option<i32>,
    text: String,
}

/// Activate a new device; Ok(true) when the kernel checked the signature.
fn activate_new(
    cd: &mut CryptDevice,
    name: &str,
    spec: &VeritySpec,
) -> std::result::Result<bool, ActivateError> {
    let fail = |err: LibcryptErr| ActivateError {
        errno: errno_of(&err),
        text: describe_err(&err, take_messages()),
    };
    if let Some(sig) = spec.signature {
        take_messages();
        match cd.activate_handle().activate_by_signed_key(
            Some(name),
            Some(spec.roothash),
            Some(sig),
            CryptActivate::READONLY,
        ) {
            Ok(()) => return Ok(true),
            Err(err) if errno_of(&err) == Some(libc::EEXIST) => return Err(fail(err)),
            Err(err) => tracing::debug!(
                device = name,
                "kernel did not check the root hash signature ({}); activating by root hash (the caller checked the signature in userspace)",
                describe_err(&err, take_messages())
            ),
        }
    }
    take_messages();
    cd.activate_handle()
        .activate_by_volume_key(Some(name), Some(spec.roothash), CryptActivate::READONLY)
        .map_err(fail)?;
    Ok(false)
}

/// Open the hash device, read its verity superblock and attach the data device.
fn load(spec: &VeritySpec) -> Result<CryptDevice> {
    init_logging();
    let what = spec.describe();
    take_messages();
    let mut cd =
        CryptInit::init_with_data_device(Either::Right((spec.hash_device, spec.data_device)))
            .map_err(|e| anyhow!("cannot open {what}: {}", describe_err(&e, take_messages())))?;
    let params = CryptParamsVerity {
        hash_name: String::new(),
        data_device: spec.data_device.to_path_buf(),
        hash_device: None,
        fec_device: None,
        salt: Vec::new(),
        hash_type: 0,
        data_block_size: 0,
        hash_block_size: 0,
        data_size: 0,
        hash_area_offset: spec.hash_offset,
        fec_area_offset: 0,
        fec_roots: 0,
        flags: CryptVerity::empty(),
    };
    let mut params_ref: CryptParamsVerityRef<'_> = (&params)
        .try_into()
        .map_err(|e: LibcryptErr| anyhow::Error::new(e).context(format!("cannot open {what}")))?;
    cd.context_handle()
        .load(Some(EncryptionFormat::Verity), Some(&mut params_ref))
        .map_err(|e| {
            anyhow!(
                "no usable verity superblock in {what}: {}",
                describe_err(&e, take_messages())
            )
        })?;
    Ok(cd)
}

/// Hash the top of the tree (one block) and compare with the root hash, on the devices of a
/// spec: used by the tests to check `verity::check_root_hash` against trees libcryptsetup made.
#[cfg(test)]
fn precheck_root_hash(spec: &VeritySpec) -> Result<()> {
    use crate::ondisk::verity;
    use std::fs::File;
    use std::os::unix::fs::FileExt;
    let open = |p: &Path| File::open(p).with_context(|| format!("opening {}", p.display()));
    let hash = open(spec.hash_device)?;
    let mut raw = [0u8; verity::SUPERBLOCK_SIZE];
    hash.read_exact_at(&mut raw, spec.hash_offset)
        .with_context(|| {
            format!(
                "reading the verity superblock of {}",
                spec.hash_device.display()
            )
        })?;
    let sb = verity::parse_superblock(&raw)?;
    let alg = sb.algorithm.to_ascii_lowercase();
    if !matches!(alg.as_str(), "sha224" | "sha256" | "sha384" | "sha512") {
        tracing::warn!(
            hash = %spec.hash_device.display(),
            "verity hash algorithm {} cannot be checked before activation; a wrong root hash shows as read errors",
            sb.algorithm
        );
        return Ok(());
    }
    let data = open(spec.data_device)?;
    verity::check_root_hash(
        &mut |off, buf| data.read_exact_at(buf, off),
        &mut |off, buf| hash.read_exact_at(buf, off),
        &sb,
        spec.hash_offset,
        spec.roothash,
    )
}

/// Reuse an active device of this name if its root hash matches; None if there is none.
fn reuse(name: &str, spec: &VeritySpec) -> Result<Option<VerityDevice>> {
    take_messages();
    match libcryptsetup_rs::status(None, name) {
        Ok(CryptStatusInfo::Active | CryptStatusInfo::Busy) => {}
        Ok(CryptStatusInfo::Inactive) => return Ok(None),
        // Invalid: status unknown; the activation that follows reports the real problem.
        Ok(CryptStatusInfo::Invalid) | Err(_) => return Ok(None),
    }
    let mut cd = CryptInit::init_by_name_and_header(name, None).map_err(|e| {
        anyhow!(
            "cannot inspect the existing device {name}: {}",
            describe_err(&e, take_messages())
        )
    })?;
    let mut buf = vec![0u8; MAX_ROOTHASH];
    let (_, len) = cd
        .volume_key_handle()
        .get(None, &mut buf, None)
        .map_err(|e| {
            anyhow!(
                "device {name} exists but is not a dm-verity device whose root hash can be read: {}",
                describe_err(&e, take_messages())
            )
        })?;
    let existing = buf.get(..len).unwrap_or(&[]);
    if existing != spec.roothash {
        bail!(
            "device {name} exists with a different root hash ({}), expected {}",
            hex(existing),
            hex(spec.roothash)
        );
    }
    // A device left with a pending deferred removal would vanish when its other user goes.
    cd.activate_handle()
        .deactivate(
            name,
            CryptDeactivate::from_bits_retain(DEACTIVATE_DEFERRED_CANCEL),
        )
        .map_err(|e| {
            anyhow!(
                "cannot cancel the deferred removal of the existing device {name}: {}",
                describe_err(&e, take_messages())
            )
        })?;
    let path = wait_for_node(name, &Path::new(DM_DIR).join(name))?;
    tracing::debug!(device = name, data = %spec.data_device.display(), "reusing the existing dm-verity device");
    Ok(Some(VerityDevice {
        name: name.to_string(),
        path,
        reused: true,
        kernel_signed: false,
        armed: true,
    }))
}

/// How long `/dev/mapper/NAME` may lag behind the kernel's own `/dev/dm-N` node.
const MAPPER_GRACE: Duration = Duration::from_millis(200);

/// The kernel's node of the device-mapper device `name` (`/dev/dm-N`, made by devtmpfs), if any.
fn kernel_node(name: &str) -> Option<PathBuf> {
    std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .find_map(|e| {
            let dir = e.file_name().to_string_lossy().into_owned();
            let dm_name = std::fs::read_to_string(e.path().join("dm/name")).ok()?;
            let node = Path::new("/dev").join(&dir);
            (dm_name.trim_end() == name && node.exists()).then_some(node)
        })
}

/// Wait (bounded) for the device's node and return it: `/dev/mapper/NAME` (libdevmapper or
/// udev makes it), else the kernel's `/dev/dm-N`. The mapper link is not always there: in an
/// initrd, udev's device-mapper rules may drop it for a device another process activated
/// earlier, and reusing that device must not fail over a missing symlink.
fn wait_for_node(name: &str, mapper: &Path) -> Result<PathBuf> {
    let start = Instant::now();
    loop {
        if mapper.exists() {
            return Ok(mapper.to_path_buf());
        }
        if start.elapsed() > MAPPER_GRACE {
            if let Some(node) = kernel_node(name) {
                tracing::debug!(device = name, node = %node.display(), "no {} node: using the kernel's", mapper.display());
                return Ok(node);
            }
        }
        if start.elapsed() > NODE_WAIT {
            bail!(
                "neither {} nor a /dev/dm-N node for {name} appeared within {} ms",
                mapper.display(),
                NODE_WAIT.as_millis()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn errno_of(err: &LibcryptErr) -> Option<i32> {
    match err {
        LibcryptErr::IOError(e) => e.raw_os_error(),
        _ => None,
    }
}

/// The error, plus what libcryptsetup said about it.
fn describe_err(err: &LibcryptErr, messages: Vec<String>) -> String {
    let mut s = match err {
        LibcryptErr::IOError(e) => e.to_string(),
        other => other.to_string(),
    };
    if !messages.is_empty() {
        s.push_str(" (libcryptsetup: ");
        s.push_str(&messages.join("; "));
        s.push(')');
    }
    s
}

thread_local! {
    /// Error messages libcryptsetup logged on this thread since the last `take_messages()`.
    static MESSAGES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn take_messages() -> Vec<String> {
    MESSAGES
        .try_with(|m| std::mem::take(&mut *m.borrow_mut()))
        .unwrap_or_default()
}

/// Route libcryptsetup's log into tracing (and errors into [`MESSAGES`]); once per process.
fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| libcryptsetup_rs::set_log_callback::<()>(Some(log_callback), None));
}

/// libcryptsetup log callback; must never unwind into C.
unsafe extern "C" fn log_callback(level: c_int, msg: *const c_char, _usrptr: *mut c_void) {
    if msg.is_null() {
        return;
    }
    // SAFETY: libcryptsetup passes a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    let text = text.trim();
    if level == CryptLogLevel::Error as c_int {
        tracing::debug!(target: "libcryptsetup", "error: {text}");
        let _ = MESSAGES.try_with(|m| {
            if let Ok(mut m) = m.try_borrow_mut() {
                m.push(text.to_string());
            }
        });
    } else if level == CryptLogLevel::Debug as c_int || level == CryptLogLevel::DebugJson as c_int {
        tracing::trace!(target: "libcryptsetup", "{text}");
    } else {
        tracing::debug!(target: "libcryptsetup", "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    #[test]
    fn name_is_lowercase_hex_plus_verity() {
        let hash: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
        let name = device_name(&hash);
        assert_eq!(name.len(), 64 + 7);
        assert!(name.ends_with("-verity"));
        assert_eq!(&name[..64], hex(&hash));
        assert!(name[..64]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(device_name(&[0xAB, 0x01]), "ab01-verity");
    }

    #[test]
    fn long_root_hashes_fit_a_dm_name() {
        let name = device_name(&[0xffu8; 64]);
        assert_eq!(name.len(), DM_NAME_MAX);
        assert!(name.ends_with("-verity"));
        assert!(name.starts_with("ffff"));
    }

    #[test]
    fn keep_disarms_and_returns_the_node() {
        let dev = VerityDevice {
            name: "00-verity".into(),
            path: PathBuf::from("/dev/mapper/00-verity"),
            reused: false,
            kernel_signed: false,
            armed: true,
        };
        assert_eq!(dev.keep(), PathBuf::from("/dev/mapper/00-verity"));
    }

    #[test]
    fn without_device_mapper_activation_fails_clearly() {
        if dm_available() {
            eprintln!("device-mapper is available here; the no-dm error path is not reachable");
            return;
        }
        let hash = [0x11u8; 32];
        let spec = VeritySpec {
            data_device: Path::new("/dev/loop-nonexistent"),
            hash_device: Path::new("/tmp/nonexistent.verity"),
            hash_offset: 0,
            roothash: &hash,
            signature: None,
        };
        let err = activate(&spec).expect_err("activation cannot work without device-mapper");
        let msg = format!("{err:#}");
        assert!(msg.contains("device-mapper not available"), "{msg}");
        assert!(msg.contains("/dev/loop-nonexistent"), "{msg}");
        assert!(msg.contains(&device_name(&hash)), "{msg}");
    }

    #[test]
    fn empty_root_hash_is_refused() {
        let spec = VeritySpec {
            data_device: Path::new("/nonexistent"),
            hash_device: Path::new("/nonexistent"),
            hash_offset: 0,
            roothash: &[],
            signature: None,
        };
        let msg = format!("{:#}", activate(&spec).expect_err("empty root hash"));
        assert!(msg.contains("root hash is empty"), "{msg}");
    }

    /// A data file of `blocks` 4 KiB blocks with varied content.
    fn data_file(dir: &Path, blocks: usize) -> PathBuf {
        let path = dir.join("data.img");
        let mut f = File::create(&path).expect("create data");
        for i in 0..blocks {
            let block: Vec<u8> = (0..4096u32)
                .map(|j| (j.wrapping_mul(31) ^ (i as u32).wrapping_mul(7919)) as u8)
                .collect();
            f.write_all(&block).expect("write data");
        }
        path
    }

    /// Build a hash tree with libcryptsetup itself (no device-mapper needed); returns the root hash.
    fn format_tree(data: &Path, hash: &Path, blocks: u64, hash_offset: u64) -> Vec<u8> {
        if !hash.exists() {
            File::create(hash).expect("create hash file");
        }
        let mut cd = CryptInit::init_with_data_device(Either::Right((hash, data)))
            .expect("crypt_init_data_device");
        let params = CryptParamsVerity {
            hash_name: "sha256".into(),
            data_device: data.to_path_buf(),
            hash_device: None,
            fec_device: None,
            salt: (0u8..32).collect(),
            hash_type: 1,
            data_block_size: 4096,
            hash_block_size: 4096,
            data_size: blocks,
            hash_area_offset: hash_offset,
            fec_area_offset: 0,
            fec_roots: 0,
            flags: CryptVerity::CREATE_HASH,
        };
        let mut pref: CryptParamsVerityRef<'_> = (&params).try_into().expect("params");
        cd.context_handle()
            .format(
                EncryptionFormat::Verity,
                ("", ""),
                None,
                Either::Right(0),
                Some(&mut pref),
            )
            .expect("crypt_format verity");
        let mut buf = vec![0u8; MAX_ROOTHASH];
        let (_, len) = cd
            .volume_key_handle()
            .get(None, &mut buf, None)
            .expect("root hash");
        buf.truncate(len);
        buf
    }

    fn spec<'a>(data: &'a Path, hash: &'a Path, off: u64, rh: &'a [u8]) -> VeritySpec<'a> {
        VeritySpec {
            data_device: data,
            hash_device: hash,
            hash_offset: off,
            roothash: rh,
            signature: None,
        }
    }

    #[test]
    fn load_and_precheck_accept_the_right_root_hash_only() {
        init_logging();
        let dir = tempfile::tempdir().expect("tempdir");
        for (blocks, off) in [(300u64, 0u64), (1, 0), (300, 8192)] {
            let data = data_file(dir.path(), blocks as usize);
            let hash = dir.path().join(format!("tree-{blocks}-{off}.verity"));
            let rh = format_tree(&data, &hash, blocks, off);
            assert_eq!(rh.len(), 32);

            let good = spec(&data, &hash, off, &rh);
            load(&good).expect("libcryptsetup loads the superblock");
            precheck_root_hash(&good).expect("right root hash passes");

            let mut wrong = rh.clone();
            wrong[0] ^= 1;
            let msg = format!(
                "{:#}",
                precheck_root_hash(&spec(&data, &hash, off, &wrong)).expect_err("wrong root hash")
            );
            assert!(msg.contains("root hash"), "{msg}");
        }
    }

    #[test]
    fn load_reports_a_missing_superblock_with_paths() {
        init_logging();
        let dir = tempfile::tempdir().expect("tempdir");
        let data = data_file(dir.path(), 4);
        let hash = dir.path().join("zero.verity");
        std::fs::write(&hash, vec![0u8; 8192]).expect("write");
        let rh = [0u8; 32];
        let Err(err) = load(&spec(&data, &hash, 0, &rh)) else {
            panic!("a file of zeros has no verity superblock");
        };
        let msg = format!("{err:#}");
        assert!(msg.contains("no usable verity superblock"), "{msg}");
        assert!(msg.contains("zero.verity"), "{msg}");
    }
}
