//! The gateway methods an app user may call (`POST /instances/{id}/rpc` on the edge),
//! enforced by the edge and again by the bridge for every app caller, so a compromised or
//! buggy edge route cannot widen it. What was checked against the real gateway and why
//! some methods are left out: docs/product/service-authority.md#app-gateway-methods.

/// Reads and the channel operations the app drives. Configuration reads and writes, logs
/// (which may carry secrets), agent runs, `usage.status` (the provider accounts behind the
/// gateway's credentials) and everything else stay operator-only.
pub const APP_RPC_METHODS: &[&str] = &[
    "status",
    "health",
    "channels.status",
    "channels.logout",
    "channels.pairing.list",
    "web.login.start",
    "web.login.wait",
    "models.list",
    "agents.list",
    "agent.identity.get",
    "skills.status",
    "tools.catalog",
    "sessions.list",
    "sessions.preview",
    "usage.cost",
    "cron.list",
    "cron.status",
    "last-heartbeat",
];

/// Whether an app user may call the gateway method `method`.
pub fn app_may_call(method: &str) -> bool {
    APP_RPC_METHODS.contains(&method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_allowed_and_secrets_and_writes_are_not() {
        assert!(app_may_call("status"));
        assert!(app_may_call("usage.cost"));
        for method in [
            "config.get",
            "config.patch",
            "config.apply",
            "logs.tail",
            "agent",
            "usage.status",
            "exec.approval.resolve",
            "",
            "STATUS",
        ] {
            assert!(!app_may_call(method), "{method}");
        }
    }
}
