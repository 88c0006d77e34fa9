//! extmerge command line.

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use extmerge::class::ImageClass;
use extmerge::decide::conflicts::ConflictPolicy;
use extmerge::decide::mutable::MutableMode;
use extmerge::initrd::flatcar::MissingPolicy;
use extmerge::initrd::stage::Stage;
use extmerge::settings::switches;
use extmerge::settings::{self, ClassSettings, CliOptions};
use extmerge::verbs::{self, JsonMode, EXIT_FAILURE, EXIT_USAGE};
use std::path::PathBuf;

/// Which classes a command acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ClassArg {
    /// System extensions (/usr, /opt).
    Sysext,
    /// Configuration extensions (/etc).
    Confext,
    /// Both: confext first, then sysext.
    All,
}

const AFTER_HELP: &str = "\
Settings are taken from the command line, then the environment \
(SYSTEMD_SYSEXT_HIERARCHIES, SYSTEMD_CONFEXT_HIERARCHIES, SYSTEMD_SYSEXT_MUTABLE_MODE, \
SYSTEMD_CONFEXT_MUTABLE_MODE, SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS, \
SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS), then the configuration files \
{etc,run,usr/local/lib,usr/lib}/systemd/{sysext,confext}.conf and their .conf.d/ drop-ins \
read inside --root (sections [SysExt] and [ConfExt], keys Mutable= and ImagePolicy=, and extmerge's own \
CheckConflicts= and Require=), then the defaults.

In the initrd (docs/initrd.md): each unit runs `initrd-stage --stage=N --root=/sysroot`, one process \
for its steps (stage 2: oem-mount, mount-var and flatcar-select prepare /sysroot, then the confext \
and sysext refreshes); the kernel command line switches rd.extmerge=0, rd.systemd.sysext=0, rd.systemd.confext=0, systemd.sysext=0 and systemd.confext=0 \
apply when systemd runs extmerge.

Invoked as systemd-sysext or systemd-confext (e.g. through a symlink), the default class is that one; \
otherwise it is 'all'. EXTMERGE_LOG sets the log filter (e.g. EXTMERGE_LOG=debug).

Exit status: 0 on success or when there is nothing to do, 1 on failure, 2 on invalid usage, \
77 when refresh found nothing changed and touched nothing, 3 when flatcar-select failed under \
--missing=warn (a failure initrd-stage goes on past); initrd-stage exits 0 when its stage succeeded, \
else with the status of the step that failed it. Invoked as systemd-sysext or \
systemd-confext, every verb exits as systemd does (an unchanged refresh exits 0).";

#[derive(Parser, Debug)]
#[command(
    name = "extmerge",
    version,
    about = "Merge system and configuration extensions (sysext/confext) onto a root, the way systemd-sysext does",
    long_about = "extmerge discovers system extension images (sysext: /usr, /opt) and configuration extension \
images (confext: /etc), checks them against the root's os-release exactly as systemd-sysext and \
systemd-confext do, and merges them as overlayfs onto the root's hierarchies.",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Act on system extensions, configuration extensions, or both (confext first).
    #[arg(long, global = true, value_enum, value_name = "CLASS")]
    class: Option<ClassArg>,

    /// Operate on the tree below DIR instead of the running system; implies --no-reload.
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Output format for status and list.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "MODE",
        default_value = "off"
    )]
    json: JsonMode,

    /// Skip the compatibility checks of extension-release files.
    #[arg(long, global = true)]
    force: bool,

    /// Mutable mode: no, yes, auto, import, ephemeral, ephemeral-import, or 'help' to list them.
    #[arg(long, global = true, value_name = "MODE")]
    mutable: Option<String>,

    /// Image policy for raw images (systemd.image-policy(7) syntax).
    #[arg(long = "image-policy", global = true, value_name = "POLICY")]
    image_policy: Option<String>,

    /// Mount the merged hierarchies noexec (yes) or exec (no); default: noexec for confext only.
    #[arg(long, global = true, value_name = "BOOL", value_parser = settings::parse_bool_arg)]
    noexec: Option<bool>,

    /// Refresh even when nothing changed since the last merge.
    #[arg(long = "always-refresh", global = true, value_name = "BOOL", value_parser = settings::parse_bool_arg, default_value = "no", action = clap::ArgAction::Set)]
    always_refresh: bool,

    /// What to do about files provided by several extensions or hiding base files: refuse (drop the
    /// later extension), warn (default) or off. Also `CheckConflicts=` in the config file and
    /// `[rd.]extmerge.check_conflicts=` on the kernel command line.
    #[arg(
        long = "check-conflicts",
        global = true,
        value_enum,
        value_name = "POLICY"
    )]
    check_conflicts: Option<ConflictPolicy>,

    /// Do not ask the service manager (PID 1) for what the merged extensions' release files
    /// ask after merge, refresh or unmerge: a daemon-reload (EXTENSION_RELOAD_MANAGER=) and
    /// unit restarts (EXTENSION_RESTART_UNITS=, EXTENSION_RELOAD_OR_RESTART_UNITS=).
    #[arg(long = "no-reload", global = true)]
    no_reload: bool,

    /// Fail (exit 1) after merge/refresh unless these extensions are merged, e.g. Flatcar's
    /// 00-flatcar-default confext. Repeat the option or separate names with commas. Adds to
    /// `Require=` in the configuration files.
    #[arg(long, global = true, value_name = "NAME", value_delimiter = ',')]
    require: Vec<String>,

    /// Accepted for systemd-sysext compatibility; output is never paged.
    #[arg(long = "no-pager", global = true)]
    no_pager: bool,

    /// Do not print the table header.
    #[arg(long = "no-legend", global = true)]
    no_legend: bool,

    /// Log debug messages.
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    verb: Option<Verb>,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
enum Verb {
    /// Show which extensions are merged into which hierarchy (the default verb).
    Status,
    /// List the extension candidates in layer order with type, path and whether they are accepted. Mounts nothing.
    List,
    /// Merge the accepted extensions onto the hierarchies; refuses hierarchies that are already merged.
    Merge,
    /// Unmerge extensions from the hierarchies; only overlays made by extmerge or systemd-sysext are touched.
    Unmerge,
    /// Merge if changed since the last merge (skipped otherwise), or unmerge if nothing is left.
    Refresh,
    /// Check the extensions for conflicts and compatibility without merging.
    Check {
        /// Instead, judge every extension against this os-release (an update's
        /// /usr/lib/os-release): list those that would stop matching, and on Flatcar the images
        /// to stage for the new version; exit 1 if the update would lose any.
        #[arg(long = "os-release", value_name = "FILE")]
        os_release: Option<PathBuf>,
    },
    /// In the initrd: mount the /var that systemd.mount-extra=…:/var or rd.extmerge.var= names at
    /// ROOT/var, waiting for the device (rd.extmerge.var_timeout=, default 30 s). Needs --root.
    MountVar,
    /// Flatcar's extension selection in ROOT: enabled-sysext.conf and OEM sysext links in
    /// /etc/extensions (no downloads: each missing image is logged with where to place it;
    /// --json prints them as an array of {name, version, path, kind}).
    FlatcarSelect {
        /// Print the plan (with --json: the missing images) without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// What a missing image does: warn (log it, exit 0: the boot goes on) or fail (log it,
        /// exit 1: the boot fails, as on Flatcar). [rd.]extmerge.missing= on the kernel command
        /// line wins. Default: warn.
        #[arg(long, value_enum, value_name = "POLICY")]
        missing: Option<MissingPolicy>,
    },
    /// In the initrd: run the steps of an initrd unit in this one process, in order. Stage 1
    /// (extmerge-sysroot-early.service): confext refresh. Stage 2 (extmerge-sysroot.service):
    /// oem-mount (start sysroot-oem.mount), mount-var, flatcar-select, confext refresh, sysext
    /// refresh. A failing oem-mount, mount-var or sysext refresh is logged and the stage goes
    /// on; a failing flatcar-select (under
    /// --missing=fail) or confext refresh (also: a required confext not merged) fails the
    /// stage with its exit status, and the later steps do not run. Needs --root.
    InitrdStage {
        /// The stage: 1 or 2.
        #[arg(long, value_enum, value_name = "N")]
        stage: Stage,
        /// Stage 2's flatcar-select --missing= (warn or fail); [rd.]extmerge.missing= on the
        /// kernel command line wins. Default: warn.
        #[arg(long, value_enum, value_name = "POLICY")]
        missing: Option<MissingPolicy>,
    },
}

fn classes(arg: ClassArg) -> &'static [ImageClass] {
    match arg {
        ClassArg::Sysext => &[ImageClass::Sysext],
        ClassArg::Confext => &[ImageClass::Confext],
        ClassArg::All => &ImageClass::MERGE_ORDER,
    }
}

/// `--mutable=`: the mode, or the exit code when the run ends here (`help`, a bad value).
fn mutable_arg(arg: Option<&str>) -> Result<Result<Option<MutableMode>, i32>> {
    match arg {
        Some("help") => {
            let names: Vec<&str> = MutableMode::ALL.iter().map(|m| m.as_str()).collect();
            verbs::print_text(&format!("{}\n", names.join("\n")))?;
            Ok(Err(verbs::EXIT_SUCCESS))
        }
        Some(s) => Ok(s.parse::<MutableMode>().map(Some).map_err(|e| {
            use std::io::Write;
            // A closed stderr must not turn a usage error into a panic.
            let _ = writeln!(std::io::stderr(), "extmerge: --mutable: {e}");
            EXIT_USAGE
        })),
        None => Ok(Ok(None)),
    }
}

fn run(cli: Cli) -> Result<i32> {
    let mutable = match mutable_arg(cli.mutable.as_deref())? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let opts = CliOptions {
        root: cli.root.clone(),
        force: cli.force,
        mutable,
        image_policy: cli.image_policy.clone(),
        noexec: cli.noexec,
        always_refresh: cli.always_refresh,
        no_reload: cli.no_reload,
        check_conflicts: cli.check_conflicts,
        require: cli.require.clone(),
        kernel_cmdline: Some(switches::kernel_cmdline_or_empty(
            extmerge::initrd::read_kernel_cmdline(),
        )),
        in_initrd: extmerge::initrd::running_in_initrd(),
    };
    // Invoked as systemd-sysext/systemd-confext, extmerge is a drop-in: systemd's exit codes.
    let as_systemd =
        settings::class_from_argv0(std::env::args_os().next().as_deref()).map(|c| match c {
            ImageClass::Sysext => ClassArg::Sysext,
            ImageClass::Confext => ClassArg::Confext,
        });
    let class_arg = cli.class.or(as_systemd).unwrap_or(ClassArg::All);
    let env = |k: &str| std::env::var(k).ok();
    // Started as a Varlink service (a socket unit, `varlinkctl call exec:…`): serve, whatever
    // the verb, as systemd-sysext does.
    let invocation = extmerge::varlink::invocation()?;
    if !matches!(invocation, extmerge::varlink::Invocation::None) {
        return serve_varlink(opts, class_arg, invocation);
    }
    let verb = cli.verb.clone().unwrap_or(Verb::Status);
    // The initrd steps that are not about one class.
    match &verb {
        Verb::MountVar => {
            let root = settings::resolve_root(cli.root.as_deref())?;
            return verbs::mount_var::run(
                &root,
                cli.root.is_some(),
                opts.kernel_cmdline.as_deref().unwrap_or_default(),
                opts.in_initrd,
            );
        }
        Verb::FlatcarSelect { dry_run, missing } => {
            let root = settings::resolve_root(cli.root.as_deref())?;
            let select = verbs::flatcar_select::SelectOptions {
                dry_run: *dry_run,
                json: cli.json,
                missing: *missing,
            };
            return verbs::flatcar_select::run(
                &root,
                select,
                opts.kernel_cmdline.as_deref().unwrap_or_default(),
                opts.in_initrd,
            );
        }
        Verb::InitrdStage { stage, missing } => {
            if cli.class.is_some() {
                tracing::error!(
                    "initrd-stage runs the classes its stage plans; --class does not apply."
                );
                return Ok(EXIT_USAGE);
            }
            let stage = verbs::initrd_stage::StageOptions {
                stage: *stage,
                missing: *missing,
            };
            return verbs::initrd_stage::run(&opts, stage, &env);
        }
        _ => {}
    }
    let settings = settings::resolve_selected(
        &opts,
        classes(class_arg),
        &env,
        matches!(verb, Verb::Merge | Verb::Refresh),
    )?;
    if settings.is_empty() {
        return Ok(verbs::EXIT_SUCCESS);
    }

    run_class_verb(&verb, &settings, &cli, as_systemd.is_some())
}

/// The verbs that act on classes, on the classes left after the kill switches and masks.
fn run_class_verb(
    verb: &Verb,
    settings: &[ClassSettings],
    cli: &Cli,
    as_systemd: bool,
) -> Result<i32> {
    match verb {
        Verb::List => verbs::list::run(settings, cli.json, !cli.no_legend),
        Verb::Status => verbs::status::run(settings, cli.json, !cli.no_legend),
        Verb::Merge => extmerge::merge::run(settings),
        Verb::Unmerge => extmerge::merge::unmerge::run(settings),
        // As systemd-sysext/systemd-confext an unchanged refresh exits 0, as systemd's does;
        // as extmerge it says "skipped" (77), which the initrd units use.
        Verb::Refresh => extmerge::merge::run_refresh(
            settings,
            if as_systemd {
                verbs::EXIT_SUCCESS
            } else {
                verbs::EXIT_SKIPPED
            },
        ),
        Verb::Check {
            os_release: Some(file),
        } => verbs::update_check::run(settings, file, cli.json),
        Verb::Check { os_release: None } => verbs::check::run(settings, cli.json),
        Verb::MountVar | Verb::FlatcarSelect { .. } | Verb::InitrdStage { .. } => {
            unreachable!("handled before the classes")
        }
    }
}

/// The Varlink service: calls without `class` act on the class of the program name or
/// `--class` (sysext when both classes were selected, as systemd-sysext's default).
fn serve_varlink(
    opts: CliOptions,
    class_arg: ClassArg,
    invocation: extmerge::varlink::Invocation,
) -> Result<i32> {
    let default_class = match class_arg {
        ClassArg::Confext => ImageClass::Confext,
        _ => ImageClass::Sysext,
    };
    let env = |k: &str| std::env::var(k).ok();
    let s = settings::resolve(&opts, default_class, &env)?;
    let cmdline = opts.kernel_cmdline.clone().unwrap_or_default();
    if switches::select(vec![s], &cmdline, opts.in_initrd, false).is_empty() {
        return Ok(verbs::EXIT_SUCCESS);
    }
    let svc = extmerge::varlink::service::Service {
        opts,
        default_class,
        env: |k| std::env::var(k).ok(),
    };
    extmerge::varlink::serve(&svc, invocation)?;
    Ok(verbs::EXIT_SUCCESS)
}

fn main() {
    let cli = Cli::parse();
    extmerge::log::init(cli.verbose);
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            EXIT_FAILURE
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_after_the_verb_and_default_verb() {
        let c = Cli::try_parse_from([
            "extmerge",
            "list",
            "--root=/sysroot",
            "--json=short",
            "--class=confext",
        ])
        .unwrap();
        assert_eq!(c.verb, Some(Verb::List));
        assert_eq!(c.root, Some(PathBuf::from("/sysroot")));
        assert_eq!(c.json, JsonMode::Short);
        assert_eq!(c.class, Some(ClassArg::Confext));
        let c = Cli::try_parse_from(["extmerge"]).unwrap();
        assert_eq!(c.verb, None);
        assert!(!c.always_refresh);
    }

    #[test]
    fn boolean_options_accept_systemd_spellings() {
        let c = Cli::try_parse_from([
            "extmerge",
            "--noexec=off",
            "--always-refresh=yes",
            "refresh",
        ])
        .unwrap();
        assert_eq!(c.noexec, Some(false));
        assert!(c.always_refresh);
        assert!(Cli::try_parse_from(["extmerge", "--noexec=perhaps"]).is_err());
        assert!(Cli::try_parse_from(["extmerge", "--json=yaml"]).is_err());
    }
}
