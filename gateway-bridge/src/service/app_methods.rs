//! App users reach gateway methods only from the app allow-list
//! (`clawfleet_kit::app_rpc`), checked here as well as at the edge: the bridge does not
//! rely on every edge route to have checked it.

use clawfleet_kit::{
    app_rpc::app_may_call,
    identity::{Caller, Role},
};
use tonic::Status;

/// Refuses an app caller's method outside the allow-list; operators and services pass.
pub fn check(caller: &Caller, method: &str) -> Result<(), Status> {
    if caller.role != Role::App || app_may_call(method) {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "gateway method {method:?} is not available to apps"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_callers_are_held_to_the_allow_list_and_others_are_not() {
        let app = Caller::app_user("u-1");
        assert!(check(&app, "status").is_ok());
        let refused = check(&app, "config.get").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(check(&app, "usage.status").is_err());
        assert!(check(&Caller::operator(), "config.get").is_ok());
        assert!(check(&Caller::service("channels"), "config.patch").is_ok());
    }
}
