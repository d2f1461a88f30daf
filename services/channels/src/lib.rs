//! The channels service (`clawfleet.channels.v1.ChannelService`): connects Telegram and
//! WhatsApp to an instance's gateway and handles DM pairing (docs/product/gateways.md). Gateway methods
//! go through the bridge; the code-based pairing list and approve run the gateway's own
//! CLI inside the instance through lifecycle's exec.
//!
//! - [`upstream`]: the bridge and lifecycle clients, acting for the caller;
//! - [`config_patch`]: config.get + config.patch with the base hash, retried once;
//! - [`telegram`], [`whatsapp`], [`pairing`]: the channel operations;
//! - [`validation`]: bot tokens, channel names, codes;
//! - [`service`]: the gRPC handlers; [`server`]: assembly.

pub mod config_patch;
pub mod pairing;
pub mod server;
pub mod service;
pub mod telegram;
pub mod upstream;
pub mod validation;
pub mod whatsapp;

pub use server::{ChannelsConfig, ChannelsServer, ChannelsStartError};
