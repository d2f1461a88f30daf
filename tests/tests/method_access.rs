//! Every method of every gRPC service of a running platform, called with every
//! credential (the operator key, each calling service's token, a wrong token, the root,
//! none): admitted exactly when `kit::method_access` lists the caller, so the table and
//! what the servers enforce cannot drift apart.
//!
//! Each call carries a body that is not protobuf: an admitted call fails to decode after
//! the access layer, so no handler runs and nothing is created, stopped or executed.

use std::{str::FromStr, time::Duration};

use bytes::{Buf, BufMut};
use clawfleet_contracts::{
    auth::v1::auth_service_server::SERVICE_NAME as AUTH,
    bridge::v1::gateway_bridge_service_server::SERVICE_NAME as BRIDGE,
    channels::v1::channel_service_server::SERVICE_NAME as CHANNELS,
    lifecycle::v1::instance_service_server::SERVICE_NAME as LIFECYCLE,
};
use clawfleet_kit::{
    access_layer::DENIED_PREFIX, identity::UNAUTHENTICATED_MESSAGE, method_access::METHOD_ACCESS,
    principal::Principal,
};
use clawfleet_tests::platform::{Platform, PlatformOptions};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::{Channel, Endpoint},
};

/// Sends and receives raw bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// Field 0 with wire type 7: no protobuf message starts like this.
const NOT_PROTOBUF: [u8; 3] = [0xff, 0xff, 0xff];

/// The outcome of one call, as far as access goes.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    Admitted,
    Refused,
    Unauthenticated,
}

async fn call(channel: Channel, path: &str, bearer: Option<&str>) -> Access {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("the channel is ready");
    let mut request = tonic::Request::new(NOT_PROTOBUF.to_vec());
    if let Some(token) = bearer {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let path = http::uri::PathAndQuery::from_str(path).unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        grpc.server_streaming(request, path, RawCodec),
    )
    .await
    .expect("every call is answered");
    match outcome {
        Ok(_) => Access::Admitted,
        Err(status)
            if status.code() == Code::PermissionDenied
                && status.message().starts_with(DENIED_PREFIX) =>
        {
            Access::Refused
        }
        Err(status)
            if status.code() == Code::Unauthenticated
                && status.message() == UNAUTHENTICATED_MESSAGE =>
        {
            Access::Unauthenticated
        }
        // The handler's own answer (here: the body did not decode): the layer let it in.
        Err(_) => Access::Admitted,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_method_admits_exactly_the_callers_the_table_lists() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 29700)).unwrap();
    let options = &platform.options;
    let address = |service: &str| match service {
        s if s == LIFECYCLE => platform.lifecycle_address.clone(),
        s if s == BRIDGE => platform.bridge_address.clone(),
        s if s == CHANNELS => platform.channels_address.clone(),
        s if s == AUTH => platform.auth_address.clone(),
        other => panic!("no address for {other}"),
    };
    let bearer = |principal: Principal| match principal {
        Principal::Operator => options.api_key.clone(),
        service => options.service_token(service),
    };
    let mut checked = 0;
    for row in METHOD_ACCESS {
        let channel = Endpoint::from_shared(format!("http://{}", address(row.service)))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let path = format!("/{}/{}", row.service, row.method);
        for principal in Principal::ALL {
            let expected = if row.callers.contains(&principal) {
                Access::Admitted
            } else {
                Access::Refused
            };
            let got = call(channel.clone(), &path, Some(&bearer(principal))).await;
            assert_eq!(got, expected, "{} calling {path}", principal.name());
            checked += 1;
        }
        for (name, token) in [
            ("no token", None),
            (
                "a wrong token",
                Some("not-a-credential-of-this-platform-0123"),
            ),
            ("the root", Some(options.internal_token.as_str())),
        ] {
            let got = call(channel.clone(), &path, token).await;
            assert_eq!(got, Access::Unauthenticated, "{name} calling {path}");
            checked += 1;
        }
    }
    assert_eq!(checked, METHOD_ACCESS.len() * 7);

    // Health stays open to probes; a method outside the table is refused to everyone.
    let lifecycle = Endpoint::from_shared(format!("http://{}", platform.lifecycle_address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(
        call(lifecycle.clone(), "/grpc.health.v1.Health/Check", None).await,
        Access::Admitted
    );
    assert_eq!(
        call(
            lifecycle,
            &format!("/{LIFECYCLE}/DropEverything"),
            Some(&options.api_key)
        )
        .await,
        Access::Refused
    );
}
