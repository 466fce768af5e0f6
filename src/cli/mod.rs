//! The binary's own parts, not library API: the daemon's wiring, the flags
//! generated from the settings table, the demo, the Pod label and the
//! allocator's set-up.

pub mod daemon;
pub mod demo;
pub mod flags;
mod label;
pub mod memory;
