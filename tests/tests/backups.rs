//! Backups and restore with real OpenClaw gateways (docs/product/backups.md): a config
//! change survives a round trip, a clone gets the backup's state, a corrupt archive and a
//! newer gateway's backup are refused with the instance untouched, and a purge is
//! preceded by a backup — on the local-directory store and on moto's S3 server.
//! Run serially: `cargo test -p clawfleet-tests --test backups -- --test-threads=1`.

use std::time::{Duration, Instant};

use clawfleet_backup::moto::MotoServer;
use clawfleet_contracts::lifecycle::v1::{
    CreateBackupRequest, DeleteBackupRequest, ListBackupsRequest, RestoreBackupRequest,
};
use clawfleet_tests::{
    grpc::{LifecycleClient, lifecycle_client},
    platform::{Platform, PlatformOptions},
    scenario::Operator,
};
use http::StatusCode;
use serde_json::{Value, json};
use tonic::Code;

const KEPT: &str = "[kept-by-backup]";
const CHANGED: &str = "[changed-after-backup]";

async fn rpc(operator: &Operator<'_>, id: &str, body: Value) -> (StatusCode, Value) {
    let reply = operator
        .post(&format!("/api/instances/{id}/rpc"), body)
        .await;
    (reply.status, reply.json())
}

/// `config.get`, retried while the bridge reconnects to a restarted gateway.
async fn config_of(operator: &Operator<'_>, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, config) =
            rpc(operator, id, json!({"method": "config.get", "params": {}})).await;
        if status == StatusCode::OK {
            return config;
        }
        assert!(
            Instant::now() < deadline,
            "config.get on {id}: {status} {config}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sets `messages.responsePrefix` through the gateway's own `config.patch`.
async fn set_response_prefix(operator: &Operator<'_>, id: &str, prefix: &str) {
    let config = config_of(operator, id).await;
    let patch = json!({"messages": {"responsePrefix": prefix}}).to_string();
    let (status, patched) = rpc(
        operator,
        id,
        json!({"method": "config.patch", "params": {"raw": patch, "baseHash": config["hash"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
}

async fn response_prefix_is(operator: &Operator<'_>, id: &str, prefix: &str) -> bool {
    config_of(operator, id).await.to_string().contains(prefix)
}

async fn create_running(operator: &Operator<'_>, id: &str) {
    let created = operator.post("/api/instances", json!({"userId": id})).await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    operator.wait_running(id).await;
}

/// A real health RPC answered by the gateway, through edge and bridge.
async fn assert_healthy(operator: &Operator<'_>, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = rpc(operator, id, json!({"method": "health", "params": {}})).await;
        if status == StatusCode::OK && body["ok"] == true {
            return;
        }
        assert!(Instant::now() < deadline, "health on {id}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn take_backup(lifecycle: &mut LifecycleClient, id: &str) -> String {
    let created = lifecycle
        .create_backup(CreateBackupRequest {
            instance_id: id.into(),
        })
        .await
        .unwrap_or_else(|status| panic!("create backup of {id}: {status:?}"))
        .into_inner()
        .backup
        .expect("backup");
    assert_eq!(created.instance_id, id);
    assert!(created.archive_bytes > 0 && created.state_bytes > 0);
    assert_ne!(created.gateway_version, "unknown");
    created.backup_id
}

async fn restore(
    lifecycle: &mut LifecycleClient,
    id: &str,
    backup_id: &str,
    target: &str,
) -> Result<(), tonic::Status> {
    lifecycle
        .restore_backup(RestoreBackupRequest {
            instance_id: id.into(),
            backup_id: backup_id.into(),
            target_instance_id: target.into(),
        })
        .await
        .map(|_| ())
}

/// Change, back up, change again, restore: the first change is back, the gateway
/// answers a health RPC, and the backup is listed.
async fn round_trip(operator: &Operator<'_>, lifecycle: &mut LifecycleClient, id: &str) -> String {
    set_response_prefix(operator, id, KEPT).await;
    let backup_id = take_backup(lifecycle, id).await;
    operator.wait_running(id).await;
    set_response_prefix(operator, id, CHANGED).await;
    assert!(response_prefix_is(operator, id, CHANGED).await);

    restore(lifecycle, id, &backup_id, "")
        .await
        .expect("restore");
    operator.wait_running(id).await;
    assert_healthy(operator, id).await;
    assert!(
        response_prefix_is(operator, id, KEPT).await,
        "restored config lost"
    );
    assert!(!response_prefix_is(operator, id, CHANGED).await);

    let listed = lifecycle
        .list_backups(ListBackupsRequest {
            instance_id: id.into(),
        })
        .await
        .expect("list")
        .into_inner()
        .backups;
    assert!(
        listed.iter().any(|backup| backup.backup_id == backup_id),
        "{listed:?}"
    );
    backup_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory_backups_round_trip_clone_refuse_bad_archives_and_precede_purges() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 27300)).unwrap();
    let operator = Operator::new(&platform);
    let mut lifecycle = lifecycle_client(&platform.lifecycle_address, &platform.options.api_key)
        .await
        .unwrap();
    create_running(&operator, "bak-alice").await;
    let backup_id = round_trip(&operator, &mut lifecycle, "bak-alice").await;
    let store = data.path().join("backups/bak-alice");
    assert!(store.join(format!("{backup_id}.manifest.json")).exists());
    // Sealed at rest: the config's text is nowhere in the archive.
    let archive = std::fs::read(store.join(format!("{backup_id}.archive"))).unwrap();
    assert!(
        !archive
            .windows(KEPT.len())
            .any(|window| window == KEPT.as_bytes())
    );

    // Clone: the backup's state in another instance.
    create_running(&operator, "bak-clone").await;
    restore(&mut lifecycle, "bak-alice", &backup_id, "bak-clone")
        .await
        .expect("clone");
    operator.wait_running("bak-clone").await;
    assert!(response_prefix_is(&operator, "bak-clone", KEPT).await);

    // A newer gateway's backup is refused before anything changes.
    set_response_prefix(&operator, "bak-alice", CHANGED).await;
    let manifest_path = store.join(format!("{backup_id}.manifest.json"));
    let original_manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let mut newer: Value = serde_json::from_str(&original_manifest).unwrap();
    newer["gateway_version"] = json!("2999.1.1");
    std::fs::write(&manifest_path, newer.to_string()).unwrap();
    let refused = restore(&mut lifecycle, "bak-alice", &backup_id, "")
        .await
        .expect_err("newer refused");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("newer than this instance's"),
        "{}",
        refused.message()
    );
    std::fs::write(&manifest_path, &original_manifest).unwrap();

    // A corrupt archive is refused and the instance keeps its current state.
    let archive_path = store.join(format!("{backup_id}.archive"));
    let mut corrupt = std::fs::read(&archive_path).unwrap();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x40;
    std::fs::write(&archive_path, corrupt).unwrap();
    let refused = restore(&mut lifecycle, "bak-alice", &backup_id, "")
        .await
        .expect_err("corrupt refused");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    operator.wait_running("bak-alice").await;
    assert!(
        response_prefix_is(&operator, "bak-alice", CHANGED).await,
        "a refused restore changed the instance"
    );

    // The operator routes list and delete it (the edge's REST face of the same RPCs).
    let listed = operator.get("/api/instances/bak-alice/backups").await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    assert_eq!(
        listed["backups"][0]["backupId"],
        backup_id.as_str(),
        "{listed}"
    );
    assert_eq!(listed["backups"][0]["userId"], "bak-alice", "{listed}");
    let refused = operator
        .delete("/api/instances/bak-alice/backups/not-a-backup-id")
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let deleted = operator
        .delete(&format!("/api/instances/bak-alice/backups/{backup_id}"))
        .await;
    assert_eq!(
        deleted.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&deleted.body)
    );
    assert!(!manifest_path.exists());
    let gone = lifecycle
        .delete_backup(DeleteBackupRequest {
            instance_id: "bak-alice".into(),
            backup_id: backup_id.clone(),
        })
        .await
        .expect_err("already deleted");
    assert_eq!(gone.code(), Code::NotFound);

    // A purge is preceded by a backup, listed after the instance is gone (operators).
    let deleted = operator
        .delete("/api/instances/bak-clone?preservePvc=false")
        .await;
    assert!(
        deleted.status.is_success(),
        "{}",
        String::from_utf8_lossy(&deleted.body)
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let listed = lifecycle
            .list_backups(ListBackupsRequest {
                instance_id: "bak-clone".into(),
            })
            .await
            .expect("list")
            .into_inner()
            .backups;
        if listed.iter().any(|backup| backup.reason == "before_purge") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backup before purge: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(platform);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backups_on_moto_round_trip() {
    let moto = MotoServer::start();
    moto.create_bucket("fleet-backups");
    let data = tempfile::tempdir().unwrap();
    let mut options = PlatformOptions::new(data.path(), 27400);
    for (key, value) in [
        ("CLAWFLEET_BACKUP_STORE", "s3".to_owned()),
        ("CLAWFLEET_BACKUP_S3_ENDPOINT", moto.endpoint()),
        ("CLAWFLEET_BACKUP_S3_BUCKET", "fleet-backups".to_owned()),
        ("CLAWFLEET_BACKUP_S3_PREFIX", "clawfleet".to_owned()),
        ("CLAWFLEET_BACKUP_S3_ACCESS_KEY_ID", "testing".to_owned()),
        (
            "CLAWFLEET_BACKUP_S3_SECRET_ACCESS_KEY",
            "testing".to_owned(),
        ),
    ] {
        options.extra_env.push((key.to_owned(), value));
    }
    let platform = Platform::start(options).unwrap();
    let operator = Operator::new(&platform);
    let mut lifecycle = lifecycle_client(&platform.lifecycle_address, &platform.options.api_key)
        .await
        .unwrap();
    create_running(&operator, "bak-s3").await;
    round_trip(&operator, &mut lifecycle, "bak-s3").await;
    assert!(
        !data.path().join("backups").exists(),
        "the S3 store wrote locally"
    );
    drop(platform);
}
