//! The instance's virtual display: an `Xvfb` X server, `x11vnc` serving it over RFB on a
//! unix socket in an owner-only folder (no TCP port: no other local process reaches it),
//! and `websockify` turning that socket into the WebSocket (and NoVNC page) that the
//! bridge tunnels to users — port 6080 of a pod, a loopback port beside the gateway's
//! locally.
//!
//! - [`tools`]: finding the three programs;
//! - [`number`]: claiming a free X display number, across processes;
//! - [`chain`]: starting, probing and stopping one Xvfb + x11vnc + websockify chain;
//! - [`keeper`]: keeping the chain up for one gateway run, restarting it when a part dies;
//! - [`xauth`]: the X server's cookie, so only holders of its file reach the display.

pub mod chain;
pub mod keeper;
pub mod number;
#[cfg(test)]
mod tests;
pub mod tools;
pub mod xauth;

pub use self::{
    chain::{DisplayError, DisplaySettings, VirtualDisplay},
    keeper::DisplayKeeper,
    number::DisplayNumber,
    tools::VncTools,
};
