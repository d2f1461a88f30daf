//! An app user of a running platform: signs up or in over the App API and calls it with
//! the access token, as the mobile app does.

use http::Method;
use serde_json::{Value, json};

use crate::{
    http::{HttpClient, Reply, send},
    platform::Platform,
};

pub struct AppUser<'a> {
    pub platform: &'a Platform,
    pub client: HttpClient,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl<'a> AppUser<'a> {
    /// Signs up with `email` and a fixed password; panics with the answer otherwise.
    pub async fn sign_up(platform: &'a Platform, email: &str) -> AppUser<'a> {
        let client = crate::http::client();
        let reply = anonymous(
            platform,
            &client,
            "/auth/signup",
            json!({"email": email, "password": PASSWORD, "name": "Test User"}),
        )
        .await;
        assert_eq!(
            reply.status,
            201,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let tokens = reply.json();
        AppUser {
            platform,
            client,
            email: email.to_owned(),
            access_token: tokens["accessToken"].as_str().unwrap().to_owned(),
            refresh_token: tokens["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let url = format!("{}{path}", self.platform.edge_url);
        let (content_type, bytes) = match body {
            Some(body) => (Some("application/json"), body.to_string().into_bytes()),
            None => (None, Vec::new()),
        };
        send(
            &self.client,
            method,
            &url,
            Some(&self.access_token),
            content_type,
            bytes,
        )
        .await
        .expect("edge answers")
    }
}

/// The password every test user signs up with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A JSON POST without credentials (the `/auth/*` routes).
pub async fn anonymous(platform: &Platform, client: &HttpClient, path: &str, body: Value) -> Reply {
    post_raw(platform, client, path, body.to_string().into_bytes()).await
}

/// A POST of raw bytes labelled as JSON, for malformed bodies.
pub async fn post_raw(
    platform: &Platform,
    client: &HttpClient,
    path: &str,
    body: Vec<u8>,
) -> Reply {
    let url = format!("{}{path}", platform.edge_url);
    send(
        client,
        Method::POST,
        &url,
        None,
        Some("application/json"),
        body,
    )
    .await
    .expect("edge answers")
}
