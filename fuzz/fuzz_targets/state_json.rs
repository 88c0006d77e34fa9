//! Fuzz reading our state record (extmerge-state.json) back: malformed or hostile JSON must be
//! rejected, never panic; a record that parses compares equal to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sf) = serde_json::from_slice::<extmerge::decide::state::StateFile>(data) {
        assert!(extmerge::decide::state::differences(&sf.state, &sf.state).is_empty());
    }
});
