//! One instance-id rule: the edge, the lifecycle, the bridge and the channels service
//! refuse the same bad ids with the same message, before anything else happens.

use clawfleet_contracts::{
    bridge::v1::CallRequest, channels::v1::GetTelegramStatusRequest,
    lifecycle::v1::GetInstanceRequest,
};
use clawfleet_kit::{error::ServiceError, instance_id::InstanceId};
use clawfleet_tests::{
    grpc::{bridge_client, channels_client, lifecycle_client},
    platform::{Platform, PlatformOptions},
    scenario::Operator,
};
use http::StatusCode;
use tonic::Code;

/// Ids the rule refuses that each service once judged differently: too long for the
/// volume name, starting with a digit or a dash, ending with a dash, upper case.
const BAD_IDS: [&str; 5] = [
    "a23456789012345678901234567890123456789012345678901",
    "1alice",
    "-alice",
    "alice-",
    "Alice",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_refuses_the_same_bad_ids_with_the_same_message() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 23500)).unwrap();
    let key = &platform.options.api_key;
    let operator = Operator::new(&platform);
    let mut lifecycle = lifecycle_client(&platform.lifecycle_address, key)
        .await
        .unwrap();
    let mut bridge = bridge_client(&platform.bridge_address, key).await.unwrap();
    let mut channels = channels_client(&platform.channels_address, key)
        .await
        .unwrap();

    for id in BAD_IDS {
        let expected = ServiceError::from(InstanceId::parse(id).unwrap_err()).message;

        let edge = operator.get(&format!("/api/instances/{id}")).await;
        assert_eq!(edge.status, StatusCode::BAD_REQUEST, "edge, {id}");
        assert_eq!(edge.json()["error"], expected.as_str(), "edge, {id}");

        let refused = lifecycle
            .get_instance(GetInstanceRequest { id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(
            (refused.code(), refused.message()),
            (Code::InvalidArgument, expected.as_str()),
            "lifecycle, {id}"
        );

        let refused = bridge
            .call(CallRequest {
                instance_id: id.into(),
                method: "status".into(),
                params: None,
            })
            .await
            .unwrap_err();
        assert_eq!(
            (refused.code(), refused.message()),
            (Code::InvalidArgument, expected.as_str()),
            "bridge, {id}"
        );

        let refused = channels
            .get_telegram_status(GetTelegramStatusRequest {
                instance_id: id.into(),
                probe: false,
            })
            .await
            .unwrap_err();
        assert_eq!(
            (refused.code(), refused.message()),
            (Code::InvalidArgument, expected.as_str()),
            "channels, {id}"
        );
    }
    // Nothing was created along the way.
    assert_eq!(
        operator.get("/api/instances").await.json()["instances"],
        serde_json::json!([])
    );
}
