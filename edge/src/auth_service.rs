//! The edge's client of the auth service: sign-up, sign-in, token refresh, logout and
//! the user profile.

use clawfleet_kit::tls::ServiceTls;
use std::time::Duration;

use clawfleet_contracts::auth::v1::{
    ApplySubscriptionEventRequest, ApplySubscriptionEventResponse, DeleteAccountRequest,
    DeleteAccountResponse, GetSubscriptionRequest, GetSubscriptionResponse, GetUserRequest,
    LogInRequest, LogOutRequest, Reauthentication, RefreshRequest, SetUserPlanRequest,
    SignInWithAppleRequest, SignInWithGoogleRequest, SignUpRequest, Subscription, TokenPair, User,
    VerifyReauthenticationRequest, auth_service_client::AuthServiceClient,
};
use clawfleet_kit::client::GrpcChannel;
use clawfleet_kit::identity::Caller;

use crate::{
    error::ApiError,
    upstream::{Stamper, UpstreamClientError, lazy_channel},
};

/// Named in errors about the upstream.
const SERVICE_NAME: &str = "auth service";
/// Password hashing takes tens of milliseconds; a loaded machine more.
const AUTH_CALL_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct AuthClient {
    client: AuthServiceClient<GrpcChannel>,
    stamper: Stamper,
}

impl AuthClient {
    /// Builds the client without connecting; must run inside a tokio runtime.
    pub fn connect_lazy(
        address: &str,
        tls: Option<&ServiceTls>,
        service_token: &str,
    ) -> Result<Self, UpstreamClientError> {
        Ok(Self {
            client: AuthServiceClient::new(lazy_channel(address, tls, |endpoint| {
                endpoint.timeout(AUTH_CALL_DEADLINE)
            })?),
            stamper: Stamper::new(service_token)?,
        })
    }

    fn request<T>(&self, caller: &Caller, message: T) -> Result<tonic::Request<T>, ApiError> {
        let mut request = self.stamper.stamped(caller, message)?;
        request.set_timeout(AUTH_CALL_DEADLINE);
        Ok(request)
    }

    /// Sign-in calls come from nobody yet: the edge makes them as itself.
    fn anonymous<T>(&self, message: T) -> Result<tonic::Request<T>, ApiError> {
        self.request(&Caller::service("edge"), message)
    }

    pub async fn sign_up(&self, message: SignUpRequest) -> Result<TokenPair, ApiError> {
        let request = self.anonymous(message)?;
        let response = self
            .client
            .clone()
            .sign_up(request)
            .await
            .map_err(upstream)?;
        tokens(response.into_inner().tokens)
    }

    pub async fn log_in(&self, message: LogInRequest) -> Result<TokenPair, ApiError> {
        let request = self.anonymous(message)?;
        let response = self
            .client
            .clone()
            .log_in(request)
            .await
            .map_err(upstream)?;
        tokens(response.into_inner().tokens)
    }

    pub async fn google(&self, message: SignInWithGoogleRequest) -> Result<TokenPair, ApiError> {
        let request = self.anonymous(message)?;
        let response = self
            .client
            .clone()
            .sign_in_with_google(request)
            .await
            .map_err(upstream)?;
        tokens(response.into_inner().tokens)
    }

    pub async fn apple(&self, message: SignInWithAppleRequest) -> Result<TokenPair, ApiError> {
        let request = self.anonymous(message)?;
        let response = self
            .client
            .clone()
            .sign_in_with_apple(request)
            .await
            .map_err(upstream)?;
        tokens(response.into_inner().tokens)
    }

    pub async fn refresh(&self, message: RefreshRequest) -> Result<TokenPair, ApiError> {
        let request = self.anonymous(message)?;
        let response = self
            .client
            .clone()
            .refresh(request)
            .await
            .map_err(upstream)?;
        tokens(response.into_inner().tokens)
    }

    pub async fn log_out(&self, caller: &Caller, message: LogOutRequest) -> Result<bool, ApiError> {
        let request = self.request(caller, message)?;
        let response = self
            .client
            .clone()
            .log_out(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner().revoked)
    }

    pub async fn me(&self, caller: &Caller) -> Result<User, ApiError> {
        let request = self.request(caller, GetUserRequest::default())?;
        let response = self
            .client
            .clone()
            .get_user(request)
            .await
            .map_err(upstream)?;
        response
            .into_inner()
            .user
            .ok_or_else(|| ApiError::internal("auth service answered without a user"))
    }
}

/// Plans and account deletion (docs/product/subscriptions.md, docs/product/app-api.md).
impl AuthClient {
    /// The user's current plan (read through RevenueCat when configured) and whether
    /// this read changed it. Empty `user_id`: the calling app user.
    pub async fn subscription(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<GetSubscriptionResponse, ApiError> {
        let request = self.request(
            caller,
            GetSubscriptionRequest {
                user_id: user_id.to_owned(),
            },
        )?;
        let response = self
            .client
            .clone()
            .get_subscription(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner())
    }

    /// Records a webhook event (the edge calls as itself: nobody signed in sent it).
    pub async fn apply_subscription_event(
        &self,
        message: ApplySubscriptionEventRequest,
    ) -> Result<ApplySubscriptionEventResponse, ApiError> {
        let request = self.anonymous(message)?;
        let response = self
            .client
            .clone()
            .apply_subscription_event(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner())
    }

    pub async fn set_user_plan(
        &self,
        caller: &Caller,
        message: SetUserPlanRequest,
    ) -> Result<Subscription, ApiError> {
        let request = self.request(caller, message)?;
        let response = self
            .client
            .clone()
            .set_user_plan(request)
            .await
            .map_err(upstream)?;
        response
            .into_inner()
            .subscription
            .ok_or_else(|| ApiError::internal("auth service answered without a subscription"))
    }

    pub async fn verify_reauthentication(
        &self,
        caller: &Caller,
        proof: Reauthentication,
    ) -> Result<(), ApiError> {
        let request = self.request(caller, VerifyReauthenticationRequest { proof: Some(proof) })?;
        self.client
            .clone()
            .verify_reauthentication(request)
            .await
            .map_err(upstream)?;
        Ok(())
    }

    pub async fn delete_account(
        &self,
        caller: &Caller,
        proof: Reauthentication,
    ) -> Result<DeleteAccountResponse, ApiError> {
        let request = self.request(caller, DeleteAccountRequest { proof: Some(proof) })?;
        let response = self
            .client
            .clone()
            .delete_account(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner())
    }
}

fn upstream(status: tonic::Status) -> ApiError {
    ApiError::from_upstream_status(&status, SERVICE_NAME)
}

fn tokens(pair: Option<TokenPair>) -> Result<TokenPair, ApiError> {
    pair.ok_or_else(|| ApiError::internal("auth service answered without tokens"))
}
