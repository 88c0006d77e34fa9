//! The syscall shell: the root handle, mounts and namespaces, loop and dm-verity devices, the
//! run lock. The only folder allowed `unsafe`, and the only place that probes kernel features.

pub mod activation;
#[cfg(feature = "verity")]
pub mod dmverity;
pub mod features;
pub mod fscontext;
pub mod lock;
pub mod loopdev;
pub mod mounts;
pub mod namespace;
pub mod overlay;
pub mod peer;
pub mod root;
pub mod root_walk;
pub mod stat;
pub mod unique;
