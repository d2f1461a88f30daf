//! Who presented a credential to a gRPC server: the operator (platform API key) or one
//! of the services that call others, each with its own token
//! (docs/product/service-authority.md).

/// The holder of a credential a gRPC server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// Whoever holds the platform API key (grpcurl, automation).
    Operator,
    /// The edge: the only service that may state an app user or operator it authenticated.
    Edge,
    /// The gateway bridge.
    Bridge,
    /// The channels service.
    Channels,
}

impl Principal {
    /// The services that call other services, each with its own token.
    pub const SERVICES: [Principal; 3] = [Principal::Edge, Principal::Bridge, Principal::Channels];

    /// Every principal, the operator first.
    pub const ALL: [Principal; 4] = [
        Principal::Operator,
        Principal::Edge,
        Principal::Bridge,
        Principal::Channels,
    ];

    /// Its name in the digests list and in `Caller::subject`.
    pub const fn name(self) -> &'static str {
        match self {
            Principal::Operator => "operator",
            Principal::Edge => "edge",
            Principal::Bridge => "bridge",
            Principal::Channels => "channels",
        }
    }

    /// The calling service of that name (`operator` is not one: it has no service token).
    pub fn service_named(name: &str) -> Option<Principal> {
        Principal::SERVICES
            .into_iter()
            .find(|principal| principal.name() == name)
    }
}
