use prometheus_client::metrics::{counter::Counter, family::Family};

use super::*;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct Labels {
    outcome: &'static str,
}

#[test]
fn prometheus_is_answered_openmetrics_and_everyone_else_the_text_format() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
    assert_eq!(Format::negotiate(None), Format::PrometheusText);
}

#[test]
fn counters_carry_total_in_their_family_name_in_the_text_format() {
    let family: Family<Labels, Counter> =
        crate::metrics::counter("clawfleet_exposition_test_events", "Test events.");
    family.get_or_create(&Labels { outcome: "ok" }).inc();

    let text = encode(Format::PrometheusText).unwrap();
    assert!(
        text.contains("# TYPE clawfleet_exposition_test_events_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("clawfleet_exposition_test_events_total{outcome=\"ok\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");

    let openmetrics = encode(Format::OpenMetrics).unwrap();
    assert!(openmetrics.contains("# TYPE clawfleet_exposition_test_events counter\n"));
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
}

#[test]
fn process_metrics_are_in_every_scrape() {
    let text = encode(Format::PrometheusText).unwrap();
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(name)),
            "{name} missing from {text}"
        );
    }
}

#[tokio::test]
async fn the_metrics_port_answers_get_metrics_until_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = ShutdownToken::new();
    let server = tokio::spawn(serve(listener, shutdown.clone()));

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    connection
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: m\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    connection.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("text/plain; version=0.0.4"), "{answer}");
    assert!(answer.contains("process_open_fds"), "{answer}");

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
