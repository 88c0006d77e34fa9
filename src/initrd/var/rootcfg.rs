//! `/var` from the root's own configuration: the `var.mount` that the booted system's systemd
//! will load, worked out from the root's files the way it does, so that the initrd mounts the
//! same filesystem before discovery (the kernel command line, when it names `/var`, wins; see
//! `verbs::mount_var`).
//!
//! # Which definition wins
//!
//! PID 1 loads the first `var.mount` on its unit search path (`lookup_paths_init()` in
//! `src/shared/path-lookup.c`): `/etc/systemd/system` comes before `/run/systemd/generator`,
//! where systemd-fstab-generator writes the unit for an fstab entry, which comes before
//! `/usr/local/lib/systemd/system` and `/usr/lib/systemd/system`. So:
//!
//! 1. `etc/systemd/system/var.mount` (what Ignition writes for a separate `/var`) overrides
//!    an fstab entry for `/var`; a link to `/dev/null` or an empty file there masks the unit,
//!    and then nothing mounts `/var` (not even the fstab entry);
//! 2. else the **first** `etc/fstab` entry whose mount point is `/var`: the generator writes
//!    each unit with an exclusive create, so a later duplicate only logs "Duplicate entry"
//!    (`generator_open_unit_file()`); the generator is skipped with `fstab=no` on the kernel
//!    command line (`parse_proc_cmdline_item()`, the booted system's key);
//! 3. else `var.mount` in `usr/local/lib` or `usr/lib/systemd/system`.
//!
//! Then the drop-ins (`var.mount.d/*.conf` and the type-wide `mount.d/*.conf`, in name order,
//! `unit_file_find_dropin_paths()`) apply to whichever it is, the generated unit included.
//!
//! An fstab entry's mount point counts as `/var` when it resolves to where `/var` does inside
//! the root: the generator canonicalises it with `chase()` (`canonicalize_mount_path()`), so a
//! link to `/var` counts and `/var/` or `//var` do too. Swap entries are not mounts. An entry
//! with `noauto` (the last of `noauto`/`auto`, `fstab_test_yes_no_option()`) or
//! `x-systemd.automount` is left to the booted system: the generator hooks neither into
//! `local-fs.target` (`fstab_options_to_flags()`, `add_mount()`), and an automount point must
//! not find `/var` mounted already. `nofail` entries are mounted.
//!
//! A `var.mount` is used whether or not it is enabled (`local-fs.target.wants/` or
//! `remote-fs.target.wants/`): a unit file for `/var` is pulled in by every unit with a path
//! below `/var` in `RequiresMountsFor=` (`unit_add_mount_dependencies()` adds `Requires=` on a
//! mount unit with a fragment), e.g. `systemd-journal-flush.service`, early in every boot.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

use super::mount::MountPlan;
use super::spec::{build, not_block, simplify, VarSpec};
use super::unit::{MountSettings, Setting};
use crate::decide::mutable::parse_boolean;
use crate::gather::conffiles::{self, Entry};
use crate::initrd::cmdline::Param;
use crate::kernel::root::Root;
use crate::limits;
use crate::ondisk::fstab::{parse_fstab, test_option, yes_no_option};
use crate::ondisk::unitfile::parse_unit_file;

const UNIT: &str = "var.mount";
/// Unit directories searched before the generator's output, highest priority first.
const UNIT_DIRS_ABOVE_FSTAB: &[&str] = &["/etc/systemd/system"];
/// Unit directories searched after it.
const UNIT_DIRS_BELOW_FSTAB: &[&str] =
    &["/usr/local/lib/systemd/system", "/usr/lib/systemd/system"];
/// Drop-in directories, highest priority first for a name found in several.
const DROPIN_DIRS: &[&str] = &[
    "/etc/systemd/system/var.mount.d",
    "/usr/local/lib/systemd/system/var.mount.d",
    "/usr/lib/systemd/system/var.mount.d",
    "/etc/systemd/system/mount.d",
    "/usr/local/lib/systemd/system/mount.d",
    "/usr/lib/systemd/system/mount.d",
];
const FSTAB: &str = "/etc/fstab";

/// What the root's configuration says about `/var`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootVar {
    /// Nothing defines `/var`: it is a directory of the root filesystem.
    Undefined,
    /// `var.mount` is masked (the file named): the booted system mounts no `/var` either.
    Masked(String),
    /// Defined (at `source`), but not mounted by us: `why`.
    LeftToSystem {
        /// `FILE:LINE` of the definition.
        source: String,
        /// Why it is not ours to mount.
        why: String,
    },
    /// The filesystem to mount at `<root>/var`; its `source_param` is the `FILE:LINE` of
    /// `What=` (or of the fstab entry).
    Mount(VarSpec),
}

/// The definition before drop-ins, or an answer already.
enum Base {
    /// Settings of a unit file or an fstab entry; `unit` names it in messages.
    Settings {
        settings: MountSettings,
        unit: String,
    },
    /// Nothing more to look at.
    Answer(RootVar),
}

/// Work out the root's `/var` (see the module docs). `params` is the kernel command line
/// (for `fstab=`). Errors name the file, the line and the reason: a file over its size cap, a
/// unit systemd would refuse to load, a `What=` or option that cannot be a `/var` device.
pub fn var_from_root(root: &Root, params: &[Param]) -> Result<RootVar> {
    let mut warnings = Vec::new();
    let (mut settings, unit) = match base(root, params, &mut warnings)? {
        Base::Answer(answer) => return Ok(answer),
        Base::Settings { settings, unit } => (settings, unit),
    };
    for (_, found) in conffiles::list(root, DROPIN_DIRS, ".conf", conffiles::NonRegular::Skip)? {
        apply_unit_file(root, &found.in_root, &mut settings, &mut warnings)?;
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let what = settings.verify(&unit).map_err(|e| anyhow!(e))?.clone();
    let text = |s: &Option<Setting>| {
        s.as_ref()
            .map(|s| String::from_utf8_lossy(&s.value).into_owned())
    };
    let (fstype, options) = (text(&settings.fstype), text(&settings.options));
    if not_block(fstype.as_deref(), options.as_deref()) {
        return Ok(RootVar::LeftToSystem {
            source: what.source,
            why: format!(
                "Type={} Options={} is not a filesystem on a block device",
                fstype.as_deref().unwrap_or(""),
                options.as_deref().unwrap_or("")
            ),
        });
    }
    if let (Some(opts), Some(set)) = (&options, &settings.options) {
        MountPlan::from_options(opts).map_err(|e| anyhow!("{}: {e}", set.source))?;
    }
    let value = |s: Option<Setting>| s.map(|s| s.value);
    build(
        what.value,
        value(settings.fstype),
        value(settings.options),
        what.source,
    )
    .map(RootVar::Mount)
    .map_err(|e| anyhow!(e))
}

/// The fragment or fstab entry that defines `var.mount`, in systemd's order.
fn base(root: &Root, params: &[Param], warnings: &mut Vec<String>) -> Result<Base> {
    for dir in UNIT_DIRS_ABOVE_FSTAB {
        if let Some(found) = fragment(root, dir, warnings)? {
            return Ok(found);
        }
    }
    if fstab_enabled(params) {
        if let Some(found) = from_fstab(root)? {
            return Ok(found);
        }
    } else {
        tracing::info!("fstab=no on the kernel command line: not reading {FSTAB} for /var.");
    }
    for dir in UNIT_DIRS_BELOW_FSTAB {
        if let Some(found) = fragment(root, dir, warnings)? {
            return Ok(found);
        }
    }
    Ok(Base::Answer(RootVar::Undefined))
}

/// `DIR/var.mount`: absent, masked or read.
fn fragment(root: &Root, dir: &str, warnings: &mut Vec<String>) -> Result<Option<Base>> {
    let path = Path::new(dir).join(UNIT);
    let shown = root.show(&path).display().to_string();
    match conffiles::classify(root, &path)? {
        Entry::Ignored | Entry::NotRegular(_) => Ok(None),
        Entry::Masked => Ok(Some(Base::Answer(RootVar::Masked(shown)))),
        Entry::Provides(found) => {
            let mut settings = MountSettings::default();
            apply_unit_file(root, &found.in_root, &mut settings, warnings)?;
            tracing::debug!("{shown} defines /var ({}).", enablement(root));
            Ok(Some(Base::Settings {
                settings,
                unit: shown,
            }))
        }
    }
}

/// Read and parse one unit file or drop-in and apply its `[Mount]` section.
fn apply_unit_file(
    root: &Root,
    in_root: &Path,
    settings: &mut MountSettings,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let shown = root.show(in_root).display().to_string();
    let Some(bytes) = root.read_optional(in_root, limits::UNIT_FILE)? else {
        return Ok(());
    };
    let file = parse_unit_file(&bytes).map_err(|p| {
        anyhow!(
            "{shown}:{}: {}; systemd refuses to load the unit",
            p.line,
            p.message
        )
    })?;
    warnings.extend(
        file.warnings
            .iter()
            .map(|p| format!("{shown}:{}: {}", p.line, p.message)),
    );
    settings
        .apply(&file, &shown, warnings)
        .map_err(|e| anyhow!(e))
}

/// The first fstab entry for `/var`, as the generated `var.mount`.
fn from_fstab(root: &Root) -> Result<Option<Base>> {
    let Some(bytes) = root.read_optional(Path::new(FSTAB), limits::FSTAB)? else {
        return Ok(None);
    };
    let shown = root.show(Path::new(FSTAB)).display().to_string();
    let var = canonical(root, b"/var");
    let entries = parse_fstab(&bytes);
    let Some(entry) = entries
        .into_iter()
        .find(|e| e.fstype != b"swap" && e.dir.starts_with(b"/") && canonical(root, &e.dir) == var)
    else {
        return Ok(None);
    };
    let source = format!("{shown}:{}", entry.line);
    let left = |why: &str| {
        Ok(Some(Base::Answer(RootVar::LeftToSystem {
            source: source.clone(),
            why: why.to_string(),
        })))
    };
    if yes_no_option(&entry.options, "noauto", "auto") {
        return left("noauto: systemd does not mount it at boot by itself");
    }
    if test_option(
        &entry.options,
        &["comment=systemd.automount", "x-systemd.automount"],
    ) {
        return left("x-systemd.automount: systemd puts an automount point on /var");
    }
    let field = |v: &[u8]| (!v.is_empty()).then(|| Setting::new(v, source.clone()));
    let settings = MountSettings {
        what: Some(Setting::new(&entry.fsname, source.clone())),
        where_: None,
        fstype: field(&entry.fstype).filter(|t| t.value != b"auto"),
        options: field(&entry.options),
    };
    Ok(Some(Base::Settings {
        settings,
        unit: format!("the var.mount generated from {source}"),
    }))
}

/// Where `path` ends up inside the root, links followed (a missing tail is kept); a path
/// that cannot be walked is taken as written, simplified, as the generator does.
fn canonical(root: &Root, path: &[u8]) -> PathBuf {
    match root.lookup(Path::new(OsStr::from_bytes(path))) {
        Ok(found) => found.in_root().to_path_buf(),
        Err(_) => PathBuf::from(OsStr::from_bytes(&simplify(path))),
    }
}

/// `fstab=` of the booted system's command line: each valid boolean overrides the last one,
/// a value-less `fstab` means yes, a bad one is ignored (`parse_proc_cmdline_item()`).
fn fstab_enabled(params: &[Param]) -> bool {
    let mut enabled = true;
    for p in params.iter().filter(|p| p.key == "fstab") {
        match p.value.as_deref().map(parse_boolean) {
            None => enabled = true,
            Some(Some(b)) => enabled = b,
            Some(None) => tracing::warn!(
                "ignoring fstab={}: not a boolean",
                p.value.as_deref().unwrap_or("")
            ),
        }
    }
    enabled
}

/// Which `.wants`/`.requires` link enables `var.mount`, for the log.
fn enablement(root: &Root) -> String {
    let links = [
        "local-fs.target.wants",
        "local-fs.target.requires",
        "remote-fs.target.wants",
        "remote-fs.target.requires",
    ];
    links
        .iter()
        .map(|d| Path::new("/etc/systemd/system").join(d).join(UNIT))
        .find(|p| root.resolve_nofollow(p).is_ok())
        .map_or_else(
            || "not enabled; pulled in by RequiresMountsFor= below /var".to_string(),
            |p| format!("enabled by {}", root.show(&p).display()),
        )
}

#[cfg(test)]
mod tests;
