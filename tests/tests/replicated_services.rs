//! Every service its own process, edge, auth, channels and the bridge two replicas each
//! (tests/src/split_mesh.rs), as deploy/ runs them. One app user whose requests land on
//! either edge signs in, refreshes, creates an instance and drives its real gateway
//! through both replica chains; then each service gets SIGTERM while a stream is open and
//! a call is in flight, and must finish the call, end the stream with a status and exit
//! within the bound, while the surviving replicas keep serving.

use std::time::Duration;

use clawfleet_contracts::json::json_to_struct;
use clawfleet_contracts::{
    auth::v1::LogInRequest,
    bridge::v1::{CallRequest, SubscribeRequest},
    channels::v1::ListPairingRequestsRequest,
    lifecycle::v1::{ExecInInstanceRequest, WatchInstancesRequest},
};
use clawfleet_database::testing::{Backend, TestDatabase};
use clawfleet_kit::principal::Principal;
use clawfleet_tests::{
    app_user::PASSWORD,
    grpc::{auth_client, bridge_client, channels_client, lifecycle_client},
    http::{HttpClient, Reply, client, send},
    scenario::GATEWAY_READY_TIMEOUT,
    split_mesh::{ServiceProcess, SplitMesh, SplitMeshOptions},
    telegram_standin::TelegramStandIn,
};
use http::Method;
use serde_json::{Value, json};

/// How long a service may take to exit after SIGTERM while it finishes a call that runs
/// the gateway's CLI (seconds; more on a loaded 2-core machine). deploy/ grants 315 s.
const STOP_BOUND: Duration = Duration::from_secs(90);
const BOT_TOKEN: &str = "987654321:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-zz";

/// One edge replica, spoken to as the app and the operator do.
struct Edge {
    url: String,
    replica: usize,
    client: HttpClient,
}

impl Edge {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let url = format!("{}{path}", self.url);
        let (content_type, bytes) = match body {
            Some(body) => (Some("application/json"), body.to_string().into_bytes()),
            None => (None, Vec::new()),
        };
        send(&self.client, method, &url, token, content_type, bytes)
            .await
            .unwrap_or_else(|error| panic!("edge-{} answers: {error}", self.replica))
    }
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_each_service_serve_one_user_and_each_stops_cleanly() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let telegram = TelegramStandIn::start(BOT_TOKEN, "clawfleet_split_bot").await;
    let dir = tempfile::tempdir().unwrap();
    let options = SplitMeshOptions {
        data_dir: dir.path().join("mesh"),
        port_base: 31000,
        gateway_port_base: 31400,
        replicas: 2,
        auth_database_url: database.url.clone(),
        channels_env: vec![("CLAWFLEET_TELEGRAM_API_ROOT".into(), telegram.api_root())],
        common_env: Vec::new(),
    };
    let mut mesh = tokio::task::spawn_blocking(move || SplitMesh::start(options))
        .await
        .unwrap()
        .unwrap();
    let edges = [0, 1].map(|replica| Edge {
        url: mesh.edge_url(replica),
        replica,
        client: client(),
    });

    // Accounts live in the auth database both auth replicas share, and a token signed
    // by one edge is accepted by the other.
    let signed_up = edges[0]
        .send(
            Method::POST,
            "/auth/signup",
            None,
            Some(json!({"email": "rita@example.com", "password": PASSWORD, "name": "Rita"})),
        )
        .await;
    assert_eq!(signed_up.status, 201, "{}", text(&signed_up));
    let first_refresh = signed_up.json()["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let logged_in = edges[1]
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "rita@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(logged_in.status, 200, "{}", text(&logged_in));
    let access = logged_in.json()["accessToken"].as_str().unwrap().to_owned();
    let me = edges[0]
        .send(Method::GET, "/users/me", Some(&access), None)
        .await;
    assert_eq!(me.status, 200, "{}", text(&me));

    // A refresh token rotates once whichever replica sees it; presenting the rotated one
    // on the other replica revokes the family there too.
    let rotated = edges[1]
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refreshToken": first_refresh})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", text(&rotated));
    let successor = rotated.json()["refreshToken"].as_str().unwrap().to_owned();
    let next = edges[0]
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refreshToken": successor})),
        )
        .await;
    assert_eq!(next.status, 200, "{}", text(&next));
    let newest = next.json()["refreshToken"].as_str().unwrap().to_owned();
    let reuse = edges[1]
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refreshToken": first_refresh})),
        )
        .await;
    assert_eq!(reuse.status, 401, "{}", text(&reuse));
    let after_reuse = edges[0]
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refreshToken": newest})),
        )
        .await;
    assert_eq!(
        after_reuse.status, 401,
        "the family is revoked for every replica"
    );

    // An instance created through one edge is seen, and driven, through both.
    let created = edges[0]
        .send(Method::POST, "/instances", Some(&access), None)
        .await;
    assert_eq!(created.status, 201, "{}", text(&created));
    let id = created.json()["userId"].as_str().unwrap().to_owned();
    let path = format!("/instances/{id}");
    mesh.wait_app_instance_running(1, &id, &access).await;
    for edge in &edges {
        // Each edge's bridge replica connects with the one shared device identity.
        let called = edge
            .send(
                Method::POST,
                &format!("{path}/rpc"),
                Some(&access),
                Some(json!({"method": "health"})),
            )
            .await;
        assert_eq!(
            called.status,
            200,
            "edge-{}: {}",
            edge.replica,
            text(&called)
        );
        // Each edge's channels replica reaches the gateway through its own bridge.
        let status = edge
            .send(
                Method::GET,
                &format!("{path}/telegram/status"),
                Some(&access),
                None,
            )
            .await;
        assert_eq!(
            status.status,
            200,
            "edge-{}: {}",
            edge.replica,
            text(&status)
        );
    }
    assert_eq!(
        std::fs::read_dir(&mesh.data_dir)
            .unwrap()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().contains("identity"))
            .count(),
        1,
        "one device identity for both bridges"
    );

    // With a bot connected, a pairing list runs the gateway's CLI inside the instance
    // (seconds), which makes it a call that is surely in flight when a stop arrives.
    let setup = edges[0]
        .send(
            Method::POST,
            &format!("{path}/telegram/setup"),
            Some(&access),
            Some(json!({"botToken": BOT_TOKEN})),
        )
        .await;
    assert_eq!(setup.status, 200, "{}", text(&setup));
    let pairing_path = format!("{path}/pairing/list?channel=telegram");
    let deadline = tokio::time::Instant::now() + GATEWAY_READY_TIMEOUT;
    loop {
        let listed = edges[0]
            .send(Method::GET, &pairing_path, Some(&access), None)
            .await;
        if listed.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pairing list never answered: {}\n{}",
            text(&listed),
            mesh.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let key = mesh.api_key.clone();
    let edge_token = mesh.credentials.token(Principal::Edge).unwrap().to_owned();
    let channels_token = mesh
        .credentials
        .token(Principal::Channels)
        .unwrap()
        .to_owned();

    // Edge: an open event stream ends; an in-flight pairing list (through the edge's
    // own channels replica) answers.
    let watch_url = format!("{}/api/watch", mesh.edge_url(1));
    let watch_key = key.clone();
    let watch = tokio::spawn(async move {
        send(
            &client(),
            Method::GET,
            &watch_url,
            Some(&watch_key),
            None,
            "",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !watch.is_finished(),
        "the event stream stays open until the stop"
    );
    let list_url = format!(
        "{}/api/instances/{id}/pairing/list?channel=telegram",
        mesh.edge_url(1)
    );
    let list_key = key.clone();
    let in_flight = spawn_timed(async move {
        send(&client(), Method::GET, &list_url, Some(&list_key), None, "").await
    });
    stop_while_busy(&mut mesh.edges[1], STOP_BOUND).await;
    let answered = finished(in_flight, "edge").await;
    assert!(
        answered.as_ref().is_ok_and(|reply| reply.status == 200),
        "in-flight request: {answered:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .expect("the event stream ended with the stop")
        .unwrap()
        .ok();

    // Channels: an in-flight pairing list finishes.
    let mut channels = channels_client(&mesh.channels[1].address, &key)
        .await
        .unwrap();
    let request = ListPairingRequestsRequest {
        instance_id: id.clone(),
        channel: "telegram".into(),
        account_id: String::new(),
    };
    let in_flight = spawn_timed(async move { channels.list_pairing_requests(request).await });
    stop_while_busy(&mut mesh.channels[1], STOP_BOUND).await;
    finished(in_flight, "call")
        .await
        .expect("the in-flight pairing list finishes");

    // Bridge: an open Subscribe stream ends with a status; an in-flight call finishes
    // (gateway calls take milliseconds, so this one may already be done when the stop
    // arrives).
    let mut bridge = bridge_client(&mesh.bridges[1].address, &key).await.unwrap();
    let mut events = bridge
        .subscribe(SubscribeRequest {
            instance_id: id.clone(),
            events: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let call = CallRequest {
        instance_id: id.clone(),
        method: "channels.status".into(),
        params: Some(json_to_struct(json!({"probe": true}))),
    };
    let in_flight = spawn_timed(async move { bridge.call(call).await });
    stop_while_busy(&mut mesh.bridges[1], STOP_BOUND).await;
    finished(in_flight, "call")
        .await
        .expect("the in-flight gateway call finishes");
    assert_ends(&mut events).await;

    // Auth: an in-flight sign-in (a password hash) finishes.
    let mut auth = auth_client(&mesh.auths[1].address, &edge_token)
        .await
        .unwrap();
    let log_in = LogInRequest {
        email: "rita@example.com".into(),
        password: PASSWORD.into(),
    };
    let in_flight = spawn_timed(async move { auth.log_in(log_in).await });
    stop_while_busy(&mut mesh.auths[1], STOP_BOUND).await;
    finished(in_flight, "call")
        .await
        .expect("the in-flight sign-in finishes");

    // The surviving replicas still serve the user end to end.
    let called = edges[0]
        .send(
            Method::POST,
            &format!("{path}/rpc"),
            Some(&access),
            Some(json!({"method": "health"})),
        )
        .await;
    assert_eq!(called.status, 200, "{}", text(&called));
    let signed_in = edges[0]
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "rita@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(signed_in.status, 200, "{}", text(&signed_in));

    // Lifecycle: an open watch ends with a status; an in-flight command in the instance
    // (the gateway's CLI, as channels runs it) finishes; its gateway stops within the
    // gateway's own grace.
    let mut lifecycle = lifecycle_client(&mesh.lifecycle.address, &key)
        .await
        .unwrap();
    let mut watch = lifecycle
        .watch_instances(WatchInstancesRequest { id: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert!(
        watch.message().await.unwrap().is_some(),
        "the opening snapshot"
    );
    let mut exec = lifecycle_client(&mesh.lifecycle.address, &channels_token)
        .await
        .unwrap();
    let command = ExecInInstanceRequest {
        instance_id: id.clone(),
        argv: vec!["openclaw".into(), "--version".into()],
        stdin: Vec::new(),
        timeout_ms: 60_000,
    };
    let in_flight = spawn_timed(async move { exec.exec_in_instance(command).await });
    stop_while_busy(&mut mesh.lifecycle, STOP_BOUND).await;
    finished(in_flight, "call")
        .await
        .expect("the in-flight command finishes");
    assert_ends(&mut watch).await;
}

/// Runs `work` in the background, timing it.
fn spawn_timed<F>(work: F) -> tokio::task::JoinHandle<(F::Output, Duration)>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let output = work.await;
        (output, started.elapsed())
    })
}

/// The outcome of in-flight work, reporting how long it ran.
async fn finished<T>(work: tokio::task::JoinHandle<(T, Duration)>, what: &str) -> T {
    let (output, took) = work.await.unwrap();
    eprintln!("the in-flight {what} ran {took:?}");
    output
}

/// Sends SIGTERM to `process` a moment after its in-flight work began and checks that it
/// exits successfully within `bound`.
async fn stop_while_busy(process: &mut ServiceProcess, bound: Duration) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let name = process.name.clone();
    let stopped = tokio::task::block_in_place(|| process.terminate(bound)).unwrap();
    let Some((status, took)) = stopped else {
        panic!(
            "{name} did not exit within {bound:?} of SIGTERM:\n{}",
            process.log_tail()
        );
    };
    assert!(
        status.success(),
        "{name} exited with {status}:\n{}",
        process.log_tail()
    );
    eprintln!("{name} stopped in {took:?}");
}

/// Reads what a stopped server had already sent, then expects the stream's end: a
/// status that says the server went away (UNAVAILABLE), within a few seconds.
async fn assert_ends<T>(stream: &mut tonic::Streaming<T>) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Err(_) => panic!("the stream stayed open after the stop"),
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return,
            Ok(Err(status)) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                return;
            }
        }
    }
}
