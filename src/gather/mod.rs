//! Reading the root through its handle: discovery, the host's identity, facts about the
//! hierarchies, identities of the extensions. Never writes, never mounts.

pub mod compat;
pub mod discover;
pub mod facts;
pub mod identity;
pub mod snapshot;
