//! Applying a user's plan (docs/product/subscriptions.md#applying-a-plan): after every
//! change the auth service reports — a webhook event, a subscriber read, an operator's
//! choice — the edge hands plan and standing to the lifecycle's SetOwnerPlan, and tells
//! the caller when the user now owns more instances than the plan allows. Nothing is
//! ever deleted for a downgrade.

use clawfleet_contracts::{auth::v1::Subscription, lifecycle::v1::SetOwnerPlanRequest};
use clawfleet_kit::{identity::Caller, plan::Plan};
use serde_json::{Value, json};

use crate::{error::ApiError, instance_json::Rfc3339, state::EdgeState};

/// Largest page the edge asks for when counting a user's instances.
const COUNT_PAGE_SIZE: u32 = 100;

/// Applies `subscription` to the user's instances and key; answers how many instances
/// the user owns (when it could be counted).
pub async fn apply(
    state: &EdgeState,
    caller: &Caller,
    subscription: &Subscription,
) -> Result<Option<usize>, ApiError> {
    let applied = state
        .lifecycle()
        .set_owner_plan(
            caller,
            SetOwnerPlanRequest {
                owner: subscription.user_id.clone(),
                plan: subscription.plan,
                subscription_active: subscription.active,
            },
        )
        .await?;
    for instance in applied.iter().flatten() {
        state.instances().remember(instance);
    }
    match applied {
        Some(instances) => Ok(Some(instances.len())),
        None => count_owned(state, caller, &subscription.user_id)
            .await
            .map(Some),
    }
}

/// How many instances `owner` has, page by page.
pub async fn count_owned(
    state: &EdgeState,
    caller: &Caller,
    owner: &str,
) -> Result<usize, ApiError> {
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let page = state
            .lifecycle()
            .list_of(caller, owner.to_owned(), COUNT_PAGE_SIZE, page_token)
            .await?;
        count += page.instances.len();
        page_token = page
            .page
            .map(|page| page.next_page_token)
            .unwrap_or_default();
        if page_token.is_empty() {
            return Ok(count);
        }
    }
}

/// What to tell a user who owns more instances than `plan` allows.
pub fn over_quota_notice(plan: Plan, owned: usize) -> Option<String> {
    let quota = plan.instance_quota();
    (owned > quota).then(|| {
        format!(
            "the {} plan allows {quota} instance{}, and you have {owned}; nothing was deleted, \
             and every instance keeps running, but no new one can be created until you delete {} \
             or upgrade your plan",
            plan.as_str(),
            if quota == 1 { "" } else { "s" },
            owned - quota,
        )
    })
}

/// The subscription as the App and manager APIs show it.
pub fn subscription_json(subscription: &Subscription, owned: Option<usize>) -> Value {
    let plan = Plan::from_proto(subscription.plan).unwrap_or(Plan::DEFAULT);
    let mut body = json!({
        "userId": subscription.user_id,
        "plan": plan.as_str(),
        "active": subscription.active,
        "entitlements": subscription.entitlements,
        "expiresAt": Rfc3339::from_timestamp(subscription.expires_at.as_ref()),
        "source": subscription.source,
        "instanceQuota": plan.instance_quota(),
    });
    if let Some(owned) = owned {
        body["instances"] = json!(owned);
        if let Some(notice) = over_quota_notice(plan, owned) {
            body["notice"] = json!(notice);
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_downgrade_over_quota_says_what_to_do() {
        assert_eq!(over_quota_notice(Plan::Pro, 3), None);
        let notice = over_quota_notice(Plan::Free, 3).unwrap();
        assert!(
            notice.contains("allows 1 instance, and you have 3"),
            "{notice}"
        );
        assert!(notice.contains("nothing was deleted"), "{notice}");
        assert!(notice.contains("delete 2 or upgrade"), "{notice}");
    }
}
