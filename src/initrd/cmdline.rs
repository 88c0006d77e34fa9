//! Kernel command line parsing with systemd's rules: words split on whitespace, quotes removed,
//! `-` and `_` equivalent in keys, the last occurrence wins, and `rd.`-prefixed keys only count
//! (and take precedence) in the initrd.

/// One `key[=value]` word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// Key as written (without the value).
    pub key: String,
    /// Value after the first `=`, if any.
    pub value: Option<String>,
}

/// Split a command line into words the way systemd's `extract_first_word(…, EXTRACT_UNQUOTE|EXTRACT_RELAX)` does:
/// quotes group words and are removed; an unterminated quote runs to the end.
pub fn parse(text: &str) -> Vec<Param> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Param {
                key: k.to_string(),
                value: Some(v.to_string()),
            },
            None => Param {
                key: w,
                value: None,
            },
        })
        .collect()
}

fn key_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'-' || x == b'_') && (y == b'-' || y == b'_'))
}

/// The value of `key` (last occurrence wins); in the initrd `rd.<key>` is also looked at and
/// wins over `<key>`. `Some(None)` means the key is present without a value.
pub fn get<'a>(params: &'a [Param], key: &str, in_initrd: bool) -> Option<Option<&'a str>> {
    let find = |k: &str| {
        params
            .iter()
            .rev()
            .find(|p| key_eq(&p.key, k))
            .map(|p| p.value.as_deref())
    };
    if in_initrd {
        if let Some(v) = find(&format!("rd.{key}")) {
            return Some(v);
        }
    }
    find(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_and_values() {
        let p = parse("  root=/dev/vda  quiet  a=\"b c\" 'x y'=1 systemd.mount-extra=LABEL=var:/var:ext4:defaults");
        assert_eq!(
            p[0],
            Param {
                key: "root".into(),
                value: Some("/dev/vda".into())
            }
        );
        assert_eq!(
            p[1],
            Param {
                key: "quiet".into(),
                value: None
            }
        );
        assert_eq!(p[2].value.as_deref(), Some("b c"));
        assert_eq!(p[3].key, "x y");
        assert_eq!(p[4].value.as_deref(), Some("LABEL=var:/var:ext4:defaults"));
        assert!(parse("").is_empty());
        assert_eq!(
            parse("a=\"unterminated x")[0].value.as_deref(),
            Some("unterminated x")
        );
    }

    #[test]
    fn last_wins_dash_underscore_and_rd_prefix() {
        let p = parse("extmerge.check_conflicts=warn extmerge.check-conflicts=off rd.extmerge.check_conflicts=refuse flag");
        assert_eq!(
            get(&p, "extmerge.check_conflicts", false),
            Some(Some("off"))
        );
        assert_eq!(
            get(&p, "extmerge.check_conflicts", true),
            Some(Some("refuse"))
        );
        assert_eq!(get(&p, "flag", false), Some(None));
        assert_eq!(get(&p, "missing", true), None);
        let p = parse("rd.only=1");
        assert_eq!(
            get(&p, "only", false),
            None,
            "rd. keys are ignored outside the initrd"
        );
    }
}
