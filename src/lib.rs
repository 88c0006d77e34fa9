//! extmerge: merge systemd system and configuration extensions onto a root, the way
//! systemd-sysext/systemd-confext decide, with detached assembly and atomic refresh.
//!
//! The pure core (class table, release matching, discovery ordering, settings) is
//! separated from the thin syscall layer so it can be unit-tested without root.

pub mod assemble;
pub mod cescape;
pub mod chase;
pub mod class;
pub mod compat;
pub mod config;
pub mod conflicts;
pub mod discover;
pub mod envfile;
pub mod failpoint;
pub mod identity;
pub mod image;
pub mod initrd;
pub mod lock;
pub mod log;
pub mod meta;
pub mod mountns;
pub mod mountopts;
pub mod mutable;
pub mod overlay;
pub mod release;
pub mod snapshot;
pub mod state;
pub mod verbs;
pub mod version;
pub mod vpick;
