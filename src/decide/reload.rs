//! What the merged extensions ask of the service manager, as systemd 262's
//! `get_extension_release_metadata()` and `split_unit_string()` (sysext.c) decide it from their
//! extension-release data:
//!
//! * `EXTENSION_RELOAD_MANAGER=` (a boolean; empty means unset) asks for a daemon-reload;
//! * `EXTENSION_RESTART_UNITS=` and `EXTENSION_RELOAD_OR_RESTART_UNITS=` name units (split on
//!   whitespace like `strv_split(value, NULL)`, each checked like `unit_name_is_valid()` with
//!   plain and instance names) to restart, or to reload-or-restart, after the reload. A non-empty
//!   value implies the reload, even when none of its names is valid: the manager must see the
//!   unit files an extension brings or takes away before those units are touched;
//! * a unit in both lists is only restarted.
//!
//! systemd keeps the units in hash sets and so acts on them in an arbitrary order; here they are
//! sorted, so that the order is the same on every run.

use crate::decide::mutable::parse_boolean;
use crate::ondisk::envfile::ReleaseData;
use std::collections::BTreeSet;

/// The release field asking for a daemon-reload.
pub const RELOAD_MANAGER: &str = "EXTENSION_RELOAD_MANAGER";
/// The release field naming units to restart.
pub const RESTART_UNITS: &str = "EXTENSION_RESTART_UNITS";
/// The release field naming units to reload, or restart when they cannot reload.
pub const RELOAD_OR_RESTART_UNITS: &str = "EXTENSION_RELOAD_OR_RESTART_UNITS";

/// systemd's `UNIT_NAME_MAX`: a unit name is shorter than this.
const UNIT_NAME_MAX: usize = 256;

/// systemd's unit types (`unit_type_table`), the suffixes a unit name may end in.
const UNIT_TYPES: &[&str] = &[
    "service",
    "mount",
    "swap",
    "socket",
    "target",
    "device",
    "automount",
    "timer",
    "path",
    "slice",
    "scope",
];

/// What to ask of the service manager, in this order: the reload, then the restarts, then the
/// reload-or-restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagerActions {
    /// `org.freedesktop.systemd1.Manager.Reload` (daemon-reload).
    pub reload: bool,
    /// Units for `RestartUnit(name, "replace")`, sorted.
    pub restart: Vec<String>,
    /// Units for `ReloadOrRestartUnit(name, "replace")`, sorted, none of them in `restart`.
    pub reload_or_restart: Vec<String>,
}

impl ManagerActions {
    /// Nothing to ask.
    pub fn is_empty(&self) -> bool {
        !self.reload && self.restart.is_empty() && self.reload_or_restart.is_empty()
    }
}

/// The actions, and the warnings systemd logs while collecting them (each entry it ignores).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// What to ask of the service manager.
    pub actions: ManagerActions,
    /// Warnings, in the order systemd logs them.
    pub warnings: Vec<String>,
}

/// systemd's `unit_name_is_valid(name, UNIT_NAME_PLAIN|UNIT_NAME_INSTANCE)`: `foo.service` and
/// `foo@bar.service` are valid, a template (`foo@.service`) is not.
pub fn unit_name_is_valid(name: &str) -> bool {
    if name.is_empty() || name.len() >= UNIT_NAME_MAX {
        return false;
    }
    let Some(dot) = name.rfind('.') else {
        return false;
    };
    if dot == 0 || !UNIT_TYPES.contains(&&name[dot + 1..]) {
        return false;
    }
    let prefix = &name[..dot];
    let valid_char = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if !prefix.chars().all(valid_char) {
        return false;
    }
    match prefix.find('@') {
        None => true,
        // `@` first, or nothing between it and the suffix (a template): not a plain or an
        // instance name.
        Some(at) => at != 0 && at + 1 < prefix.len(),
    }
}

/// `strv_split(value, NULL)`: words separated by runs of space, tab, newline or carriage return;
/// quotes are ordinary characters and a backslash takes the next character literally (it is
/// dropped). A trailing lone backslash is an error, as in systemd's `extract_first_word()`.
fn split_words(value: &str) -> Result<Vec<String>, ()> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\\' => {
                let next = chars.next().ok_or(())?;
                word.get_or_insert_with(String::new).push(next);
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// One unit list of one extension into `into`; invalid names become warnings. Returns whether
/// the field was set (non-empty), which implies the reload.
fn add_units(
    name: &str,
    data: &ReleaseData,
    field: &str,
    into: &mut BTreeSet<String>,
    warnings: &mut Vec<String>,
) -> Result<bool, String> {
    let Some(value) = data.get(field).filter(|v| !v.is_empty()) else {
        return Ok(false);
    };
    let words = split_words(value).map_err(|()| {
        format!(
            "{field}= of {name} ends in a lone backslash, so it cannot be split into unit names"
        )
    })?;
    for unit in words {
        if unit_name_is_valid(&unit) {
            into.insert(unit);
        } else {
            warnings.push(format!(
                "Invalid unit name '{unit}' in {field}= of {name}, ignoring."
            ));
        }
    }
    Ok(true)
}

/// Collect the actions from the release data of each merged extension (`(name, data)`, in the
/// order systemd reads them). An error is what makes systemd's collection fail (and the verb
/// exit 1): a unit list it cannot split.
pub fn collect<'a, I>(extensions: I) -> Result<Collected, String>
where
    I: IntoIterator<Item = (&'a str, &'a ReleaseData)>,
{
    let mut out = Collected::default();
    let mut restart = BTreeSet::new();
    let mut reload_or_restart = BTreeSet::new();
    for (name, data) in extensions {
        if let Some(v) = data.get(RELOAD_MANAGER).filter(|v| !v.is_empty()) {
            match parse_boolean(v) {
                Some(b) => out.actions.reload |= b,
                // systemd's message carries strerror(EINVAL), what parse_boolean() returns.
                None => out.warnings.push(format!(
                    "Failed to parse {RELOAD_MANAGER}= of {name}, ignoring: Invalid argument"
                )),
            }
        }
        for (field, set) in [
            (RESTART_UNITS, &mut restart),
            (RELOAD_OR_RESTART_UNITS, &mut reload_or_restart),
        ] {
            if add_units(name, data, field, set, &mut out.warnings)? {
                out.actions.reload = true;
            }
        }
    }
    out.actions.reload_or_restart = reload_or_restart.difference(&restart).cloned().collect();
    out.actions.restart = restart.into_iter().collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> ReleaseData {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unit_names_as_systemd_checks_them() {
        let table: &[(&str, bool)] = &[
            ("foo.service", true),
            ("foo@bar.service", true),
            ("foo@bar@baz.socket", true),
            ("dev-disk-by\\x2dlabel-x.device", true),
            ("a:b_c-d.e.timer", true),
            ("-.mount", true),
            ("-.slice", true),
            ("foo@.service", false),
            ("@bar.service", false),
            ("foo", false),
            (".service", false),
            ("foo.unknown", false),
            ("foo.Service", false),
            ("foo bar.service", false),
            ("foo/bar.service", false),
            ("\"foo.service\"", false),
            ("fö.service", false),
            ("", false),
        ];
        for (name, valid) in table {
            assert_eq!(unit_name_is_valid(name), *valid, "{name}");
        }
        let long = format!(
            "{}.service",
            "a".repeat(UNIT_NAME_MAX - ".service".len() - 1)
        );
        assert_eq!(long.len(), UNIT_NAME_MAX - 1);
        assert!(unit_name_is_valid(&long));
        assert!(!unit_name_is_valid(&format!("a{long}")));
    }

    #[test]
    fn words_split_like_strv_split() {
        let table: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   ", &[]),
            ("a.service", &["a.service"]),
            (
                "  a.service\tb.service\n c.service\r",
                &["a.service", "b.service", "c.service"],
            ),
            // Quotes are ordinary characters.
            ("'a b'", &["'a", "b'"]),
            // A backslash takes the next character literally, a separator too.
            ("a\\ b.service c\\\\d", &["a b.service", "c\\d"]),
            ("x\\x2dy.service", &["xx2dy.service"]),
        ];
        for (value, want) in table {
            assert_eq!(split_words(value), Ok(strings(want)), "{value:?}");
        }
        assert_eq!(split_words("a.service \\"), Err(()));
    }

    #[test]
    fn collect_table() {
        struct Case {
            what: &'static str,
            extensions: Vec<(&'static str, ReleaseData)>,
            reload: bool,
            restart: &'static [&'static str],
            reload_or_restart: &'static [&'static str],
            warnings: &'static [&'static str],
        }
        let cases = vec![
            Case {
                what: "nothing asked",
                extensions: vec![("a", data(&[("ID", "_any")])), ("b", data(&[]))],
                reload: false,
                restart: &[],
                reload_or_restart: &[],
                warnings: &[],
            },
            Case {
                what: "reload manager, any boolean spelling",
                extensions: vec![
                    ("a", data(&[(RELOAD_MANAGER, "no")])),
                    ("b", data(&[(RELOAD_MANAGER, "YES")])),
                ],
                reload: true,
                restart: &[],
                reload_or_restart: &[],
                warnings: &[],
            },
            Case {
                what: "false and empty values ask nothing; an unparsable one is a warning",
                extensions: vec![
                    ("a", data(&[(RELOAD_MANAGER, "0")])),
                    ("b", data(&[(RELOAD_MANAGER, "")])),
                    ("c", data(&[(RELOAD_MANAGER, "maybe")])),
                    ("d", data(&[(RESTART_UNITS, "")])),
                ],
                reload: false,
                restart: &[],
                reload_or_restart: &[],
                warnings: &[
                    "Failed to parse EXTENSION_RELOAD_MANAGER= of c, ignoring: Invalid argument",
                ],
            },
            Case {
                what: "upstream's restart block",
                extensions: vec![(
                    "test-restart-extension",
                    data(&[
                        (RELOAD_MANAGER, "1"),
                        (
                            RESTART_UNITS,
                            "test-restart-host.service test-restart-ext.service",
                        ),
                    ]),
                )],
                reload: true,
                restart: &["test-restart-ext.service", "test-restart-host.service"],
                reload_or_restart: &[],
                warnings: &[],
            },
            Case {
                what: "listing units implies the reload; a unit in both lists is only restarted",
                extensions: vec![
                    (
                        "a",
                        data(&[
                            (RESTART_UNITS, "  z.service x.service bogus/name "),
                            (RELOAD_OR_RESTART_UNITS, "x.service y@1.service"),
                        ]),
                    ),
                    (
                        "b",
                        data(&[
                            (RELOAD_MANAGER, "off"),
                            (RELOAD_OR_RESTART_UNITS, "w.socket z.service tpl@.service"),
                        ]),
                    ),
                ],
                reload: true,
                restart: &["x.service", "z.service"],
                reload_or_restart: &["w.socket", "y@1.service"],
                warnings: &[
                    "Invalid unit name 'bogus/name' in EXTENSION_RESTART_UNITS= of a, ignoring.",
                    "Invalid unit name 'tpl@.service' in EXTENSION_RELOAD_OR_RESTART_UNITS= of b, ignoring.",
                ],
            },
            Case {
                what: "a set value with no valid name still asks for the reload",
                extensions: vec![("a", data(&[(RELOAD_OR_RESTART_UNITS, "foo")]))],
                reload: true,
                restart: &[],
                reload_or_restart: &[],
                warnings: &[
                    "Invalid unit name 'foo' in EXTENSION_RELOAD_OR_RESTART_UNITS= of a, ignoring.",
                ],
            },
            Case {
                what: "a whitespace-only value is set: it asks for the reload",
                extensions: vec![("a", data(&[(RESTART_UNITS, " ")]))],
                reload: true,
                restart: &[],
                reload_or_restart: &[],
                warnings: &[],
            },
            Case {
                what: "the same unit from two extensions is asked once",
                extensions: vec![
                    ("a", data(&[(RESTART_UNITS, "s.service")])),
                    ("b", data(&[(RESTART_UNITS, "s.service s.service")])),
                ],
                reload: true,
                restart: &["s.service"],
                reload_or_restart: &[],
                warnings: &[],
            },
        ];
        for c in cases {
            let got = collect(c.extensions.iter().map(|(n, d)| (*n, d)))
                .unwrap_or_else(|e| panic!("{}: {e}", c.what));
            let want = Collected {
                actions: ManagerActions {
                    reload: c.reload,
                    restart: strings(c.restart),
                    reload_or_restart: strings(c.reload_or_restart),
                },
                warnings: strings(c.warnings),
            };
            assert_eq!(got, want, "{}", c.what);
        }
    }

    #[test]
    fn an_unsplittable_list_fails_the_collection() {
        let d = data(&[(RELOAD_OR_RESTART_UNITS, "a.service b\\")]);
        assert_eq!(
            collect([("ext", &d)]),
            Err(
                "EXTENSION_RELOAD_OR_RESTART_UNITS= of ext ends in a lone backslash, so it \
                 cannot be split into unit names"
                    .to_string()
            )
        );
    }

    #[test]
    fn empty_actions() {
        assert!(ManagerActions::default().is_empty());
        let reload = ManagerActions {
            reload: true,
            ..Default::default()
        };
        assert!(!reload.is_empty());
    }
}
