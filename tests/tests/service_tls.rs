//! Service-to-service TLS (docs/product/service-tls.md): every service its own process
//! with certificates of one platform CA, made by the real `openssl`. An app user signs up,
//! creates an instance and calls its gateway, so every hop (edge → auth, lifecycle,
//! channels, bridge; channels → bridge, lifecycle; bridge → lifecycle) runs over mutual
//! TLS. A plaintext client, a client without a certificate and one with a certificate of
//! another CA are all refused before any request is read; an operator with a platform
//! certificate gets through.

use std::{path::Path, process::Command, time::Duration};

use clawfleet_contracts::lifecycle::v1::{
    ListInstancesRequest, instance_service_client::InstanceServiceClient,
};
use clawfleet_tests::{
    app_user::PASSWORD,
    grpc::lifecycle_client,
    http::{Reply, client, send},
    split_mesh::{SplitMesh, SplitMeshOptions},
};
use http::Method;
use serde_json::{Value, json};
use tonic::{
    Request,
    transport::{Certificate, ClientTlsConfig, Endpoint, Identity},
};

/// Runs `openssl` with `args` in `dir`, failing the test with its output otherwise.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install -y openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA named `name` and one certificate it signs for 127.0.0.1, usable as server and
/// client (what each service presents both ways): `<name>-ca.pem`, `<name>-cert.pem`,
/// `<name>-key.pem`.
fn issue(dir: &Path, name: &str) {
    let ca_key = format!("{name}-ca-key.pem");
    let ca = format!("{name}-ca.pem");
    let key = format!("{name}-key.pem");
    let request = format!("{name}.csr");
    let cert = format!("{name}-cert.pem");
    let extensions = format!("{name}.ext");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &ca_key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &ca_key,
            "-subj",
            &format!("/CN={name} platform CA"),
            "-days",
            "2",
            "-out",
            &ca,
        ],
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            "/CN=clawfleet-service",
            "-out",
            &request,
        ],
    );
    std::fs::write(
        dir.join(&extensions),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         extendedKeyUsage=serverAuth,clientAuth\n\
         basicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &request,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &extensions,
            "-out",
            &cert,
        ],
    );
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// A lifecycle client over TLS trusting `ca`, presenting `identity` if any.
async fn tls_lifecycle(
    address: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    key: &str,
) -> Result<tonic::Response<clawfleet_contracts::lifecycle::v1::ListInstancesResponse>, String> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()));
    if let Some((cert, private_key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(private_key).unwrap(),
        ));
    }
    let channel = Endpoint::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|error| format!("{error:?}"))?;
    let mut request = Request::new(ListInstancesRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    InstanceServiceClient::new(channel)
        .list_instances(request)
        .await
        .map_err(|status| format!("{status:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_runs_over_mutual_tls_and_nothing_else_gets_in() {
    let certificates = tempfile::tempdir().unwrap();
    let certs = certificates.path();
    issue(certs, "platform");
    issue(certs, "stranger");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| certs.join(name).display().to_string();
    let options = SplitMeshOptions {
        data_dir: dir.path().join("mesh"),
        port_base: 31100,
        gateway_port_base: 31600,
        replicas: 1,
        auth_database_url: format!("sqlite://{}", dir.path().join("auth.db").display()),
        channels_env: Vec::new(),
        common_env: vec![
            ("CLAWFLEET_TLS_CERT_FILE".into(), path("platform-cert.pem")),
            ("CLAWFLEET_TLS_KEY_FILE".into(), path("platform-key.pem")),
            ("CLAWFLEET_TLS_CA_FILE".into(), path("platform-ca.pem")),
        ],
    };
    let mesh = tokio::task::spawn_blocking(move || SplitMesh::start(options))
        .await
        .unwrap()
        .unwrap();
    let edge = mesh.edge_url(0);
    let http = client();
    let call = |method: Method, route: &str, token: Option<String>, body: Option<Value>| {
        let url = format!("{edge}{route}");
        let http = http.clone();
        async move {
            let (content_type, bytes) = match body {
                Some(body) => (Some("application/json"), body.to_string().into_bytes()),
                None => (None, Vec::new()),
            };
            send(&http, method, &url, token.as_deref(), content_type, bytes)
                .await
                .expect("the edge answers")
        }
    };

    // The app's whole path works: edge → auth, edge → lifecycle, edge → bridge →
    // lifecycle (ResolveGateway) → gateway, edge → channels → bridge.
    let signed_up = call(
        Method::POST,
        "/auth/signup",
        None,
        Some(json!({"email": "tess@example.com", "password": PASSWORD, "name": "Tess"})),
    )
    .await;
    assert_eq!(
        signed_up.status,
        201,
        "{}\n{}",
        text(&signed_up),
        mesh.log_tails()
    );
    let access = signed_up.json()["accessToken"].as_str().unwrap().to_owned();
    let created = call(Method::POST, "/instances", Some(access.clone()), None).await;
    assert_eq!(created.status, 201, "{}", text(&created));
    let id = created.json()["userId"].as_str().unwrap().to_owned();
    mesh.wait_app_instance_running(0, &id, &access).await;
    let health = call(
        Method::POST,
        &format!("/instances/{id}/rpc"),
        Some(access.clone()),
        Some(json!({"method": "health"})),
    )
    .await;
    assert_eq!(health.status, 200, "{}", text(&health));
    let telegram = call(
        Method::GET,
        &format!("/instances/{id}/telegram/status"),
        Some(access.clone()),
        None,
    )
    .await;
    assert_eq!(telegram.status, 200, "{}", text(&telegram));

    let lifecycle = mesh.lifecycle.address.clone();
    let key = mesh.api_key.clone();
    // Plaintext: the operator key alone no longer reaches the service.
    let plaintext = match lifecycle_client(&lifecycle, &key).await {
        Ok(mut client) => client
            .list_instances(ListInstancesRequest::default())
            .await
            .map(|_| ())
            .map_err(|status| format!("{status:?}")),
        Err(error) => Err(format!("{error:?}")),
    };
    assert!(plaintext.is_err(), "a plaintext call got through");
    // TLS without a certificate, or with one of another CA: the handshake fails.
    let anonymous = tls_lifecycle(&lifecycle, &certs.join("platform-ca.pem"), None, &key).await;
    assert!(
        anonymous.is_err(),
        "a caller without a certificate got through"
    );
    let stranger = tls_lifecycle(
        &lifecycle,
        &certs.join("platform-ca.pem"),
        Some((
            &certs.join("stranger-cert.pem"),
            &certs.join("stranger-key.pem"),
        )),
        &key,
    )
    .await;
    assert!(stranger.is_err(), "a certificate of another CA got through");
    // A client that trusts another CA does not accept the service's certificate.
    let misled = tls_lifecycle(
        &lifecycle,
        &certs.join("stranger-ca.pem"),
        Some((
            &certs.join("platform-cert.pem"),
            &certs.join("platform-key.pem"),
        )),
        &key,
    )
    .await;
    assert!(
        misled.is_err(),
        "the service's certificate passed for another CA's"
    );
    // An operator holding a platform certificate gets in, and still needs the key.
    let operator = tls_lifecycle(
        &lifecycle,
        &certs.join("platform-ca.pem"),
        Some((
            &certs.join("platform-cert.pem"),
            &certs.join("platform-key.pem"),
        )),
        &key,
    )
    .await
    .expect("an operator with a platform certificate is served");
    assert!(
        operator
            .into_inner()
            .instances
            .iter()
            .any(|instance| instance.id == id)
    );
    let keyless = tls_lifecycle(
        &lifecycle,
        &certs.join("platform-ca.pem"),
        Some((
            &certs.join("platform-cert.pem"),
            &certs.join("platform-key.pem"),
        )),
        "not-the-operator-key-0123456789",
    )
    .await
    .expect_err("a certificate is not a credential");
    assert!(keyless.contains("Unauthenticated"), "{keyless}");
}
