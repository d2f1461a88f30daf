//! The instance's data volume: gateway state, credentials and workspace.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements},
    apimachinery::pkg::api::resource::Quantity,
};

use super::metadata;
use crate::{
    model::InstanceSpec,
    runtime::kubernetes::{config::KubernetesConfig, kinds::ObjectKind, plan::DATA_VOLUME_SIZE},
};

pub fn pvc(config: &KubernetesConfig, spec: &InstanceSpec) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: metadata(config, ObjectKind::PersistentVolumeClaim, &spec.id),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: config.storage_class.clone(),
            volume_mode: Some("Filesystem".to_owned()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(DATA_VOLUME_SIZE.to_owned()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}
