//! Fuzz the Varlink wire parser: the input is a byte stream split into NUL-terminated messages
//! in arbitrary chunks. Framing must give back exactly the bytes between NULs; every message is
//! parsed as a call (a violation is an error, never a panic); a call that parses re-encodes as
//! a valid reply object, and an accepted call has a non-empty method and never both `more` and
//! `oneway`.
#![no_main]

use extmerge::varlink::wire::{parse_call, Framer, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Byte 0 picks the chunk size the stream arrives in.
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut framer = Framer::default();
    let mut got = Vec::new();
    for part in stream.chunks(chunk) {
        framer.push(part).expect("inputs are far below the message limit");
        while let Some(m) = framer.next_message() {
            got.push(m);
        }
    }
    let want: Vec<&[u8]> = stream.split(|b| *b == 0).collect();
    let complete = want.len() - 1;
    assert_eq!(got.len(), complete);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.as_slice(), *w);
    }
    assert_eq!(framer.pending(), want[complete].len());
    for m in &got {
        if let Ok(call) = parse_call(m) {
            assert!(!call.method.is_empty());
            assert!(!(call.more && call.oneway));
            let reply = Reply::params(call.parameters.clone()).encode();
            assert_eq!(reply.last(), Some(&0));
            let back: serde_json::Value =
                serde_json::from_slice(&reply[..reply.len() - 1]).expect("a reply is JSON");
            assert_eq!(back.get("parameters"), Some(&serde_json::Value::Object(call.parameters)));
        }
    }
});
