//! Settings and their precedence, exactly as systemd-sysext resolves them:
//! command line > environment > `<root>/{etc,run,usr/local/lib,usr/lib}/systemd/<class>.conf(.d)` > defaults.
//! The image policy has no environment variable; hierarchies and overlay options only come from the environment.

pub mod config;
pub mod switches;

pub use config::{
    config_files, load_config, parse_config_bytes, parse_config_text, read_config, ConfigValues,
    CONFIG_DIRS,
};

use crate::class::ImageClass;
use crate::decide::conflicts::ConflictPolicy;
use crate::decide::mutable::{parse_boolean, MutableMode};
use crate::kernel::root::Root;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// What the command line asked for, before precedence is applied.
#[derive(Clone, Debug, Default)]
pub struct CliOptions {
    /// `--root=`
    pub root: Option<PathBuf>,
    /// `--force`
    pub force: bool,
    /// `--mutable=`
    pub mutable: Option<MutableMode>,
    /// `--image-policy=`
    pub image_policy: Option<String>,
    /// `--noexec=`
    pub noexec: Option<bool>,
    /// `--always-refresh=`
    pub always_refresh: bool,
    /// `--no-reload`
    pub no_reload: bool,
    /// `--check-conflicts=`
    pub check_conflicts: Option<ConflictPolicy>,
    /// The kernel command line to honour (`None`: ignore it, e.g. in tests).
    pub kernel_cmdline: Option<String>,
    /// `--require=` names (added to each class's `Require=`; see `merge::run`).
    pub require: Vec<String>,
    /// Whether this process runs in an initrd (then `rd.`-prefixed kernel parameters count).
    pub in_initrd: bool,
}

/// Kernel command line key for the conflict policy (also `rd.extmerge.check_conflicts=` in the initrd).
pub const CMDLINE_CHECK_CONFLICTS: &str = "extmerge.check_conflicts";

/// Where a setting's value came from, for `status` and logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", content = "detail", rename_all = "lowercase")]
pub enum Origin {
    /// Given on the command line.
    Cli,
    /// Taken from an environment variable.
    Env(String),
    /// Taken from the kernel command line.
    Cmdline(String),
    /// Read from configuration files inside the root.
    Config(Vec<PathBuf>),
    /// Built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Cli => f.write_str("command line"),
            Origin::Env(v) => write!(f, "${v}"),
            Origin::Cmdline(k) => write!(f, "kernel command line {k}="),
            Origin::Config(files) => {
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                write!(f, "{}", names.join(", "))
            }
            Origin::Default => f.write_str("default"),
        }
    }
}

/// Fully resolved settings for one class.
#[derive(Clone, Debug, Serialize)]
pub struct ClassSettings {
    /// The class these settings apply to.
    pub class: ImageClass,
    /// Canonical root directory (`/` when `--root` is not given).
    pub root: PathBuf,
    /// True when `--root` was given (implies no reload, and host-only features such as `/.extra` policy are off).
    pub root_given: bool,
    /// Hierarchies to merge, as paths inside the root.
    pub hierarchies: Vec<PathBuf>,
    /// The other class's hierarchies: merges there are peeled to read the base OS.
    pub other_hierarchies: Vec<PathBuf>,
    /// Mutable mode in force.
    pub mutable: MutableMode,
    /// Where the mutable mode came from.
    pub mutable_origin: Origin,
    /// Image policy string, if one was configured (class default otherwise).
    pub image_policy: Option<String>,
    /// Where the image policy came from.
    pub image_policy_origin: Origin,
    /// Extra overlayfs options from the environment.
    pub overlay_options: Option<String>,
    /// `--noexec=` override, if given.
    pub noexec: Option<bool>,
    /// Skip compatibility checks.
    pub force: bool,
    /// Refresh even when nothing changed.
    pub always_refresh: bool,
    /// Do not ask the service manager to reload.
    pub no_reload: bool,
    /// What to do about conflicting extensions.
    pub check_conflicts: ConflictPolicy,
    /// Where the conflict policy came from.
    pub check_conflicts_origin: Origin,
    /// Extensions of this class that must be merged (`Require=` in the configuration files, and
    /// the `--require` names found in this class).
    pub require: Vec<String>,
    /// `--require` names: each must be merged by one of the selected classes.
    pub require_any: Vec<String>,
}

/// Parse a `*_HIERARCHIES` value: colon-separated, each absolute, normalized and not `/`; empty is an error.
pub fn parse_hierarchies(value: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for item in value.split(':').filter(|s| !s.is_empty()) {
        if !item.starts_with('/') {
            return Err(format!("hierarchy '{item}' is not an absolute path"));
        }
        let normalized = !item.contains("//") && !item.split('/').any(|c| c == "." || c == "..");
        if !normalized {
            return Err(format!("hierarchy '{item}' is not a normalized path"));
        }
        let simplified = item.trim_end_matches('/');
        if simplified.is_empty() {
            return Err("hierarchy '/' is not allowed".to_string());
        }
        out.push(PathBuf::from(simplified));
    }
    if out.is_empty() {
        return Err("the list of hierarchies is empty".to_string());
    }
    Ok(out)
}

/// The class a program name stands for, as systemd decides it: a last path component that
/// contains `systemd-confext` is confext, one that contains `systemd-sysext` sysext (a symlink
/// installing extmerge as either); `None` for `extmerge` itself and for no program name.
pub fn class_from_argv0(argv0: Option<&std::ffi::OsStr>) -> Option<ImageClass> {
    // systemd's invoked_as(): the last path component *contains* the name.
    let name = Path::new(argv0?).file_name()?.to_string_lossy();
    if name.contains("systemd-confext") {
        Some(ImageClass::Confext)
    } else if name.contains("systemd-sysext") {
        Some(ImageClass::Sysext)
    } else {
        None
    }
}

/// Canonicalize the root, with an error that names it.
pub fn resolve_root(root: Option<&Path>) -> Result<PathBuf> {
    let root = root.unwrap_or(Path::new("/"));
    let canon = std::fs::canonicalize(root)
        .with_context(|| format!("cannot resolve root directory {}", root.display()))?;
    if !canon.is_dir() {
        bail!("root {} is not a directory", root.display());
    }
    Ok(canon)
}

/// The hierarchies of `class`: `$SYSTEMD_<CLASS>_HIERARCHIES` (each once, in order) or the
/// defaults.
fn hierarchies_of(class: ImageClass, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<PathBuf>> {
    Ok(match env(class.hierarchies_env()) {
        Some(v) => {
            let mut out: Vec<PathBuf> = Vec::new();
            for h in parse_hierarchies(&v)
                .map_err(|e| anyhow::anyhow!("${}: {e}", class.hierarchies_env()))?
            {
                if !out.contains(&h) {
                    out.push(h);
                }
            }
            out
        }
        None => class
            .default_hierarchies()
            .iter()
            .map(PathBuf::from)
            .collect(),
    })
}

/// Apply systemd's precedence for one class. `env` looks up environment variables (injected for tests).
pub fn resolve(
    cli: &CliOptions,
    class: ImageClass,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ClassSettings> {
    let root = resolve_root(cli.root.as_deref())?;

    let hierarchies = hierarchies_of(class, env)?;
    // An invalid value for the other class is that class's error to report, not this one's.
    let other_hierarchies = hierarchies_of(class.other(), env).unwrap_or_else(|_| {
        class
            .other()
            .default_hierarchies()
            .iter()
            .map(PathBuf::from)
            .collect()
    });

    let env_mutable = env(class.mutable_env()).and_then(|v| match v.parse::<MutableMode>() {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!("${}: {e}, ignoring", class.mutable_env());
            None
        }
    });

    let handle = Root::open(&root)?;
    let (config, config_files) = load_config(&handle, class);
    let (mutable, mutable_origin) = if let Some(m) = cli.mutable {
        (m, Origin::Cli)
    } else if let Some(m) = env_mutable {
        (m, Origin::Env(class.mutable_env().to_string()))
    } else if let Some(m) = config.mutable {
        (m, Origin::Config(config_files.clone()))
    } else {
        (MutableMode::No, Origin::Default)
    };

    let (image_policy, image_policy_origin) = if let Some(p) = &cli.image_policy {
        (Some(p.clone()), Origin::Cli)
    } else if let Some(p) = config.image_policy.clone() {
        (Some(p), Origin::Config(config_files.clone()))
    } else {
        (None, Origin::Default)
    };

    let (check_conflicts, check_conflicts_origin) =
        conflict_setting(cli, config.check_conflicts, &config_files);
    let s = ClassSettings {
        class,
        check_conflicts,
        check_conflicts_origin,
        require: config.require.clone(),
        require_any: cli.require.clone(),
        other_hierarchies,
        root,
        root_given: cli.root.is_some(),
        hierarchies,
        mutable,
        mutable_origin,
        image_policy,
        image_policy_origin,
        overlay_options: env(class.overlay_options_env()).filter(|s| !s.is_empty()),
        noexec: cli.noexec,
        force: cli.force,
        always_refresh: cli.always_refresh,
        // --root implies --no-reload, as upstream.
        no_reload: cli.no_reload || cli.root.is_some(),
    };
    log_settings(&s);
    Ok(s)
}

/// The settings of each of `classes` that the operator's switches leave on
/// ([`switches::select`]: kill switches, and for `merging` masked units), in order; empty when
/// every class is switched off.
pub fn resolve_selected(
    cli: &CliOptions,
    classes: &[ImageClass],
    env: &dyn Fn(&str) -> Option<String>,
    merging: bool,
) -> Result<Vec<ClassSettings>> {
    let settings = classes
        .iter()
        .map(|c| resolve(cli, *c, env))
        .collect::<Result<Vec<_>>>()?;
    Ok(switches::select(
        settings,
        cli.kernel_cmdline.as_deref().unwrap_or_default(),
        cli.in_initrd,
        merging,
    ))
}

/// The conflict policy and where it came from: command line, kernel command line
/// (`extmerge.check_conflicts=`), configuration, else `warn`.
fn conflict_setting(
    cli: &CliOptions,
    configured: Option<ConflictPolicy>,
    config_files: &[PathBuf],
) -> (ConflictPolicy, Origin) {
    let cmdline = cli
        .kernel_cmdline
        .as_deref()
        .map(crate::initrd::cmdline::parse)
        .unwrap_or_default();
    let cmdline_policy =
        match crate::initrd::cmdline::get(&cmdline, CMDLINE_CHECK_CONFLICTS, cli.in_initrd) {
            Some(Some(v)) => match v.parse::<ConflictPolicy>() {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!("kernel command line {CMDLINE_CHECK_CONFLICTS}=: {e}, ignoring");
                    None
                }
            },
            Some(None) => {
                tracing::warn!(
                    "kernel command line {CMDLINE_CHECK_CONFLICTS} needs a value, ignoring"
                );
                None
            }
            None => None,
        };
    if let Some(p) = cli.check_conflicts {
        (p, Origin::Cli)
    } else if let Some(p) = cmdline_policy {
        (p, Origin::Cmdline(CMDLINE_CHECK_CONFLICTS.to_string()))
    } else if let Some(p) = configured {
        (p, Origin::Config(config_files.to_vec()))
    } else {
        (ConflictPolicy::Warn, Origin::Default)
    }
}

/// One debug line saying what a class will do and where each setting came from.
fn log_settings(s: &ClassSettings) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(" ")
        }
    };
    let hierarchies: Vec<String> = s
        .hierarchies
        .iter()
        .map(|h| h.display().to_string())
        .collect();
    tracing::debug!(
        CLASS = s.class.name(),
        "{} settings: mutable {} ({}), image policy {} ({}), conflicts {} ({}), hierarchies {}, \
         required {}, overlay options {}",
        s.class,
        s.mutable.as_str(),
        s.mutable_origin,
        s.image_policy.as_deref().unwrap_or("class default"),
        s.image_policy_origin,
        s.check_conflicts.as_str(),
        s.check_conflicts_origin,
        hierarchies.join(":"),
        list(&s.require),
        s.overlay_options.as_deref().unwrap_or("default"),
    );
}

/// Parse a `--noexec=`/`--always-refresh=` style boolean with a clear error.
pub fn parse_bool_arg(s: &str) -> Result<bool, String> {
    parse_boolean(s)
        .ok_or_else(|| format!("'{s}' is not a boolean (use yes/no, true/false, 1/0, on/off)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn cli(root: &Path) -> CliOptions {
        CliOptions {
            root: Some(root.to_path_buf()),
            ..Default::default()
        }
    }

    #[test]
    fn precedence_cli_over_env_over_config_over_default() {
        let t = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(t.path()).unwrap();
        let none = env_of(&[]);
        let s = resolve(&cli(&r), ImageClass::Sysext, &none).unwrap();
        assert_eq!(
            (s.mutable, s.mutable_origin),
            (MutableMode::No, Origin::Default)
        );

        write(
            &r,
            "etc/systemd/sysext.conf",
            "[SysExt]\nMutable=auto\nImagePolicy=root=signed\n",
        );
        let s = resolve(&cli(&r), ImageClass::Sysext, &none).unwrap();
        assert_eq!(s.mutable, MutableMode::Auto);
        assert!(matches!(s.mutable_origin, Origin::Config(_)));
        assert_eq!(s.image_policy.as_deref(), Some("root=signed"));

        let env = env_of(&[("SYSTEMD_SYSEXT_MUTABLE_MODE", "import")]);
        let s = resolve(&cli(&r), ImageClass::Sysext, &env).unwrap();
        assert_eq!(
            (s.mutable, s.mutable_origin.clone()),
            (
                MutableMode::Import,
                Origin::Env("SYSTEMD_SYSEXT_MUTABLE_MODE".into())
            )
        );

        // upstream scenario 24: env yes + CLI no -> no
        let env = env_of(&[("SYSTEMD_SYSEXT_MUTABLE_MODE", "yes")]);
        let mut c = cli(&r);
        c.mutable = Some(MutableMode::No);
        c.image_policy = Some("*".into());
        let s = resolve(&c, ImageClass::Sysext, &env).unwrap();
        assert_eq!(
            (s.mutable, s.mutable_origin),
            (MutableMode::No, Origin::Cli)
        );
        assert_eq!(
            (s.image_policy.as_deref(), s.image_policy_origin),
            (Some("*"), Origin::Cli)
        );
    }

    #[test]
    fn invalid_env_mutable_only_warns_and_falls_through_to_config() {
        let t = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(t.path()).unwrap();
        write(
            &r,
            "usr/lib/systemd/confext.conf",
            "[ConfExt]\nMutable=auto\n",
        );
        let env = env_of(&[("SYSTEMD_CONFEXT_MUTABLE_MODE", "bogus")]);
        let s = resolve(&cli(&r), ImageClass::Confext, &env).unwrap();
        assert_eq!(s.mutable, MutableMode::Auto);
    }

    #[test]
    fn env_of_other_class_is_ignored() {
        let t = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(t.path()).unwrap();
        let env = env_of(&[
            ("SYSTEMD_SYSEXT_MUTABLE_MODE", "yes"),
            ("SYSTEMD_SYSEXT_HIERARCHIES", "/usr"),
        ]);
        let s = resolve(&cli(&r), ImageClass::Confext, &env).unwrap();
        assert_eq!(s.mutable, MutableMode::No);
        assert_eq!(s.hierarchies, vec![PathBuf::from("/etc")]);
    }

    #[test]
    fn hierarchies_env_rules() {
        assert_eq!(
            parse_hierarchies("/usr:/opt/").unwrap(),
            vec![PathBuf::from("/usr"), PathBuf::from("/opt")]
        );
        assert!(parse_hierarchies("usr").is_err());
        assert!(parse_hierarchies("/").is_err());
        assert!(parse_hierarchies("").is_err());
        assert!(parse_hierarchies("/usr/../etc").is_err());
        assert!(parse_hierarchies("/usr//lib").is_err());
        let t = tempfile::tempdir().unwrap();
        let env = env_of(&[("SYSTEMD_SYSEXT_HIERARCHIES", "relative")]);
        let err = resolve(&cli(t.path()), ImageClass::Sysext, &env).unwrap_err();
        assert!(
            err.to_string().contains("SYSTEMD_SYSEXT_HIERARCHIES"),
            "{err}"
        );
    }

    #[test]
    fn overlay_options_env_and_root_implies_no_reload() {
        let t = tempfile::tempdir().unwrap();
        let env = env_of(&[(
            "SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS",
            "relatime,metacopy=on",
        )]);
        let s = resolve(&cli(t.path()), ImageClass::Confext, &env).unwrap();
        assert_eq!(s.overlay_options.as_deref(), Some("relatime,metacopy=on"));
        assert!(s.no_reload);
        assert!(s.root_given);
        let s = resolve(&cli(t.path()), ImageClass::Sysext, &env).unwrap();
        assert_eq!(s.overlay_options, None);
    }

    #[test]
    fn conflict_policy_cli_over_cmdline_over_config_over_default() {
        let t = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(t.path()).unwrap();
        let none = env_of(&[]);
        assert_eq!(
            resolve(&cli(&r), ImageClass::Sysext, &none)
                .unwrap()
                .check_conflicts,
            ConflictPolicy::Warn
        );
        write(
            &r,
            "etc/systemd/sysext.conf",
            "[SysExt]\nCheckConflicts=off\n",
        );
        let s = resolve(&cli(&r), ImageClass::Sysext, &none).unwrap();
        assert_eq!(s.check_conflicts, ConflictPolicy::Off);
        let mut c = cli(&r);
        c.kernel_cmdline =
            Some("quiet rd.extmerge.check_conflicts=refuse extmerge.check-conflicts=warn".into());
        assert_eq!(
            resolve(&c, ImageClass::Sysext, &none)
                .unwrap()
                .check_conflicts,
            ConflictPolicy::Warn
        );
        c.in_initrd = true;
        let s = resolve(&c, ImageClass::Sysext, &none).unwrap();
        assert_eq!(
            (s.check_conflicts, s.check_conflicts_origin),
            (
                ConflictPolicy::Refuse,
                Origin::Cmdline(CMDLINE_CHECK_CONFLICTS.into())
            )
        );
        c.check_conflicts = Some(ConflictPolicy::Off);
        assert_eq!(
            resolve(&c, ImageClass::Sysext, &none)
                .unwrap()
                .check_conflicts,
            ConflictPolicy::Off
        );
        c.check_conflicts = None;
        c.kernel_cmdline = Some("rd.extmerge.check_conflicts=sometimes".into());
        assert_eq!(
            resolve(&c, ImageClass::Sysext, &none)
                .unwrap()
                .check_conflicts,
            ConflictPolicy::Off,
            "bad value ignored"
        );
    }

    #[test]
    fn missing_root_is_a_clear_error() {
        let c = CliOptions {
            root: Some("/nonexistent/extmerge-root".into()),
            ..Default::default()
        };
        let err = resolve(&c, ImageClass::Sysext, &env_of(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/extmerge-root"));
    }

    /// A configuration file that cannot be read makes systemd 262 ignore the class's whole
    /// configuration with a warning and go on; the other class is not affected.
    #[test]
    fn an_oversized_config_file_leaves_the_class_unconfigured() {
        let t = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(t.path()).unwrap();
        write(
            &r,
            "usr/lib/systemd/confext.conf",
            "[ConfExt]\nMutable=auto\nImagePolicy=root=signed\n",
        );
        write(
            &r,
            "etc/systemd/confext.conf.d/10-big.conf",
            &format!("[ConfExt]\nCheckConflicts=off\n{}", "#".repeat(1 << 20)),
        );
        write(&r, "etc/systemd/sysext.conf", "[SysExt]\nMutable=auto\n");
        let s = resolve(&cli(&r), ImageClass::Confext, &env_of(&[])).unwrap();
        assert_eq!(
            (s.mutable, s.mutable_origin),
            (MutableMode::No, Origin::Default)
        );
        assert_eq!(
            (s.image_policy, s.image_policy_origin),
            (None, Origin::Default)
        );
        assert_eq!(
            (s.check_conflicts, s.check_conflicts_origin),
            (ConflictPolicy::Warn, Origin::Default)
        );
        let s = resolve(&cli(&r), ImageClass::Sysext, &env_of(&[])).unwrap();
        assert_eq!(s.mutable, MutableMode::Auto);
    }

    /// The program name picks systemd's personality: the last path component ending in
    /// `sysext` or `confext`; anything else (extmerge itself, no argv0) is none.
    #[test]
    fn class_from_argv0_reads_the_last_path_component() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let of = |s: &str| class_from_argv0(Some(OsStr::new(s)));
        assert_eq!(of("systemd-sysext"), Some(ImageClass::Sysext));
        assert_eq!(of("/usr/bin/systemd-confext"), Some(ImageClass::Confext));
        assert_eq!(of("./extmerge-sysext"), None);
        assert_eq!(of("/usr/lib/systemd-confext/extmerge"), None);
        assert_eq!(of("/usr/bin/extmerge"), None);
        assert_eq!(of("systemd-sysext.real"), Some(ImageClass::Sysext));
        assert_eq!(of("x-systemd-confext-y"), Some(ImageClass::Confext));
        assert_eq!(of(""), None);
        assert_eq!(class_from_argv0(None), None);
        assert_eq!(
            class_from_argv0(Some(OsStr::from_bytes(b"/bin/\xffsystemd-confext"))),
            Some(ImageClass::Confext)
        );
    }

    /// What was read is used as is; a command line that cannot be read counts as empty.
    #[test]
    fn an_unreadable_kernel_cmdline_counts_as_empty() {
        assert_eq!(
            switches::kernel_cmdline_or_empty(Ok("quiet systemd.sysext=0".into())),
            "quiet systemd.sysext=0"
        );
        assert_eq!(
            switches::kernel_cmdline_or_empty(Err(anyhow::anyhow!("opening /proc/cmdline"))),
            ""
        );
    }

    /// `Require=` is a list: assignments append across files and drop-ins, an empty one resets.
    #[test]
    fn require_is_a_list_with_reset() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().to_path_buf();
        write(
            &r,
            "usr/lib/systemd/confext.conf",
            "[ConfExt]\nRequire=00-flatcar-default\n",
        );
        let none = |_: &str| None;
        let s = resolve(&cli(&r), ImageClass::Confext, &none).unwrap();
        assert_eq!(s.require, ["00-flatcar-default"]);
        // The sysext class reads its own section only.
        let s = resolve(&cli(&r), ImageClass::Sysext, &none).unwrap();
        assert!(s.require.is_empty());
        write(
            &r,
            "etc/systemd/confext.conf.d/10-more.conf",
            "[ConfExt]\nRequire=site-conf  00-flatcar-default\nRequire=../x\n",
        );
        let s = resolve(&cli(&r), ImageClass::Confext, &none).unwrap();
        assert_eq!(s.require, ["00-flatcar-default", "site-conf"]);
        write(
            &r,
            "etc/systemd/confext.conf.d/20-reset.conf",
            "[ConfExt]\nRequire=\nRequire=only-this\n",
        );
        let s = resolve(&cli(&r), ImageClass::Confext, &none).unwrap();
        assert_eq!(s.require, ["only-this"]);
        let (_, warnings) = parse_config_text("[ConfExt]\nRequire=a/b\n", "ConfExt");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
