//! Method parameters as systemd's `sd_varlink_dispatch()` takes them: every key must be one the
//! method knows and of its type; `null` is refused like a wrong type; the first offending key,
//! in the order the caller sent them, is named in `org.varlink.service.InvalidParameter`.

use crate::class::ImageClass;
use serde_json::{Map, Value};

/// The JSON type a parameter must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `bool`
    Bool,
    /// `string`
    Str,
    /// `ImageClass` (`sysext` or `confext`)
    Class,
    /// `[]Resource` of `io.systemd.SysUpdate.Notify` (`transfer: string`, `path: ?string`)
    Resources,
}

/// A parameter that is missing or wrong: its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

fn resources_ok(v: &Value) -> bool {
    let Value::Array(items) = v else {
        return false;
    };
    items.iter().all(|item| {
        let Value::Object(o) = item else {
            return false;
        };
        matches!(o.get("transfer"), Some(Value::String(_)))
            && o.iter().all(|(k, v)| match k.as_str() {
                "transfer" => v.is_string(),
                "path" => v.is_string(),
                _ => false,
            })
    })
}

fn fits(kind: Kind, v: &Value) -> bool {
    match kind {
        Kind::Bool => v.is_boolean(),
        Kind::Str => v.is_string(),
        Kind::Class => v.as_str().is_some_and(|s| s == "sysext" || s == "confext"),
        Kind::Resources => resources_ok(v),
    }
}

/// Check `params` against the method's `fields` (name, kind); `required` lists fields that
/// must be present.
pub fn check(
    params: &Map<String, Value>,
    fields: &[(&str, Kind)],
    required: &[&str],
) -> Result<(), Invalid> {
    for (k, v) in params {
        match fields.iter().find(|(n, _)| n == k) {
            Some((_, kind)) if fits(*kind, v) => {}
            _ => return Err(Invalid(k.clone())),
        }
    }
    if let Some(missing) = required.iter().find(|r| !params.contains_key(**r)) {
        return Err(Invalid(missing.to_string()));
    }
    Ok(())
}

/// A checked boolean parameter, if given.
pub fn bool_of(params: &Map<String, Value>, key: &str) -> Option<bool> {
    params.get(key).and_then(Value::as_bool)
}

/// A checked string parameter, if given.
pub fn str_of<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    params.get(key).and_then(Value::as_str)
}

/// The checked `class` parameter, else `default`.
pub fn class_of(params: &Map<String, Value>, default: ImageClass) -> ImageClass {
    match str_of(params, "class") {
        Some("confext") => ImageClass::Confext,
        Some("sysext") => ImageClass::Sysext,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const MERGE: &[(&str, Kind)] = &[
        ("class", Kind::Class),
        ("force", Kind::Bool),
        ("noReload", Kind::Bool),
    ];

    #[test]
    fn known_keys_of_the_right_type_pass() {
        let p = obj(json!({"class": "confext", "force": true}));
        assert_eq!(check(&p, MERGE, &[]), Ok(()));
        assert_eq!(class_of(&p, ImageClass::Sysext), ImageClass::Confext);
        assert_eq!(bool_of(&p, "force"), Some(true));
        assert_eq!(bool_of(&p, "noReload"), None);
    }

    #[test]
    fn the_first_bad_key_is_named() {
        for (p, bad) in [
            (json!({"class": "bogus"}), "class"),
            (json!({"class": null}), "class"),
            (json!({"force": null}), "force"),
            (json!({"force": "yes"}), "force"),
            (json!({"foo": 5, "class": 1}), "foo"),
            (json!({"noReload": true, "class": 5}), "class"),
        ] {
            assert_eq!(
                check(&obj(p.clone()), MERGE, &[]),
                Err(Invalid(bad.into())),
                "{p}"
            );
        }
        assert_eq!(
            check(&Map::new(), &[("interface", Kind::Str)], &["interface"]),
            Err(Invalid("interface".into()))
        );
    }

    #[test]
    fn resources_are_checked_field_by_field() {
        let f = &[("resources", Kind::Resources)];
        let ok = obj(json!({"resources": [{"transfer": "a", "path": "/x"}, {"transfer": "b"}]}));
        assert_eq!(check(&ok, f, &[]), Ok(()));
        for bad in [
            json!({"resources": [{"path": "/x"}]}),
            json!({"resources": [{"transfer": 1}]}),
            json!({"resources": [{"transfer": "a", "x": 1}]}),
            json!({"resources": {}}),
        ] {
            assert_eq!(check(&obj(bad), f, &[]), Err(Invalid("resources".into())));
        }
    }
}
