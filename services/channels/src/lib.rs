//! The channels service (`clawfleet.channels.v1.ChannelService`): connects Telegram and
//! WhatsApp to an instance's gateway and handles DM pairing (docs/product/gateways.md). Gateway methods
//! go through the bridge; the code-based pairing list and approve run the gateway's own
//! CLI inside the instance through lifecycle's exec.

pub mod config_patch; // config.get + config.patch with the base hash, retried once
pub mod pairing; // DM pairing: list requests with their codes, approve by code or id
pub mod server; // configuration from the environment and assembly
pub mod service; // the gRPC handlers
pub mod telegram; // Telegram: set the bot token, read the channel status, log out
pub mod upstream; // the bridge and lifecycle clients, acting for the caller
pub mod validation; // bot tokens, channel names, pairing codes
pub mod whatsapp; // WhatsApp: start a link (QR code), wait for it, read the status

pub use server::{ChannelsConfig, ChannelsServer, ChannelsStartError};
