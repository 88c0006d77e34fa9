//! Decisions as pure functions over plain data: release matching, layer order and vpick choice,
//! mutable-mode plans, conflicts, state comparison, systemd's refresh-skip record, the
//! service-manager actions extensions ask for. No file-system, mount or process calls here (a
//! test greps for them).

pub mod arch;
pub mod conflicts;
pub mod mountopts;
pub mod mutable;
pub mod origin;
pub mod reject;
pub mod release;
pub mod reload;
pub mod skip_record;
pub mod state;
pub mod vpick;
