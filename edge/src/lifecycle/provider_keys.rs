//! The lifecycle calls behind the key and usage routes (docs/product/provider-keys.md).

use clawfleet_contracts::lifecycle::v1::{
    GetInstanceUsageRequest, GetInstanceUsageResponse, RotateProviderKeyRequest,
    RotateProviderKeyResponse,
};
use clawfleet_kit::identity::Caller;

use super::{LifecycleClient, upstream};
use crate::error::ApiError;

impl LifecycleClient {
    pub async fn rotate_provider_key(
        &self,
        caller: &Caller,
        id: String,
    ) -> Result<RotateProviderKeyResponse, ApiError> {
        let request = self.unary(caller, RotateProviderKeyRequest { id })?;
        let response = self
            .client
            .clone()
            .rotate_provider_key(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner())
    }

    pub async fn instance_usage(
        &self,
        caller: &Caller,
        id: String,
    ) -> Result<GetInstanceUsageResponse, ApiError> {
        let request = self.unary(caller, GetInstanceUsageRequest { id })?;
        let response = self
            .client
            .clone()
            .get_instance_usage(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner())
    }
}
