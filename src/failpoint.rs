//! Failpoints: named steps of `merge`, `refresh` and `unmerge` at which a fault-injection test
//! can make the run fail, panic or die by SIGKILL, to prove that every hierarchy is left exactly
//! in its old or its new state and that a re-run converges (tests/fault_injection.rs).
//!
//! Only builds with debug assertions act on them — what `cargo test`/`cargo nextest run` build,
//! including the binary the integration tests run. The binary that ships is a release build
//! (`make static`), where [`hit_with`] is an empty inline function that always passes: it reads
//! no environment and cannot fail, kill or panic. A cargo feature was not used because the tests run
//! the binary cargo builds for them with the package's default features, so a feature would
//! either be on by default (and in the shipped binary) or need a second build just for tests.
//!
//! `EXTMERGE_FAILPOINT=STEP[:DETAIL][@N][=ACTION]` fires at the Nth hit (default 1) of STEP whose
//! detail (an image name or a hierarchy path) is DETAIL, or of any detail when it is omitted.
//! ACTION is `error` (default: the step returns an error that fails the class, except where the
//! code deliberately downgrades a failure to a warning: saving the hash cache and the run-state
//! copy), `kill` (SIGKILL to the whole process, no cleanup at all) or `panic`.
//! `EXTMERGE_FAILPOINT_TRACE=FILE` appends one `STEP:DETAIL` line per hit, so a test can list the
//! steps a run reaches and inject a fault at each of them.

use anyhow::Result;
use std::fmt::Display;

/// Every failpoint, in the order a refresh reaches them; tests iterate over this list.
pub const STEPS: &[&str] = &[
    // Caller's namespace, before anything is mounted.
    "image-identified",
    "snapshot-taken",
    // Private namespace: peel the current merge there, open images, build one tree per hierarchy.
    "private-peeled",
    "image-opened",
    "overlay-built",
    "before-write-state",
    "after-write-state",
    "tree-assembled",
    // Caller's namespace again: place the trees, then remove the old tops.
    "assembled",
    "before-attach",
    "after-attach",
    "before-attach-beneath",
    "after-attach-beneath",
    "before-unmount-old",
    "after-unmount-old",
    "before-unmerge",
    "after-unmerge",
    "before-write-run-state",
    "after-write-run-state",
];

/// Environment variable naming the failpoint to trigger.
pub const ENV: &str = "EXTMERGE_FAILPOINT";
/// Environment variable naming a file to which every hit is appended.
pub const TRACE_ENV: &str = "EXTMERGE_FAILPOINT_TRACE";

/// What a triggered failpoint does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Return an error from the step.
    Error,
    /// SIGKILL the process.
    Kill,
    /// Panic.
    Panic,
}

/// A parsed `EXTMERGE_FAILPOINT` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Step name, one of [`STEPS`].
    pub step: String,
    /// Only hits with this detail count; `None` counts every hit of the step.
    pub detail: Option<String>,
    /// Which counted hit fires (1-based).
    pub nth: usize,
    /// What happens then.
    pub action: Action,
}

/// Parse `STEP[:DETAIL][@N][=ACTION]`; the step must be one of [`STEPS`].
pub fn parse(text: &str) -> Result<Spec> {
    let (rest, action) = match text.rsplit_once('=') {
        Some((r, "error")) => (r, Action::Error),
        Some((r, "kill")) => (r, Action::Kill),
        Some((r, "panic")) => (r, Action::Panic),
        // An '=' after the ':' may belong to the detail; before it, it can only start an action.
        Some((r, a)) if !r.contains(':') => {
            anyhow::bail!("{ENV}: unknown action '{a}' (error, kill or panic)")
        }
        _ => (text, Action::Error),
    };
    let (rest, nth) = match rest.rsplit_once('@') {
        Some((r, n)) => match n.parse::<usize>() {
            Ok(n) if n >= 1 => (r, n),
            _ => anyhow::bail!("{ENV}: '@{n}' is not a hit count (1, 2, …)"),
        },
        None => (rest, 1),
    };
    let (step, detail) = match rest.split_once(':') {
        Some((s, d)) => (s, Some(d.to_string())),
        None => (rest, None),
    };
    if !STEPS.contains(&step) {
        anyhow::bail!("{ENV}: unknown step '{step}' (one of {})", STEPS.join(", "));
    }
    Ok(Spec {
        step: step.to_string(),
        detail,
        nth,
        action,
    })
}

/// A step without a detail; see [`hit_with`].
#[inline(always)]
pub fn hit(step: &str) -> Result<()> {
    hit_with(step, "")
}

/// Pass failpoint `step` (with `detail`: an image name or a hierarchy); an `Err` must be handled
/// the way a real failure at that point would be.
#[cfg(debug_assertions)]
pub fn hit_with(step: &str, detail: impl Display) -> Result<()> {
    active::hit(step, &detail.to_string())
}

/// Release builds carry no failpoints.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit_with(_step: &str, _detail: impl Display) -> Result<()> {
    Ok(())
}

#[cfg(debug_assertions)]
mod active {
    use super::{parse, Action, Spec, ENV, STEPS, TRACE_ENV};
    use anyhow::{anyhow, Result};
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    fn spec() -> Option<&'static Spec> {
        static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
        SPEC.get_or_init(|| {
            let text = std::env::var(ENV).ok().filter(|t| !t.is_empty())?;
            match parse(&text) {
                Ok(s) => Some(s),
                // A typo must not turn a fault-injection run into a silently clean one.
                Err(e) => panic!("{e:#}"),
            }
        })
        .as_ref()
    }

    fn trace(step: &str, detail: &str) {
        let Some(path) = std::env::var_os(TRACE_ENV) else {
            return;
        };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{step}:{detail}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!("Could not append to {TRACE_ENV} file: {e}");
        }
    }

    pub(super) fn hit(step: &str, detail: &str) -> Result<()> {
        debug_assert!(
            STEPS.contains(&step),
            "failpoint '{step}' missing from STEPS"
        );
        trace(step, detail);
        let Some(s) = spec() else { return Ok(()) };
        if s.step != step || s.detail.as_deref().is_some_and(|d| d != detail) {
            return Ok(());
        }
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        if COUNT.fetch_add(1, Ordering::SeqCst) + 1 != s.nth {
            return Ok(());
        }
        tracing::warn!("Failpoint {step}:{detail} triggered ({:?}).", s.action);
        match s.action {
            Action::Error => Err(anyhow!("failpoint {step}:{detail} injected by {ENV}")),
            Action::Panic => panic!("failpoint {step}:{detail} injected by {ENV}"),
            Action::Kill => {
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::KILL,
                );
                // SIGKILL cannot be caught; should delivery somehow fail, still die without cleanup.
                std::process::abort()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let s = parse("image-opened").unwrap();
        assert_eq!(
            s,
            Spec {
                step: "image-opened".into(),
                detail: None,
                nth: 1,
                action: Action::Error
            }
        );
        let s = parse("before-attach:/usr@2=kill").unwrap();
        assert_eq!(s.detail.as_deref(), Some("/usr"));
        assert_eq!((s.nth, s.action), (2, Action::Kill));
        let s = parse("image-opened:a=b=panic").unwrap();
        assert_eq!(s.detail.as_deref(), Some("a=b"));
        assert_eq!(s.action, Action::Panic);
        assert_eq!(
            parse("image-opened:x=y").unwrap().detail.as_deref(),
            Some("x=y")
        );
        assert!(parse("no-such-step").is_err());
        assert!(parse("image-opened=explode").is_err());
        assert!(parse("image-opened@0").is_err());
        assert!(parse("image-opened@x").is_err());
    }

    #[test]
    fn steps_are_unique_and_well_formed() {
        for (i, s) in STEPS.iter().enumerate() {
            assert!(!STEPS[..i].contains(s), "duplicate step {s}");
            assert!(
                !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "step name {s} must be lowercase words joined by '-'"
            );
        }
    }

    #[test]
    fn an_untriggered_hit_passes() {
        // No EXTMERGE_FAILPOINT in the unit-test environment: every step passes.
        if std::env::var_os(ENV).is_none() {
            for s in STEPS {
                hit_with(s, "x").unwrap();
            }
        }
    }
}
