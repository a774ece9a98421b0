//! dialler: a predictive outbound dialler.
//!
//! The library holds everything; `main.rs` only parses the command line.
//! See `DESIGN.md` (shared) for the architecture: a sans-IO core (pacing,
//! compliance, campaign runner, simulator) driven by thin I/O layers
//! (`store`, and later `sip`, `media`, `api`).

pub mod api;
pub mod auth;
pub mod campaign;
pub mod clock;
pub mod commands;
pub mod compliance;
pub mod controls;
pub mod demo;
pub mod dialer;
pub mod dnd_set;
pub mod erasure;
pub mod leads;
pub mod live;
pub mod media;
pub mod metrics;
pub mod outcome;
pub mod pacing;
pub mod phone;
pub mod policy;
pub mod profile;
pub mod registry;
pub mod report;
pub mod service;
pub mod sim;
pub mod sip;
pub mod store;
pub mod timezone;
pub mod webhooks;
