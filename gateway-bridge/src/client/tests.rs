use std::sync::Mutex;

use tokio::time::{sleep, timeout};

use super::*;

#[test]
fn endpoint_debug_hides_the_token() {
    let endpoint = Endpoint {
        url: "ws://10.0.0.1:18789".to_owned(),
        token: "endpoint-secret-token".into(),
        revision: "7".to_owned(),
        loopback: false,
    };
    let printed = format!("{endpoint:?}");
    assert!(!printed.contains("endpoint-secret-token"), "{printed}");
    assert!(printed.contains("10.0.0.1"));
}

struct Missing;

#[tonic::async_trait]
impl EndpointSource for Missing {
    async fn resolve(&self, instance_id: &str, _: bool) -> Result<Endpoint, ResolveError> {
        Err(ResolveError::NotFound(instance_id.to_owned()))
    }
}

struct Unreachable;

#[tonic::async_trait]
impl EndpointSource for Unreachable {
    async fn resolve(&self, _: &str, _: bool) -> Result<Endpoint, ResolveError> {
        // A port nothing listens on: connect fails fast with connection refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        Ok(Endpoint {
            url: format!("ws://127.0.0.1:{port}"),
            token: "t".into(),
            revision: "1".to_owned(),
            loopback: true,
        })
    }
}

fn client(source: Arc<dyn EndpointSource>) -> Arc<GatewayClient> {
    GatewayClient::new(
        "alice".to_owned(),
        source,
        Arc::new(DeviceIdentity::generate()),
        ClientOptions {
            backoff_max: Duration::from_secs(60),
            ..ClientOptions::default()
        },
    )
}

#[tokio::test]
async fn an_unknown_instance_is_not_found() {
    let client = client(Arc::new(Missing));
    let error = client
        .call("health", Value::Null, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::NotFound(ref id) if id == "alice"),
        "{error:?}"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn a_call_to_an_unreachable_gateway_fails_fast_even_with_subscribers_backing_off() {
    let client = client(Arc::new(Unreachable));
    assert!(matches!(
        client.subscribe().await.unwrap_err(),
        ClientError::Unavailable(_)
    ));
    for _ in 0..3 {
        let started = Instant::now();
        let error = client
            .call("health", Value::Null, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Unavailable(_)), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    client.shutdown().await;
    let error = client
        .call("health", Value::Null, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Unavailable(ref message) if message.contains("shut down"))
    );
}

use serde_json::json;

use crate::fake_gateway::{FakeGateway, Script};

/// Answers with a settable endpoint and records the `refresh` flag of every resolve.
struct RecordingSource {
    endpoint: Mutex<Endpoint>,
    refreshes: Mutex<Vec<bool>>,
    delay: Duration,
}

impl RecordingSource {
    fn new(fake: &FakeGateway) -> Arc<Self> {
        Arc::new(Self {
            endpoint: Mutex::new(Endpoint {
                url: fake.url.clone(),
                token: "fake-token".into(),
                revision: "1".to_owned(),
                loopback: true,
            }),
            refreshes: Mutex::new(Vec::new()),
            delay: Duration::from_millis(50),
        })
    }

    fn refreshes(&self) -> Vec<bool> {
        self.refreshes.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl EndpointSource for RecordingSource {
    async fn resolve(&self, _: &str, refresh: bool) -> Result<Endpoint, ResolveError> {
        self.refreshes.lock().unwrap().push(refresh);
        sleep(self.delay).await;
        Ok(self.endpoint.lock().unwrap().clone())
    }
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        ..ClientOptions::default()
    }
}

fn client_of(source: Arc<RecordingSource>, options: ClientOptions) -> Arc<GatewayClient> {
    GatewayClient::new(
        "alice".to_owned(),
        source,
        Arc::new(DeviceIdentity::generate()),
        options,
    )
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn concurrent_first_calls_share_one_connect_attempt() {
    let fake = FakeGateway::start(Script::default()).await;
    let source = RecordingSource::new(&fake);
    let client = client_of(source.clone(), fast_options());
    let calls = (0..20).map(|n| client.call("echo", json!({"n": n}), Duration::from_secs(5)));
    for (n, result) in futures_util::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(result.unwrap()["params"]["n"], n);
    }
    // A new client asks afresh, once for all of them.
    assert_eq!(source.refreshes(), [true]);
    assert_eq!(fake.connects().len(), 1);
    client.shutdown().await;
}

#[tokio::test]
async fn the_granted_device_token_is_sent_on_the_next_connect() {
    let fake = FakeGateway::start(Script {
        device_token: Some("granted-device-token".into()),
        ..Script::default()
    })
    .await;
    let source = RecordingSource::new(&fake);
    let client = client_of(source.clone(), fast_options());
    client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    fake.close_all(1012, "service restart");
    eventually("the close to be seen", || !client.is_connected()).await;
    client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    let connects = fake.connects();
    assert_eq!(connects.len(), 2);
    assert_eq!(connects[0]["auth"], json!({"token": "fake-token"}));
    assert_eq!(
        connects[1]["auth"],
        json!({"token": "fake-token", "deviceToken": "granted-device-token"})
    );
    // A restart close keeps the endpoint: only the new client's first connect asked.
    assert_eq!(source.refreshes(), [true, false]);
    client.shutdown().await;
}

#[tokio::test]
async fn a_rotated_token_close_resolves_afresh_and_reconnects_with_the_new_token() {
    let fake = FakeGateway::start(Script::default()).await;
    let source = RecordingSource::new(&fake);
    let client = client_of(source.clone(), fast_options());
    client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap();

    fake.set_script(Script {
        token: "rotated-token".into(),
        ..Script::default()
    });
    source.endpoint.lock().unwrap().token = "rotated-token".into();
    fake.close_all(4001, "gateway auth changed");
    eventually("the close to be seen", || !client.is_connected()).await;

    client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(source.refreshes(), [true, true]);
    assert_eq!(fake.connects()[1]["auth"]["token"], "rotated-token");
    client.shutdown().await;
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_and_the_next_attempt_refreshes() {
    let fake = FakeGateway::start(Script::default()).await;
    let source = RecordingSource::new(&fake);
    source.endpoint.lock().unwrap().token = "stale-token".into();
    let client = client_of(source.clone(), fast_options());
    let error = client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Auth(_)), "{error:?}");
    source.endpoint.lock().unwrap().token = "fake-token".into();
    client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(source.refreshes(), [true, true]);
    client.shutdown().await;
}

#[tokio::test]
async fn invalidate_drops_the_connection_and_resolves_afresh() {
    let fake = FakeGateway::start(Script::default()).await;
    let source = RecordingSource::new(&fake);
    let client = client_of(source.clone(), fast_options());
    client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(client.is_connected());
    client.invalidate();
    assert!(!client.is_connected());
    client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(source.refreshes(), [true, true]);
    assert_eq!(fake.connects().len(), 2);
    client.shutdown().await;
}

#[tokio::test]
async fn a_call_in_flight_fails_at_once_when_the_connection_drops() {
    let fake = FakeGateway::start(Script {
        answer: false,
        ..Script::default()
    })
    .await;
    let client = client_of(RecordingSource::new(&fake), fast_options());
    let pending = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call("echo", json!({}), Duration::from_secs(30))
                .await
        }
    });
    eventually("the connection", || client.is_connected()).await;
    sleep(Duration::from_millis(50)).await;
    let dropped_at = Instant::now();
    fake.abort_all();
    let error = timeout(Duration::from_secs(2), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, ClientError::Unavailable(_)), "{error:?}");
    assert!(dropped_at.elapsed() < Duration::from_millis(500));
    client.shutdown().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_reopened_on_next_use() {
    let fake = FakeGateway::start(Script::default()).await;
    let client = client_of(
        RecordingSource::new(&fake),
        ClientOptions {
            idle_timeout: Duration::from_millis(200),
            ..fast_options()
        },
    );
    client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(client.is_connected());
    eventually("the idle close", || !client.is_connected()).await;
    client
        .call("echo", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(fake.connects().len(), 2);
    client.shutdown().await;
}

#[tokio::test]
async fn subscribers_keep_receiving_events_across_reconnects() {
    let fake = FakeGateway::start(Script::default()).await;
    let client = client_of(
        RecordingSource::new(&fake),
        ClientOptions {
            idle_timeout: Duration::from_millis(100),
            ..fast_options()
        },
    );
    let mut events = client.subscribe().await.unwrap();
    fake.emit("config.changed", json!({"generation": 1}));
    assert_eq!(
        events.recv().await.unwrap().payload,
        json!({"generation": 1})
    );

    fake.abort_all();
    eventually("the drop", || !client.is_connected()).await;
    // Nobody calls: the subscriber alone makes the client reconnect, and a subscribed
    // client is never idle-closed.
    eventually("the background reconnect", || client.is_connected()).await;
    sleep(Duration::from_millis(300)).await;
    assert!(client.is_connected());
    fake.emit("config.changed", json!({"generation": 2}));
    assert_eq!(
        events.recv().await.unwrap().payload,
        json!({"generation": 2})
    );
    assert_eq!(fake.connects().len(), 2);

    drop(events);
    eventually("the idle close", || !client.is_connected()).await;
    client.shutdown().await;
}
