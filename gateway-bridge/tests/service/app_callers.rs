//! App users reach the bridge only through the edge, and the bridge itself holds them to
//! the app allow-list and to their own instances (asking the lifecycle as itself and
//! comparing the owner).

use clawfleet_contracts::bridge::v1::{CallRequest, call_response::Outcome};
use tonic::Code;

use crate::support::{Harness, OWNER};

fn call(method: &str) -> CallRequest {
    CallRequest {
        instance_id: "alice".to_owned(),
        method: method.to_owned(),
        params: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_users_call_only_allowed_methods_of_their_own_instances() {
    let harness = Harness::start().await;
    let mut bridge = harness.bridge.clone();

    // An allowed method of their own instance reaches the gateway (which answers the
    // stand-in's error frame for methods it does not play).
    let reached = bridge
        .call(harness.as_app_user(call("status"), OWNER))
        .await
        .expect("the owner may call status")
        .into_inner();
    assert!(
        matches!(reached.outcome, Some(Outcome::Error(_))),
        "{reached:?}"
    );

    let refused = bridge
        .call(harness.as_app_user(call("config.get"), OWNER))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    let stranger = bridge
        .call(harness.as_app_user(call("status"), "someone-else"))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound, "{stranger:?}");

    // The operator may call anything.
    let operator = bridge
        .call(harness.request(call("echo")))
        .await
        .expect("the operator may call echo")
        .into_inner();
    assert!(
        matches!(operator.outcome, Some(Outcome::Result(_))),
        "{operator:?}"
    );
}
