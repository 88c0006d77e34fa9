//! The Varlink wire format as systemd's sd-varlink speaks it: each message is one JSON object
//! followed by a NUL byte. A call is `{"method": …, "parameters": {…}, "more": …, "oneway": …,
//! "upgrade": …}`; a reply is `{"parameters": {…}, "continues": true}` or
//! `{"error": "…", "parameters": {…}}`, `parameters` left out when there are none.
//!
//! Pure: bytes in, values out (fuzzed: `fuzz/fuzz_targets/varlink_wire.rs`). What sd-varlink
//! treats as a protocol violation (not JSON, not an object, no method, an unknown key, a
//! `parameters` that is not an object, `more` together with `oneway`) is an error here, and the
//! connection is then dropped without a reply, as systemd does.

use serde_json::{Map, Value};

/// sd-varlink's `VARLINK_BUFFER_MAX`: a message that does not fit ends the connection.
pub const MESSAGE_MAX: usize = 16 * 1024 * 1024;

/// One method call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Fully qualified method name, e.g. `io.systemd.sysext.List`.
    pub method: String,
    /// The parameters object (empty when the call has none).
    pub parameters: Map<String, Value>,
    /// The caller accepts several replies.
    pub more: bool,
    /// The caller wants no reply.
    pub oneway: bool,
    /// The caller asks for a protocol upgrade.
    pub upgrade: bool,
}

/// Why a message is not a valid call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn flag(obj: &Map<String, Value>, key: &str) -> Result<bool, ProtocolError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ProtocolError(format!("'{key}' is not a boolean"))),
    }
}

/// Parse one message (without its terminating NUL) as a call.
pub fn parse_call(bytes: &[u8]) -> Result<Call, ProtocolError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ProtocolError(format!("not a JSON message: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(ProtocolError("the message is not a JSON object".into()));
    };
    if let Some(k) = obj.keys().find(|k| {
        !matches!(
            k.as_str(),
            "method" | "parameters" | "more" | "oneway" | "upgrade"
        )
    }) {
        return Err(ProtocolError(format!("unknown field '{k}' in a call")));
    }
    let method = match obj.get("method") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(ProtocolError("the call has no method name".into())),
    };
    let parameters = match obj.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(ProtocolError("'parameters' is not an object".into())),
    };
    let call = Call {
        method,
        parameters,
        more: flag(&obj, "more")?,
        oneway: flag(&obj, "oneway")?,
        upgrade: flag(&obj, "upgrade")?,
    };
    if call.more && call.oneway {
        return Err(ProtocolError("'more' and 'oneway' together".into()));
    }
    Ok(call)
}

/// A reply to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A successful reply; `continues` when more replies follow.
    Ok {
        /// The reply's parameters (left out of the message when `None`).
        parameters: Option<Map<String, Value>>,
        /// More replies follow (only to a call with `more`).
        continues: bool,
    },
    /// An error reply.
    Error {
        /// Fully qualified error name.
        name: String,
        /// The error's parameters (left out of the message when `None`).
        parameters: Option<Map<String, Value>>,
    },
}

impl Reply {
    /// A final reply with `parameters`.
    pub fn params(parameters: Map<String, Value>) -> Reply {
        Reply::Ok {
            parameters: Some(parameters),
            continues: false,
        }
    }

    /// A final reply without parameters (`{}` on the wire).
    pub fn empty() -> Reply {
        Reply::Ok {
            parameters: None,
            continues: false,
        }
    }

    /// An error without parameters.
    pub fn error(name: &str) -> Reply {
        Reply::Error {
            name: name.to_string(),
            parameters: None,
        }
    }

    /// An error with one string parameter, e.g. `InvalidParameter{parameter}`.
    pub fn error_with(name: &str, key: &str, value: &str) -> Reply {
        let mut p = Map::new();
        p.insert(key.to_string(), Value::String(value.to_string()));
        Reply::Error {
            name: name.to_string(),
            parameters: Some(p),
        }
    }

    /// The message bytes, NUL included; keys in sd-varlink's order.
    pub fn encode(&self) -> Vec<u8> {
        let mut obj = Map::new();
        match self {
            Reply::Ok {
                parameters,
                continues,
            } => {
                if let Some(p) = parameters {
                    obj.insert("parameters".into(), Value::Object(p.clone()));
                }
                if *continues {
                    obj.insert("continues".into(), Value::Bool(true));
                }
            }
            Reply::Error { name, parameters } => {
                obj.insert("error".into(), Value::String(name.clone()));
                if let Some(p) = parameters {
                    obj.insert("parameters".into(), Value::Object(p.clone()));
                }
            }
        }
        let mut out = serde_json::to_vec(&Value::Object(obj)).unwrap_or_default();
        out.push(0);
        out
    }
}

/// Splits a byte stream into NUL-terminated messages.
#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// Add bytes read from the connection; an error when a message grows past [`MESSAGE_MAX`].
    pub fn push(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        self.buf.extend_from_slice(data);
        if self.buf.len() > MESSAGE_MAX && !self.buf.contains(&0) {
            return Err(ProtocolError(format!(
                "a message longer than {MESSAGE_MAX} bytes"
            )));
        }
        Ok(())
    }

    /// The next complete message (without its NUL), if one has arrived.
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        let end = self.buf.iter().position(|b| *b == 0)?;
        let msg = self.buf[..end].to_vec();
        self.buf.drain(..=end);
        Some(msg)
    }

    /// Bytes received that do not yet form a message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_parse_as_sd_varlink_accepts_them() {
        let c = parse_call(br#"{"method":"io.systemd.sysext.List","more":true}"#).unwrap();
        assert_eq!(c.method, "io.systemd.sysext.List");
        assert!(c.more && !c.oneway && !c.upgrade);
        assert!(c.parameters.is_empty());
        let c = parse_call(br#"{"method":"a.b.C","parameters":{"class":"confext"},"oneway":true}"#)
            .unwrap();
        assert_eq!(c.parameters.get("class"), Some(&json!("confext")));
        assert!(c.oneway);
    }

    #[test]
    fn protocol_violations_are_errors() {
        for bad in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"parameters":{}}"#,
            br#"{"method":""}"#,
            br#"{"method":"a.B","parameters":[]}"#,
            br#"{"method":"a.B","bogus":1}"#,
            br#"{"method":"a.B","more":true,"oneway":true}"#,
            br#"{"method":"a.B","more":"yes"}"#,
        ] {
            assert!(parse_call(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn replies_encode_like_sd_varlink() {
        assert_eq!(Reply::empty().encode(), b"{}\0");
        let mut p = Map::new();
        p.insert("Name".into(), json!("foo"));
        let more = Reply::Ok {
            parameters: Some(p),
            continues: true,
        };
        assert_eq!(
            more.encode(),
            b"{\"parameters\":{\"Name\":\"foo\"},\"continues\":true}\0"
        );
        assert_eq!(
            Reply::error("io.systemd.sysext.NoImagesFound").encode(),
            b"{\"error\":\"io.systemd.sysext.NoImagesFound\"}\0"
        );
        assert_eq!(
            Reply::error_with(
                "org.varlink.service.InvalidParameter",
                "parameter",
                "class"
            )
            .encode(),
            b"{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"class\"}}\0"
        );
    }

    #[test]
    fn framer_splits_on_nul_across_reads() {
        let mut f = Framer::default();
        f.push(b"{\"a\":1}\0{\"b\"").unwrap();
        assert_eq!(f.next_message().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(f.next_message(), None);
        f.push(b":2}\0").unwrap();
        assert_eq!(f.next_message().as_deref(), Some(&b"{\"b\":2}"[..]));
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn an_endless_message_is_refused() {
        let mut f = Framer::default();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut refused = false;
        for _ in 0..17 {
            if f.push(&chunk).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }
}
