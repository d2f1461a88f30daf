//! Plans: the one mapping between plan names, the proto enum and what a plan allows.
//!
//! Names are parsed strictly everywhere (an unknown name is an error, never silently
//! another plan); only an *absent* plan, proto `PLAN_UNSPECIFIED`, means [`Plan::DEFAULT`]
//! (docs/product/instances.md#plans-and-resources).

use std::{fmt, str::FromStr};

use clawfleet_contracts::common::v1 as common;

use crate::error::ServiceError;

/// What an instance is sized by and how many instances an app user may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
}

/// A plan name or proto value that is not one of [`Plan::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plan {shown}: expected one of free, pro, enterprise")]
pub struct UnknownPlan {
    shown: String,
}

impl Plan {
    /// Every plan, smallest first.
    pub const ALL: [Plan; 3] = [Plan::Free, Plan::Pro, Plan::Enterprise];
    /// The names of [`Plan::ALL`], in the same order.
    pub const NAMES: [&'static str; 3] = ["free", "pro", "enterprise"];
    /// The plan of an instance or user created without one.
    pub const DEFAULT: Plan = Plan::Free;

    /// The lowercase name used in JSON, tokens and stores.
    pub fn as_str(self) -> &'static str {
        Plan::NAMES[self as usize]
    }

    /// Parses a name written by [`Plan::as_str`].
    pub fn from_name(name: &str) -> Result<Plan, UnknownPlan> {
        Plan::ALL
            .into_iter()
            .find(|plan| plan.as_str() == name)
            .ok_or_else(|| UnknownPlan {
                shown: format!("{:?}", name.chars().take(32).collect::<String>()),
            })
    }

    /// Reads the proto enum; unspecified means [`Plan::DEFAULT`].
    pub fn from_proto(value: i32) -> Result<Plan, UnknownPlan> {
        match common::Plan::try_from(value) {
            Ok(common::Plan::Unspecified) => Ok(Plan::DEFAULT),
            Ok(common::Plan::Free) => Ok(Plan::Free),
            Ok(common::Plan::Pro) => Ok(Plan::Pro),
            Ok(common::Plan::Enterprise) => Ok(Plan::Enterprise),
            Err(_) => Err(UnknownPlan {
                shown: format!("number {value}"),
            }),
        }
    }

    pub fn to_proto(self) -> common::Plan {
        match self {
            Plan::Free => common::Plan::Free,
            Plan::Pro => common::Plan::Pro,
            Plan::Enterprise => common::Plan::Enterprise,
        }
    }

    /// How many instances one app user on this plan may have.
    pub fn instance_quota(self) -> usize {
        match self {
            Plan::Free => 1,
            Plan::Pro => 3,
            Plan::Enterprise => 10,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Plan {
    type Err = UnknownPlan;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Plan::from_name(name)
    }
}

impl From<UnknownPlan> for ServiceError {
    fn from(error: UnknownPlan) -> Self {
        ServiceError::invalid_argument(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_proto_values_round_trip() {
        assert_eq!(Plan::ALL.map(Plan::as_str), ["free", "pro", "enterprise"]);
        for plan in Plan::ALL {
            assert_eq!(Plan::from_name(plan.as_str()), Ok(plan));
            assert_eq!(Plan::from_proto(plan.to_proto() as i32), Ok(plan));
            assert_eq!(plan.to_string(), plan.as_str());
        }
    }

    #[test]
    fn only_an_absent_plan_means_the_default() {
        assert_eq!(
            Plan::from_proto(common::Plan::Unspecified as i32),
            Ok(Plan::Free)
        );
        assert_eq!(
            Plan::from_proto(99).unwrap_err().to_string(),
            "unknown plan number 99: expected one of free, pro, enterprise"
        );
        for name in ["gold", "", "Free", "pro "] {
            assert!(Plan::from_name(name).is_err(), "{name:?}");
        }
        assert_eq!(
            Plan::from_name("gold").unwrap_err().to_string(),
            "unknown plan \"gold\": expected one of free, pro, enterprise"
        );
    }

    #[test]
    fn larger_plans_allow_more_instances() {
        let quotas: Vec<usize> = Plan::ALL.iter().map(|plan| plan.instance_quota()).collect();
        assert_eq!(quotas, [1, 3, 10]);
    }
}
