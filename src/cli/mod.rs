//! The binary's own parts, not library API: the daemon's wiring, the flags
//! generated from the settings table, the demo and the Pod label.

pub mod daemon;
pub mod demo;
pub mod flags;
mod label;
