//! extmerge: merge systemd system and configuration extensions onto a root, the way
//! systemd-sysext/systemd-confext decide, with detached assembly and atomic refresh.
//!
//! The folders are the stages of a merge (DESIGN.md, "Module map"):
//!
//! * [`settings`]: what the command line, the environment and the root's configuration ask for;
//! * [`gather`]: reads the root through its [`kernel::root::Root`] handle, never writes or mounts;
//! * [`decide`]: plain data in, plain data out — matching, ordering, mutable plans, conflicts,
//!   state comparison; no file-system or mount calls;
//! * [`ondisk`]: byte formats (GPT, superblocks, verity, env files, mountinfo), all fuzzed;
//! * [`kernel`]: the only place with syscalls on mounts, loop and dm devices, and with `unsafe`;
//! * [`image`]: open one extension image by kind, as the image policy allows;
//! * [`merge`]: merge, refresh, unmerge and check as pipelines over the same steps;
//! * [`manager`]: the service manager's reload and unit restarts the merged extensions ask for;
//! * [`initrd`]: the kernel command line, `/var` and Flatcar's selection;
//! * [`verbs`]: parse, call, print;
//! * [`varlink`]: the same verbs as systemd-sysext's Varlink service.

#![deny(unsafe_code)]

pub mod class;
pub mod decide;
pub mod failpoint;
pub mod gather;
pub mod image;
pub mod initrd;
#[allow(unsafe_code)]
pub mod kernel;
pub mod limits;
pub mod log;
pub mod manager;
pub mod merge;
pub mod meta;
pub mod ondisk;
pub mod settings;
pub mod varlink;
pub mod verbs;
