//! Prometheus metrics end to end. An in-process platform (one registry for the whole
//! process, served on the edge's `/metrics` and on the extra `CLAWFLEET_METRICS_PORT`)
//! gets real calls: an instance created on the local runtime and run to ready, REST reads,
//! the gRPC calls behind them, a gateway call through the bridge and a refused sign-in.
//! Both scrapes pass `promtool check metrics`, the counters of each call moved, the
//! create-to-running histogram got its sample, no label carries the instance id or the
//! user, and every metric the alerting rules and the dashboard read is exported. Then
//! each gRPC service run alone (`clawfleet <service>`) serves its own `/metrics` port,
//! which promtool also accepts.

use std::{
    collections::BTreeSet,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clawfleet_tests::{
    app_user::{AppUser, anonymous},
    http::client,
    platform::{Platform, PlatformOptions},
    prometheus::{self, Scrape},
    scenario::Operator,
    tools::{self, repo_root},
};
use serde_json::{Value, json};

/// Every name a scrape declares: its samples', and those of families with none yet
/// (a counter's `_total`, a histogram's `_bucket`, `_sum` and `_count`).
fn exported_names(scrape: &Scrape) -> BTreeSet<String> {
    let mut names = scrape.names();
    for line in scrape.text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert(name.to_owned());
        }
    }
    names
}

/// Every PromQL expression of the alerting rules and of the dashboard.
fn rule_and_dashboard_expressions() -> Vec<String> {
    let component = repo_root().join("deploy/components/monitoring");
    let rules: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(component.join("prometheus-rules.yaml")).unwrap(),
    )
    .expect("the PrometheusRule is YAML");
    let mut expressions: Vec<String> = rules["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").clone())
        .map(|rule| rule["expr"].as_str().expect("expr").to_owned())
        .collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(component.join("dashboards/clawfleet-fleet.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            expressions.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    expressions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platforms_metrics_parse_and_move_with_real_calls() {
    let data = tempfile::tempdir().unwrap();
    let mut options = PlatformOptions::new(data.path(), 29700);
    options
        .extra_env
        .push(("CLAWFLEET_METRICS_PORT".to_owned(), "0".to_owned()));
    let platform = Platform::start(options).unwrap();
    let edge_metrics = format!("{}/metrics", platform.edge_url);
    let before = prometheus::scrape(&edge_metrics).await;

    // An instance on the local runtime, run to ready; REST reads of it.
    let operator = Operator::new(&platform);
    let created = operator
        .post("/api/instances", json!({"userId": "metrics-user-1"}))
        .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = "metrics-user-1";
    operator.wait_running(id).await;
    assert_eq!(
        operator.get(&format!("/api/instances/{id}")).await.status,
        200
    );
    // A gateway call through the bridge.
    let rpc = operator
        .post(
            &format!("/api/instances/{id}/rpc"),
            json!({"method": "health"}),
        )
        .await;
    assert_eq!(rpc.status, 200, "{}", String::from_utf8_lossy(&rpc.body));
    // A sign-up (its user id must appear in no label) and a refused sign-in.
    let user = AppUser::sign_up(&platform, "metrics@example.com").await;
    let refused = anonymous(
        &platform,
        &client(),
        "/auth/login",
        json!({"email": "metrics@example.com", "password": "not the password"}),
    )
    .await;
    assert_eq!(
        refused.status,
        401,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let me = user.call(http::Method::GET, "/users/me", None).await.json();
    let user_id = me["id"].as_str().expect("a user id").to_owned();

    let after = prometheus::scrape(&edge_metrics).await;
    prometheus::check_metrics("the edge's /metrics", &after.text);
    let extra_port = platform
        .metrics_url
        .clone()
        .expect("CLAWFLEET_METRICS_PORT");
    let extra = prometheus::scrape(&extra_port).await;
    prometheus::check_metrics("the up metrics port", &extra.text);
    assert!(
        extra.text.contains("clawfleet_instances{"),
        "the same registry"
    );

    let moved =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let create_route = [
        ("route", "/api/instances"),
        ("method", "POST"),
        ("status_class", "2xx"),
    ];
    assert_eq!(
        moved("clawfleet_http_server_requests_total", &create_route),
        1.0
    );
    let get_route = [
        ("route", "/api/instances/{userId}"),
        ("method", "GET"),
        ("status_class", "2xx"),
    ];
    assert!(moved("clawfleet_http_server_requests_total", &get_route) >= 1.0);
    assert!(
        moved(
            "clawfleet_http_server_request_duration_seconds_count",
            &[("route", "/api/instances")]
        ) >= 1.0
    );
    let create_call = [
        ("rpc_service", "clawfleet.lifecycle.v1.InstanceService"),
        ("rpc_method", "CreateInstance"),
        ("status_class", "ok"),
    ];
    assert_eq!(
        moved("clawfleet_grpc_server_requests_total", &create_call),
        1.0
    );
    let bridge_call = [
        ("rpc_service", "clawfleet.bridge.v1.GatewayBridgeService"),
        ("rpc_method", "Call"),
    ];
    assert!(
        moved("clawfleet_grpc_server_requests_total", &bridge_call) >= 1.0,
        "{}",
        after.text
    );
    assert!(
        after.sum(
            "clawfleet_instances",
            &[("phase", "running"), ("runtime", "local")]
        ) >= 1.0
    );
    assert!(moved("clawfleet_instance_time_to_running_seconds_count", &[]) >= 1.0);
    assert!(after.sum("clawfleet_reconcile_passes_total", &[]) >= 1.0);
    let health = [("method", "health"), ("outcome", "ok")];
    assert!(
        moved(
            "clawfleet_bridge_gateway_call_duration_seconds_count",
            &health
        ) >= 1.0
    );
    assert!(after.sum("clawfleet_bridge_gateway_connections", &[]) >= 1.0);
    for direction in ["in", "out"] {
        assert!(
            moved(
                "clawfleet_bridge_gateway_frames_total",
                &[("direction", direction)]
            ) >= 1.0
        );
        assert!(
            moved(
                "clawfleet_bridge_gateway_frame_bytes_total",
                &[("direction", direction)]
            ) >= 1.0
        );
    }
    let rejected = [("provider", "password"), ("outcome", "rejected")];
    assert_eq!(moved("clawfleet_auth_sign_ins_total", &rejected), 1.0);
    assert!(after.sum("process_resident_memory_bytes", &[]) > 0.0);

    // Bounded labels: no instance id, no user.
    for sample in &after.samples {
        for value in sample.labels.values() {
            assert!(
                !value.contains(id) && !value.contains(&user_id) && !value.contains("metrics@"),
                "{} carries {value}",
                sample.name
            );
        }
    }

    // The rules and the dashboard read only what the code exports.
    let exported = exported_names(&after);
    for expression in rule_and_dashboard_expressions() {
        for name in prometheus::metric_names_in(&expression) {
            assert!(
                exported.contains(&name),
                "{name} (in `{expression}`) is not exported"
            );
        }
    }
}

/// A free loopback port (bound, read, released: the child binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `clawfleet <subcommand>` with `env` on free ports.
fn run_alone(subcommand: &str, env: &[(&str, String)], data_dir: &std::path::Path) -> Service {
    let mut command = Command::new(tools::clawfleet_bin());
    command
        .arg(subcommand)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CLAWFLEET_DATA_DIR", data_dir)
        .env("OPENCLAW_MANAGER_API_KEY", "test-operator-key-0123456789")
        .env(
            "CLAWFLEET_SERVICE_TOKEN",
            "test-service-token-0123456789-0123456789",
        )
        .env(
            "CLAWFLEET_SERVICE_TOKEN_DIGESTS",
            format!("edge={}", "0".repeat(64)),
        )
        .env("JWT_SECRET", "a-jwt-secret-of-at-least-thirty-two-bytes")
        .env("CLAWFLEET_LIFECYCLE_ADDR", "127.0.0.1:1")
        .env("CLAWFLEET_BRIDGE_ADDR", "127.0.0.1:1")
        .env("CLAWFLEET_TOOLCHAIN_DIR", tools::toolchain_dir())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    Service(command.spawn().expect("clawfleet runs"))
}

async fn scrape_when_up(url: &str) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let http = client();
        if let Ok(reply) =
            clawfleet_tests::http::send(&http, http::Method::GET, url, None, None, "").await
            && reply.status == 200
        {
            return prometheus::scrape(url).await;
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_grpc_service_run_alone_serves_its_own_metrics_port() {
    let services = [
        (
            "lifecycle",
            "CLAWFLEET_LIFECYCLE_PORT",
            "CLAWFLEET_LIFECYCLE_METRICS_PORT",
            "clawfleet_instances{",
        ),
        (
            "bridge",
            "CLAWFLEET_BRIDGE_PORT",
            "CLAWFLEET_BRIDGE_METRICS_PORT",
            "clawfleet_bridge_gateway_connections ",
        ),
        (
            "channels",
            "CLAWFLEET_CHANNELS_PORT",
            "CLAWFLEET_CHANNELS_METRICS_PORT",
            "clawfleet_grpc_server_in_flight_requests{rpc_service=\"clawfleet.channels.v1.ChannelService\"} 0",
        ),
        (
            "auth",
            "CLAWFLEET_AUTH_PORT",
            "CLAWFLEET_AUTH_METRICS_PORT",
            "# TYPE clawfleet_auth_sign_ins_total counter",
        ),
    ];
    for (subcommand, port_key, metrics_key, expected) in services {
        let data = tempfile::tempdir().unwrap();
        let metrics_port = free_port();
        let _service = run_alone(
            subcommand,
            &[
                (port_key, free_port().to_string()),
                (metrics_key, metrics_port.to_string()),
            ],
            data.path(),
        );
        let url = format!("http://127.0.0.1:{metrics_port}/metrics");
        let scrape = scrape_when_up(&url).await;
        prometheus::check_metrics(&format!("clawfleet {subcommand}'s /metrics"), &scrape.text);
        assert!(
            scrape.text.contains(expected),
            "{subcommand}: {expected} in {}",
            scrape.text
        );
        assert!(scrape.sum("process_open_fds", &[]) > 0.0, "{subcommand}");
    }
}
