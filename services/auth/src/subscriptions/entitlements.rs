//! What RevenueCat entitlements grant: the largest plan among the active ones that the
//! table maps, or — when every mapped entitlement has ended — the free plan with the
//! subscription lapsed (docs/product/subscriptions.md#plans-from-entitlements).

use clawfleet_kit::plan::Plan;

use super::config::EntitlementPlans;
use crate::store::SubscriptionState;

/// One entitlement as RevenueCat reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    pub id: String,
    /// `None`: it never ends (a lifetime purchase).
    pub expires_at_ms: Option<i64>,
    /// Access continues until then while the store retries a failed payment.
    pub grace_until_ms: Option<i64>,
}

impl Entitlement {
    fn is_active(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|expires| expires > now_ms)
            || self.grace_until_ms.is_some_and(|grace| grace > now_ms)
    }

    /// When access ends (`None`: never).
    fn ends_at_ms(&self) -> Option<i64> {
        let expires = self.expires_at_ms?;
        Some(
            self.grace_until_ms
                .map_or(expires, |grace| grace.max(expires)),
        )
    }
}

/// The plan and standing `entitlements` grant at `now_ms`.
pub fn state_from_entitlements(
    plans: &EntitlementPlans,
    entitlements: &[Entitlement],
    now_ms: i64,
) -> SubscriptionState {
    let mapped: Vec<(&Entitlement, Plan)> = entitlements
        .iter()
        .filter_map(|entitlement| Some((entitlement, plans.plan_of(&entitlement.id)?)))
        .collect();
    let active: Vec<&(&Entitlement, Plan)> = mapped
        .iter()
        .filter(|(entitlement, _)| entitlement.is_active(now_ms))
        .collect();
    let Some(plan) = active
        .iter()
        .map(|(_, plan)| *plan)
        .max_by_key(|plan| *plan as u8)
    else {
        return SubscriptionState {
            plan: Plan::Free,
            // Never subscribed is good standing; every paid entitlement ended is a lapse.
            active: mapped.is_empty(),
            entitlements: Vec::new(),
            expires_at_ms: None,
        };
    };
    let ends: Vec<Option<i64>> = active
        .iter()
        .map(|(entitlement, _)| entitlement.ends_at_ms())
        .collect();
    let expires_at_ms = if ends.contains(&None) {
        None
    } else {
        ends.into_iter().flatten().max()
    };
    let mut ids: Vec<String> = active
        .iter()
        .map(|(entitlement, _)| entitlement.id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    SubscriptionState {
        plan,
        active: true,
        entitlements: ids,
        expires_at_ms,
    }
}

/// The fields of a webhook event that decide access.
#[derive(Debug, Clone)]
pub struct EventFacts<'a> {
    pub event_type: &'a str,
    pub entitlement_ids: &'a [String],
    pub expiration_at_ms: Option<i64>,
    pub grace_period_expiration_at_ms: Option<i64>,
}

/// Event types after which the event's entitlements are active until its expiration.
const GRANTING: [&str; 7] = [
    "INITIAL_PURCHASE",
    "RENEWAL",
    "UNCANCELLATION",
    "PRODUCT_CHANGE",
    "NON_RENEWING_PURCHASE",
    "SUBSCRIPTION_EXTENDED",
    "TEMPORARY_ENTITLEMENT_GRANT",
];

/// The state one event grants, or `None` when the event does not change access:
/// CANCELLATION (access lasts until EXPIRATION), BILLING_ISSUE (the store's grace
/// continues access), SUBSCRIPTION_PAUSED, TEST, TRANSFER, unknown types, and events
/// naming no entitlement the table maps.
pub fn state_from_event(
    plans: &EntitlementPlans,
    event: &EventFacts<'_>,
    now_ms: i64,
) -> Option<SubscriptionState> {
    let maps_any = event
        .entitlement_ids
        .iter()
        .any(|id| plans.plan_of(id).is_some());
    if !maps_any {
        return None;
    }
    if event.event_type == "EXPIRATION" {
        return Some(SubscriptionState {
            plan: Plan::Free,
            active: false,
            entitlements: Vec::new(),
            expires_at_ms: None,
        });
    }
    if !GRANTING.contains(&event.event_type) {
        return None;
    }
    let entitlements: Vec<Entitlement> = event
        .entitlement_ids
        .iter()
        .map(|id| Entitlement {
            id: id.clone(),
            expires_at_ms: event.expiration_at_ms,
            grace_until_ms: event.grace_period_expiration_at_ms,
        })
        .collect();
    Some(state_from_entitlements(plans, &entitlements, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 86_400_000;

    fn plans() -> EntitlementPlans {
        EntitlementPlans::parse("pro=pro,enterprise=enterprise").unwrap()
    }

    fn entitlement(id: &str, expires: Option<i64>, grace: Option<i64>) -> Entitlement {
        Entitlement {
            id: id.to_owned(),
            expires_at_ms: expires,
            grace_until_ms: grace,
        }
    }

    #[test]
    fn the_largest_active_mapped_entitlement_decides() {
        let state = state_from_entitlements(
            &plans(),
            &[
                entitlement("pro", Some(NOW + DAY), None),
                entitlement("enterprise", Some(NOW + 2 * DAY), None),
                entitlement("stickers", None, None),
            ],
            NOW,
        );
        assert_eq!(state.plan, Plan::Enterprise);
        assert!(state.active);
        assert_eq!(state.entitlements, ["enterprise", "pro"]);
        assert_eq!(state.expires_at_ms, Some(NOW + 2 * DAY));
    }

    #[test]
    fn grace_keeps_access_and_ending_every_paid_entitlement_is_a_lapse() {
        let in_grace = state_from_entitlements(
            &plans(),
            &[entitlement("pro", Some(NOW - DAY), Some(NOW + DAY))],
            NOW,
        );
        assert_eq!((in_grace.plan, in_grace.active), (Plan::Pro, true));
        let lapsed =
            state_from_entitlements(&plans(), &[entitlement("pro", Some(NOW - DAY), None)], NOW);
        assert_eq!((lapsed.plan, lapsed.active), (Plan::Free, false));
        let never = state_from_entitlements(&plans(), &[], NOW);
        assert_eq!((never.plan, never.active), (Plan::Free, true));
        let lifetime = state_from_entitlements(&plans(), &[entitlement("pro", None, None)], NOW);
        assert_eq!((lifetime.plan, lifetime.expires_at_ms), (Plan::Pro, None));
    }

    #[test]
    fn events_grant_lapse_or_leave_access_alone() {
        let ids = vec!["pro".to_owned()];
        let facts = |event_type| EventFacts {
            event_type,
            entitlement_ids: &ids,
            expiration_at_ms: Some(NOW + DAY),
            grace_period_expiration_at_ms: None,
        };
        let bought = state_from_event(&plans(), &facts("INITIAL_PURCHASE"), NOW).unwrap();
        assert_eq!((bought.plan, bought.active), (Plan::Pro, true));
        let expired = state_from_event(&plans(), &facts("EXPIRATION"), NOW).unwrap();
        assert_eq!((expired.plan, expired.active), (Plan::Free, false));
        for no_change in ["CANCELLATION", "BILLING_ISSUE", "TEST", "SOMETHING_NEW"] {
            assert_eq!(
                state_from_event(&plans(), &facts(no_change), NOW),
                None,
                "{no_change}"
            );
        }
        let unmapped = vec!["stickers".to_owned()];
        let other = EventFacts {
            entitlement_ids: &unmapped,
            ..facts("INITIAL_PURCHASE")
        };
        assert_eq!(state_from_event(&plans(), &other, NOW), None);
    }
}
