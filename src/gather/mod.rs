//! Reading the root through its handle: discovery, the host's identity, facts about the
//! hierarchies and the root's systemd, identities of the extensions. Never writes, never mounts.

pub mod certs;
pub mod conffiles;
pub mod conflicts;
pub mod discover;
pub mod facts;
pub mod host;
pub mod identity;
pub mod image_identity;
pub mod merged;
pub mod release;
pub mod snapshot;
pub mod systemd;
pub mod vpick;
pub mod walk;
pub mod weak_id;
