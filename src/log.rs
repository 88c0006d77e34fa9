//! Logging: the native journal protocol (structured fields) when started by systemd with the journal
//! available, plain stderr otherwise. `EXTMERGE_LOG` takes a tracing filter (e.g. `debug`).

use std::path::Path;
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Path of journald's native socket.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Install the global subscriber. `verbose` raises the default level to debug.
pub fn init(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter =
        || EnvFilter::try_from_env("EXTMERGE_LOG").unwrap_or_else(|_| EnvFilter::new(default));

    // systemd sets JOURNAL_STREAM when stderr is connected to the journal: then the native protocol
    // carries the same lines plus structured fields, and stderr would only duplicate them.
    let under_journal =
        std::env::var_os("JOURNAL_STREAM").is_some() && Path::new(JOURNAL_SOCKET).exists();
    let journald = if under_journal {
        tracing_journald::layer().ok().map(|l| {
            // Debug lines at LOG_DEBUG (the crate's default puts them at LOG_INFO), so that
            // `journalctl -p info` and journald's MaxLevelStore= leave them out.
            let priorities = tracing_journald::PriorityMappings {
                debug: tracing_journald::Priority::Debug,
                ..tracing_journald::PriorityMappings::new()
            };
            let l = l
                .with_syslog_identifier("extmerge".to_string())
                .with_field_prefix(None)
                .with_priority_mappings(priorities);
            // journald attributes a native message to its unit by reading the sender's cgroup,
            // which fails once a short-lived process has exited (then `journalctl -u` misses
            // the line). OBJECT_SYSTEMD_UNIT from a root process is what `journalctl -u`
            // also matches, so name our unit ourselves while we still know it.
            match own_unit() {
                Some(unit) => l.with_custom_fields([("OBJECT_SYSTEMD_UNIT", unit)]),
                None => l,
            }
        })
    } else {
        None
    };
    let stderr = if journald.is_none() {
        Some(
            fmt::layer()
                .with_writer(std::io::stderr)
                .without_time()
                .with_target(false)
                .with_ansi(false)
                // Structured fields are for the journal; on a terminal the message says it all.
                .fmt_fields(fmt::format::debug_fn(|w, field, value| {
                    if field.name() == "message" {
                        write!(w, "{value:?}")
                    } else {
                        Ok(())
                    }
                }))
                .with_filter(filter()),
        )
    } else {
        None
    };
    let _ = tracing_subscriber::registry()
        .with(journald.map(|j| j.with_filter(filter())))
        .with(stderr)
        .try_init();
}

/// The tracing target of the per-phase timing lines ([`phase`]): `EXTMERGE_LOG=debug` shows
/// them with everything else, `EXTMERGE_LOG=info,extmerge_phase=debug` profiles a run (a boot)
/// without the rest of the debug output.
pub const PHASE_TARGET: &str = "extmerge_phase";

/// Log at debug level how long one phase of a class's run took, since `started`: one line with
/// the journal fields `CLASS`, `PHASE` and `DURATION_US`, so that a boot can be profiled from
/// the journal. Costs one clock read when debug is off.
pub fn phase(class: &str, phase: &'static str, started: Instant) {
    phase_took(class, phase, started.elapsed());
}

/// [`phase`] with the duration given.
pub fn phase_took(class: &str, phase: &'static str, took: Duration) {
    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    tracing::debug!(
        target: PHASE_TARGET,
        CLASS = class,
        PHASE = phase,
        DURATION_US = us,
        "Phase {phase} of {class}: {us} us."
    );
}

/// Run `f` as the phase `name` of `class` ([`phase`]).
pub fn timed<T>(class: &str, name: &'static str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let r = f();
    phase(class, name, started);
    r
}

/// The systemd service this process runs in, from the last component of its cgroup path.
fn own_unit() -> Option<String> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    unit_of_cgroup(&cgroup)
}

/// `0::/system.slice/extmerge-sysroot.service` → `extmerge-sysroot.service` (cgroup v2 line).
fn unit_of_cgroup(text: &str) -> Option<String> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let last = path.trim_end().rsplit('/').next()?;
    last.ends_with(".service").then(|| last.to_string())
}

#[cfg(test)]
mod tests {
    use super::unit_of_cgroup;

    #[test]
    fn the_unit_is_the_last_cgroup_component_of_a_service() {
        assert_eq!(
            unit_of_cgroup("0::/system.slice/extmerge-sysroot.service\n").as_deref(),
            Some("extmerge-sysroot.service")
        );
        assert_eq!(
            unit_of_cgroup("0::/user.slice/user-0.slice/session-1.scope\n"),
            None
        );
        assert_eq!(unit_of_cgroup("12:cpu:/foo\n"), None);
    }
}

/// Text for a table cell, a log line or a JSON string from arbitrary bytes (names and paths
/// someone else chose): valid printable UTF-8 stays as it is; a backslash becomes `\\`, control
/// characters `\n`, `\t`, … or `\xNN`, and bytes that are not UTF-8 `\xNN`. Nothing can split a
/// line or a row, and C-unescaping the result gives the bytes back exactly.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, &[][..]),
            Err(e) => {
                let (v, b) = rest.split_at(e.valid_up_to());
                (std::str::from_utf8(v).unwrap_or_default(), b)
            }
        };
        for c in valid.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        match bad.first() {
            Some(b) => {
                out.push_str(&format!("\\x{b:02x}"));
                rest = &bad[1..];
            }
            None => rest = bad,
        }
    }
    out
}

/// [`escape`] of a path, for messages.
pub fn path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    escape(p.as_os_str().as_bytes())
}

/// Serialize a path as the [`escape`]d string (lossless, and always valid JSON).
pub fn serialize_path<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path(p))
}

/// [`serialize_path`] for an optional path.
pub fn serialize_opt_path<S: serde::Serializer>(
    p: &Option<std::path::PathBuf>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => serialize_path(p, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod escape_tests {
    use super::*;

    #[test]
    fn escape_keeps_printable_utf8_and_is_lossless() {
        assert_eq!(escape("plain é/ü".as_bytes()), "plain é/ü");
        assert_eq!(escape(b"a\nb\tc\\d\x1b\xff"), "a\\nb\\tc\\\\d\\x1b\\xff");
        let weird: &[u8] = b"x\xc3\x28\n\\";
        let shown = escape(weird);
        assert!(!shown.contains('\n'));
        assert_eq!(crate::ondisk::cescape::cunescape(&shown).unwrap(), weird);
    }
}
