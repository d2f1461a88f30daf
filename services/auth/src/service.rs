//! The AuthService gRPC handlers: translate messages to [`Accounts`] calls and back.

use std::sync::Arc;

use clawfleet_contracts::auth::v1::{
    ApplySubscriptionEventRequest, ApplySubscriptionEventResponse, DeleteAccountRequest,
    DeleteAccountResponse, GetSubscriptionRequest, GetSubscriptionResponse, GetUserRequest,
    GetUserResponse, LogInRequest, LogInResponse, LogOutRequest, LogOutResponse, RefreshRequest,
    RefreshResponse, SetUserPlanRequest, SetUserPlanResponse, SignInWithAppleRequest,
    SignInWithAppleResponse, SignInWithGoogleRequest, SignInWithGoogleResponse, SignUpRequest,
    SignUpResponse, TokenPair, User, VerifyReauthenticationRequest, VerifyReauthenticationResponse,
    auth_service_server::AuthService,
};
use clawfleet_kit::{identity::Caller, secret::ExposeSecret};
use tonic::{Request, Response, Status};

use crate::{
    account_deletion::Proof,
    accounts::{Accounts, SignedIn, UserProfile},
    metrics,
    providers::Provider,
    subscription_messages::{
        event_response, plan_of, subscription_message, subscription_owner, webhook_event,
    },
};

/// The handler tonic serves; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuthServiceHandler {
    accounts: Arc<Accounts>,
}

impl AuthServiceHandler {
    pub fn new(accounts: Arc<Accounts>) -> Self {
        Self { accounts }
    }
}

fn user_message(profile: UserProfile) -> User {
    let user = profile.user;
    let millis = user.created_at_ms;
    User {
        id: user.id,
        email: user.email.unwrap_or_default(),
        name: user.name,
        plan: user.plan.to_proto() as i32,
        email_verified: user.email_verified,
        created_at: Some(prost_types::Timestamp {
            seconds: millis.div_euclid(1000),
            nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
        }),
        providers: profile.providers,
    }
}

fn token_pair(signed_in: SignedIn) -> Option<TokenPair> {
    Some(TokenPair {
        access_token: signed_in.tokens.access.token.expose_secret().to_owned(),
        refresh_token: signed_in.tokens.refresh_token.expose_secret().to_owned(),
        expires_in: signed_in.tokens.access.expires_in,
        token_type: "Bearer".to_owned(),
        user: Some(user_message(signed_in.profile)),
    })
}

#[tonic::async_trait]
impl AuthService for AuthServiceHandler {
    async fn sign_up(
        &self,
        request: Request<SignUpRequest>,
    ) -> Result<Response<SignUpResponse>, Status> {
        Caller::of(&request)?;
        let body = request.into_inner();
        let signed_in = self
            .accounts
            .sign_up(&body.email, &body.password, &body.name)
            .await?;
        Ok(Response::new(SignUpResponse {
            tokens: token_pair(signed_in),
        }))
    }

    async fn log_in(
        &self,
        request: Request<LogInRequest>,
    ) -> Result<Response<LogInResponse>, Status> {
        Caller::of(&request)?;
        let body = request.into_inner();
        let result = self.accounts.log_in(&body.email, &body.password).await;
        metrics::sign_in("password", &result);
        let signed_in = result?;
        Ok(Response::new(LogInResponse {
            tokens: token_pair(signed_in),
        }))
    }

    async fn sign_in_with_google(
        &self,
        request: Request<SignInWithGoogleRequest>,
    ) -> Result<Response<SignInWithGoogleResponse>, Status> {
        Caller::of(&request)?;
        let body = request.into_inner();
        let result = self
            .accounts
            .sign_in_with(Provider::Google, &body.id_token, &body.nonce, "")
            .await;
        metrics::sign_in(Provider::Google.as_str(), &result);
        let signed_in = result?;
        Ok(Response::new(SignInWithGoogleResponse {
            tokens: token_pair(signed_in),
        }))
    }

    async fn sign_in_with_apple(
        &self,
        request: Request<SignInWithAppleRequest>,
    ) -> Result<Response<SignInWithAppleResponse>, Status> {
        Caller::of(&request)?;
        let body = request.into_inner();
        let result = self
            .accounts
            .sign_in_with(
                Provider::Apple,
                &body.identity_token,
                &body.nonce,
                &body.name,
            )
            .await;
        metrics::sign_in(Provider::Apple.as_str(), &result);
        let signed_in = result?;
        Ok(Response::new(SignInWithAppleResponse {
            tokens: token_pair(signed_in),
        }))
    }

    async fn refresh(
        &self,
        request: Request<RefreshRequest>,
    ) -> Result<Response<RefreshResponse>, Status> {
        Caller::of(&request)?;
        let signed_in = self
            .accounts
            .refresh(&request.into_inner().refresh_token)
            .await?;
        Ok(Response::new(RefreshResponse {
            tokens: token_pair(signed_in),
        }))
    }

    async fn log_out(
        &self,
        request: Request<LogOutRequest>,
    ) -> Result<Response<LogOutResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let revoked = self
            .accounts
            .log_out(&caller, &request.into_inner().refresh_token)
            .await?;
        Ok(Response::new(LogOutResponse { revoked }))
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let profile = self
            .accounts
            .get_user(&caller, &request.into_inner().user_id)
            .await?;
        Ok(Response::new(GetUserResponse {
            user: Some(user_message(profile)),
        }))
    }

    async fn get_subscription(
        &self,
        request: Request<GetSubscriptionRequest>,
    ) -> Result<Response<GetSubscriptionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let user_id = subscription_owner(&caller, &request.get_ref().user_id)?;
        let (record, changed) = self.accounts.subscriptions.current(&user_id).await?;
        Ok(Response::new(GetSubscriptionResponse {
            subscription: Some(subscription_message(record)),
            changed,
        }))
    }

    async fn apply_subscription_event(
        &self,
        request: Request<ApplySubscriptionEventRequest>,
    ) -> Result<Response<ApplySubscriptionEventResponse>, Status> {
        Caller::of(&request)?;
        let event = webhook_event(request.into_inner());
        let recording = self.accounts.subscriptions.apply_event(&event).await?;
        Ok(Response::new(event_response(recording)))
    }

    async fn set_user_plan(
        &self,
        request: Request<SetUserPlanRequest>,
    ) -> Result<Response<SetUserPlanResponse>, Status> {
        Caller::of(&request)?;
        let body = request.into_inner();
        let plan = plan_of(body.plan)?;
        let user_id = body.user_id.trim();
        if user_id.is_empty() {
            return Err(Status::invalid_argument("user_id is required"));
        }
        let (record, _changed) = self
            .accounts
            .subscriptions
            .set_by_operator(user_id, plan)
            .await?;
        Ok(Response::new(SetUserPlanResponse {
            subscription: Some(subscription_message(record)),
        }))
    }

    async fn verify_reauthentication(
        &self,
        request: Request<VerifyReauthenticationRequest>,
    ) -> Result<Response<VerifyReauthenticationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let proof = request.into_inner().proof.unwrap_or_default();
        let proof = Proof::from_fields(
            &proof.password,
            &proof.provider,
            &proof.provider_token,
            &proof.nonce,
        )?;
        self.accounts
            .verify_reauthentication(&caller, proof)
            .await?;
        Ok(Response::new(VerifyReauthenticationResponse {}))
    }

    async fn delete_account(
        &self,
        request: Request<DeleteAccountRequest>,
    ) -> Result<Response<DeleteAccountResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let proof = request.into_inner().proof.unwrap_or_default();
        let proof = Proof::from_fields(
            &proof.password,
            &proof.provider,
            &proof.provider_token,
            &proof.nonce,
        )?;
        let deleted = self.accounts.delete_account(&caller, proof).await?;
        Ok(Response::new(DeleteAccountResponse {
            identities_deleted: u32::try_from(deleted.identities).unwrap_or(u32::MAX),
            refresh_tokens_deleted: u32::try_from(deleted.refresh_tokens).unwrap_or(u32::MAX),
        }))
    }
}
