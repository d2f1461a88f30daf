//! What each plan gets on Kubernetes (docs/product/instances.md#plans-and-resources). Quantities are written in the
//! canonical form the apiserver stores, so a re-apply never reads as a change.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity,
};

use crate::model::Plan;

/// Requests and limits of the gateway container: `(cpu, memory)` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanResources {
    pub requests: (&'static str, &'static str),
    pub limits: (&'static str, &'static str),
}

pub fn plan_resources(plan: Plan) -> PlanResources {
    match plan {
        Plan::Free => PlanResources {
            requests: ("250m", "512Mi"),
            limits: ("500m", "1Gi"),
        },
        Plan::Pro => PlanResources {
            requests: ("500m", "1Gi"),
            limits: ("2", "4Gi"),
        },
        Plan::Enterprise => PlanResources {
            requests: ("1", "2Gi"),
            limits: ("4", "8Gi"),
        },
    }
}

/// One volume for config, state and workspace (docs/product/instances.md#plans-and-resources).
pub const DATA_VOLUME_SIZE: &str = "5Gi";
/// Scratch space of the read-only root filesystem.
pub const TMP_SIZE_LIMIT: &str = "1Gi";
impl PlanResources {
    pub fn requirements(self) -> ResourceRequirements {
        let pair = |(cpu, memory): (&str, &str)| {
            BTreeMap::from([
                ("cpu".to_owned(), Quantity(cpu.to_owned())),
                ("memory".to_owned(), Quantity(memory.to_owned())),
            ])
        };
        ResourceRequirements {
            requests: Some(pair(self.requests)),
            limits: Some(pair(self.limits)),
            ..ResourceRequirements::default()
        }
    }
}
