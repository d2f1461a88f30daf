//! The bridge's gateway client against real `openclaw` gateways on loopback: handshake,
//! methods, pairing and restarts. One test binary, so the client is linked once.

mod support;

mod loopback;
mod pairing;
mod restart;
