//! Loopback ports for local gateways.
//!
//! A gateway also opens a browser relay on its port + 10, and its display's websockify
//! listens on port + 6, so ports are handed out in steps of 20 and both the port and
//! port + 10 must be free.

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, SocketAddrV4, TcpListener},
    sync::{Arc, Mutex},
};

/// Distance between two gateways' ports.
pub const PORT_STRIDE: u16 = 20;
/// The gateway's browser relay sits this far above its port.
pub const RELAY_OFFSET: u16 = 10;
/// websockify (the instance's NoVNC endpoint) sits this far above the gateway's port,
/// inside its slot.
pub const WEBSOCKET_PORT_OFFSET: u16 = 6;
const _: () = assert!(WEBSOCKET_PORT_OFFSET > 0 && WEBSOCKET_PORT_OFFSET < RELAY_OFFSET);

#[derive(Clone)]
pub struct PortAllocator {
    base: u16,
    taken: Arc<Mutex<BTreeSet<u16>>>,
}

impl PortAllocator {
    pub fn new(base: u16) -> Self {
        Self {
            base,
            taken: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    /// The first port handed out; every gateway's port is at or above it.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// A port whose slot is free now; it stays reserved until [`PortAllocator::release`].
    pub fn allocate(&self) -> Option<u16> {
        let mut taken = self
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut candidate = self.base;
        loop {
            let relay = candidate.checked_add(RELAY_OFFSET)?;
            if !taken.contains(&candidate) && is_free(candidate) && is_free(relay) {
                taken.insert(candidate);
                return Some(candidate);
            }
            candidate = candidate.checked_add(PORT_STRIDE)?;
        }
    }

    pub fn release(&self, port: u16) {
        self.taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&port);
    }
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_spaced_and_skip_busy_slots() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let allocator = PortAllocator::new(busy_port);
        let first = allocator.allocate().unwrap();
        assert_eq!(first, busy_port + PORT_STRIDE);
        let second = allocator.allocate().unwrap();
        assert_eq!(second, first + PORT_STRIDE);
        allocator.release(first);
        assert_eq!(allocator.allocate().unwrap(), first);
    }
}
