//! The interfaces extmerge serves, described exactly as systemd 262's `systemd-sysext` describes
//! them (`org.varlink.service.GetInterfaceDescription`; the texts in `idl/` were taken from it and
//! are compared with it by `tests/varlink.rs`), so `varlinkctl introspect` shows the same.

use serde_json::{Map, Value};

/// The interfaces, sorted by name as sd-varlink lists them, with their descriptions.
pub const INTERFACES: &[(&str, &str)] = &[
    ("io.systemd", include_str!("idl/io.systemd.varlink")),
    (
        "io.systemd.SysUpdate.Notify",
        include_str!("idl/io.systemd.SysUpdate.Notify.varlink"),
    ),
    (
        "io.systemd.sysext",
        include_str!("idl/io.systemd.sysext.varlink"),
    ),
    (
        "org.varlink.service",
        include_str!("idl/org.varlink.service.varlink"),
    ),
];

/// The description of interface `name`, if it is served.
pub fn description(name: &str) -> Option<&'static str> {
    INTERFACES.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

/// `org.varlink.service.GetInfo`'s reply.
pub fn info() -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("vendor".into(), "extmerge".into());
    o.insert("product".into(), "extmerge".into());
    o.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    // No project web page to name: an empty URL, which varlinkctl shows as such.
    o.insert("url".into(), "".into());
    o.insert(
        "interfaces".into(),
        Value::Array(INTERFACES.iter().map(|(n, _)| Value::from(*n)).collect()),
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_description_names_its_interface() {
        for (name, text) in INTERFACES {
            // org.varlink.service's starts with a comment line.
            assert!(
                text.lines().any(|l| l == format!("interface {name}")),
                "{name}: {}",
                &text[..40.min(text.len())]
            );
        }
        let mut names: Vec<&str> = INTERFACES.iter().map(|(n, _)| *n).collect();
        names.sort();
        assert_eq!(
            names,
            INTERFACES.iter().map(|(n, _)| *n).collect::<Vec<_>>()
        );
        assert!(description("io.systemd.sysext")
            .unwrap()
            .contains("method List("));
        assert_eq!(description("nope"), None);
    }
}
