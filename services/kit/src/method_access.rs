//! The one table of who may call what: every gRPC method of every clawfleet service and
//! the principals allowed to call it. [`crate::access_layer`] enforces it on every server;
//! a method missing here is refused. Why each row is what it is:
//! docs/product/service-authority.md.

use clawfleet_contracts::{
    auth::v1::auth_service_server::SERVICE_NAME as AUTH,
    bridge::v1::gateway_bridge_service_server::SERVICE_NAME as BRIDGE,
    channels::v1::channel_service_server::SERVICE_NAME as CHANNELS,
    lifecycle::v1::instance_service_server::SERVICE_NAME as LIFECYCLE,
};

use crate::principal::Principal::{self, Bridge, Channels, Edge, Operator};

/// One row: a method and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodAccess {
    /// Fully qualified service name (`package.Service`).
    pub service: &'static str,
    pub method: &'static str,
    pub callers: &'static [Principal],
}

const fn row(
    service: &'static str,
    method: &'static str,
    callers: &'static [Principal],
) -> MethodAccess {
    MethodAccess {
        service,
        method,
        callers,
    }
}

/// What the edge serves to operators and app users.
const EDGE_AND_OPERATOR: &[Principal] = &[Operator, Edge];

/// Every method of every service.
pub const METHOD_ACCESS: &[MethodAccess] = &[
    // Lifecycle: the edge drives instances for app users and operators.
    row(LIFECYCLE, "CreateInstance", EDGE_AND_OPERATOR),
    // The bridge and channels check that an app caller owns the instance.
    row(
        LIFECYCLE,
        "GetInstance",
        &[Operator, Edge, Bridge, Channels],
    ),
    row(LIFECYCLE, "ListInstances", EDGE_AND_OPERATOR),
    row(LIFECYCLE, "DeleteInstance", EDGE_AND_OPERATOR),
    row(LIFECYCLE, "StopInstance", EDGE_AND_OPERATOR),
    row(LIFECYCLE, "StartInstance", EDGE_AND_OPERATOR),
    // The edge keeps its instance cache; the bridge drops connections to changed endpoints.
    row(LIFECYCLE, "WatchInstances", &[Operator, Edge, Bridge]),
    // Every gateway's token: only the bridge, which connects to gateways.
    row(LIFECYCLE, "ResolveGateway", &[Bridge]),
    row(LIFECYCLE, "RotateGatewayToken", &[Operator]),
    // Any command in any instance: only channels (pairing, WhatsApp login).
    row(LIFECYCLE, "ExecInInstance", &[Channels]),
    // Plans follow subscriptions (the edge's webhook) and operators' choices.
    row(LIFECYCLE, "SetOwnerPlan", EDGE_AND_OPERATOR),
    // A user's own provider key and its spend, through the edge's routes.
    row(LIFECYCLE, "RotateProviderKey", EDGE_AND_OPERATOR),
    row(LIFECYCLE, "GetInstanceUsage", EDGE_AND_OPERATOR),
    // Backups: the app's and operators' routes (docs/product/backups.md).
    row(LIFECYCLE, "CreateBackup", EDGE_AND_OPERATOR),
    row(LIFECYCLE, "ListBackups", EDGE_AND_OPERATOR),
    row(LIFECYCLE, "RestoreBackup", EDGE_AND_OPERATOR),
    row(LIFECYCLE, "DeleteBackup", EDGE_AND_OPERATOR),
    // Bridge: the edge for app and operator calls, channels for channel methods.
    row(BRIDGE, "Call", &[Operator, Edge, Channels]),
    row(BRIDGE, "Subscribe", &[Operator]),
    row(BRIDGE, "VncTunnel", EDGE_AND_OPERATOR),
    // Channels: reached only through the edge's routes (and by operators).
    row(CHANNELS, "SetupTelegram", EDGE_AND_OPERATOR),
    row(CHANNELS, "GetTelegramStatus", EDGE_AND_OPERATOR),
    row(CHANNELS, "LogoutTelegram", EDGE_AND_OPERATOR),
    row(CHANNELS, "StartWhatsAppLogin", EDGE_AND_OPERATOR),
    row(CHANNELS, "WaitWhatsAppLogin", EDGE_AND_OPERATOR),
    row(CHANNELS, "GetWhatsAppStatus", EDGE_AND_OPERATOR),
    row(CHANNELS, "ListPairingRequests", EDGE_AND_OPERATOR),
    row(CHANNELS, "ApprovePairing", EDGE_AND_OPERATOR),
    // Auth: the edge's /auth routes (and operators looking up a user).
    row(AUTH, "SignUp", &[Edge]),
    row(AUTH, "LogIn", &[Edge]),
    row(AUTH, "SignInWithGoogle", &[Edge]),
    row(AUTH, "SignInWithApple", &[Edge]),
    row(AUTH, "Refresh", &[Edge]),
    row(AUTH, "LogOut", &[Edge]),
    row(AUTH, "GetUser", EDGE_AND_OPERATOR),
    // Plans: the edge reads them for app users and applies them to the lifecycle;
    // operators read and set them by hand (docs/product/subscriptions.md).
    row(AUTH, "GetSubscription", EDGE_AND_OPERATOR),
    // Webhook events reach auth only through the edge, which checks their header.
    row(AUTH, "ApplySubscriptionEvent", &[Edge]),
    row(AUTH, "SetUserPlan", EDGE_AND_OPERATOR),
    // Account deletion: the edge deletes the instances between the two calls.
    row(AUTH, "VerifyReauthentication", &[Edge]),
    row(AUTH, "DeleteAccount", &[Edge]),
];

/// What the table says of one request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Health and reflection: open to anyone, no credential needed.
    Open,
    /// A listed method; the principals that may call it.
    Listed(&'static [Principal]),
    /// Not in the table: refused.
    Unknown,
}

/// The verdict for a gRPC request path `/<package.Service>/<Method>`.
pub fn verdict(path: &str) -> Verdict {
    let Some((service, method)) = path.strip_prefix('/').and_then(|rest| rest.split_once('/'))
    else {
        return Verdict::Unknown;
    };
    if is_open(service) {
        return Verdict::Open;
    }
    METHOD_ACCESS
        .iter()
        .find(|row| row.service == service && row.method == method)
        .map_or(Verdict::Unknown, |row| Verdict::Listed(row.callers))
}

/// Probes and tooling that carry no credential.
fn is_open(service: &str) -> bool {
    service == "grpc.health.v1.Health"
        || service == "grpc.reflection.v1.ServerReflection"
        || service == "grpc.reflection.v1alpha.ServerReflection"
}

#[cfg(test)]
#[path = "method_access_tests.rs"]
mod tests;
