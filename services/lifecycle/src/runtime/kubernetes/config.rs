//! How the Kubernetes runtime reaches the cluster and what it puts there, read from the
//! environment (docs/product/configuration.md#kubernetes-runtime) with the platform's defaults.

use std::{path::PathBuf, time::Duration};

use clawfleet_kit::config::{self, ConfigError, EnvSource, keys};

pub const DEFAULT_NAMESPACE: &str = "openclaw";
pub const DEFAULT_IMAGE_TAG: &str = "latest";
pub const DEFAULT_GATEWAY_PORT: u16 = 18789;
/// Enough to keep a real apiserver busy without queueing behind its own fairness limits.
pub const DEFAULT_APPLY_CONCURRENCY: usize = 16;
pub const NOVNC_PORT: u16 = 6080;

/// Label the platform's bridge pods carry; only they reach the instances' ports.
pub const BRIDGE_POD_LABEL: (&str, &str) = ("app.kubernetes.io/component", "gateway-bridge");

/// Where the runtime gets its cluster credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAccess {
    /// In-cluster service account, else `~/.kube/config` (kube's inference).
    Infer,
    /// A kubeconfig file (`KUBECONFIG`).
    Kubeconfig(PathBuf),
}

/// Everything the Kubernetes runtime needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    pub access: ClusterAccess,
    pub namespace: String,
    /// The gateway image, `repo:tag`.
    pub image: String,
    pub gateway_port: u16,
    /// `Some` creates an Ingress + ManagedCertificate per instance at `<id>.<base>`.
    pub ingress_domain_base: Option<String>,
    pub runtime_class: Option<String>,
    pub storage_class: Option<String>,
    /// The platform bridge's device id: each gateway's runner approves its pairing (and
    /// only its); `None` approves nothing.
    pub platform_device_id: Option<String>,
    pub bridge_namespace: Option<String>,
    pub trusted_proxies: Vec<String>,
    /// How long a gateway may run with `/readyz` failing after its startup probe
    /// passed before it is reported as an error rather than starting.
    pub ready_grace: Duration,
    /// How long the runtime waits for its first complete view of the cluster at start.
    pub sync_timeout: Duration,
    /// How long one apiserver call may take, the client's own retries of 429/503/504
    /// included, before the caller is told the cluster is unavailable.
    pub api_timeout: Duration,
    /// How the leader Lease among lifecycle replicas is held.
    pub lease: super::lease::LeaseTiming,
    /// Instances applied at once in the background (docs/capacity.md#accept-then-apply).
    pub apply_concurrency: usize,
}

impl KubernetesConfig {
    /// Defaults for `namespace` with `image`; used by tests and as the base of the loader.
    pub fn new(
        access: ClusterAccess,
        namespace: impl Into<String>,
        image: impl Into<String>,
    ) -> Self {
        Self {
            access,
            namespace: namespace.into(),
            image: image.into(),
            gateway_port: DEFAULT_GATEWAY_PORT,
            ingress_domain_base: None,
            runtime_class: None,
            storage_class: None,
            platform_device_id: None,
            bridge_namespace: None,
            trusted_proxies: Vec::new(),
            ready_grace: Duration::from_secs(60),
            sync_timeout: Duration::from_secs(60),
            api_timeout: Duration::from_secs(15),
            lease: super::lease::LeaseTiming::default(),
            apply_concurrency: DEFAULT_APPLY_CONCURRENCY,
        }
    }

    /// Reads the `OPENCLAW_*` settings (docs/product/configuration.md#kubernetes-runtime) and the kubernetes-only extras above.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let access = match config::optional(env, keys::KUBECONFIG) {
            Some(path) => ClusterAccess::Kubeconfig(PathBuf::from(path)),
            None => ClusterAccess::Infer,
        };
        let namespace = config::optional(env, keys::OPENCLAW_NAMESPACE)
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        if !is_dns_label(&namespace) {
            return Err(ConfigError::Invalid {
                key: keys::OPENCLAW_NAMESPACE,
                reason: format!("{namespace:?} is not a DNS-1123 label"),
            });
        }
        // No default: the image carries the WhatsApp plugin and NoVNC, so it is the
        // operator's build, never a guess.
        let repo = config::required(env, keys::OPENCLAW_IMAGE_REPO)?;
        let tag = config::optional(env, keys::OPENCLAW_IMAGE_TAG)
            .unwrap_or_else(|| DEFAULT_IMAGE_TAG.to_owned());
        let mut config = Self::new(access, namespace, format!("{repo}:{tag}"));
        config.gateway_port =
            config::parsed_or(env, keys::OPENCLAW_GATEWAY_PORT, DEFAULT_GATEWAY_PORT)?;
        if config::flag_or(env, keys::OPENCLAW_INGRESS_ENABLED, false)? {
            config.ingress_domain_base = Some(config::required(env, keys::OPENCLAW_DOMAIN_BASE)?);
        }
        config.apply_concurrency = config::parsed_or(
            env,
            keys::OPENCLAW_APPLY_CONCURRENCY,
            DEFAULT_APPLY_CONCURRENCY,
        )?
        .max(1);
        config.runtime_class = config::optional(env, keys::OPENCLAW_RUNTIME_CLASS);
        config.storage_class = config::optional(env, keys::OPENCLAW_STORAGE_CLASS);
        config.bridge_namespace = config::optional(env, keys::CLAWFLEET_PLATFORM_NAMESPACE);
        config.platform_device_id = config::optional(env, keys::CLAWFLEET_PLATFORM_DEVICE_ID);
        config.trusted_proxies = config::optional(env, keys::OPENCLAW_TRUSTED_PROXIES)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|entry| !entry.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(config)
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use clawfleet_kit::config::EnvMap;

    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        assert_eq!(
            KubernetesConfig::from_env(&EnvMap::default())
                .unwrap_err()
                .to_string(),
            "missing required environment variable OPENCLAW_IMAGE_REPO"
        );
        let env = EnvMap::from_pairs([(keys::OPENCLAW_IMAGE_REPO, "registry.example/openclaw")]);
        let config = KubernetesConfig::from_env(&env).unwrap();
        assert_eq!(config.access, ClusterAccess::Infer);
        assert_eq!(config.namespace, "openclaw");
        assert_eq!(config.image, "registry.example/openclaw:latest");
        assert_eq!(config.gateway_port, 18789);
        assert_eq!(config.ingress_domain_base, None);
        assert_eq!(config.platform_device_id, None);
    }

    #[test]
    fn every_setting_is_read() {
        let env = EnvMap::from_pairs([
            (keys::KUBECONFIG, "/etc/kube/config"),
            (keys::OPENCLAW_NAMESPACE, "claws"),
            (keys::OPENCLAW_IMAGE_REPO, "registry.example/openclaw"),
            (keys::OPENCLAW_IMAGE_TAG, "2026.9.6"),
            (keys::OPENCLAW_INGRESS_ENABLED, "true"),
            (keys::OPENCLAW_DOMAIN_BASE, "claw.example.com"),
            (keys::OPENCLAW_RUNTIME_CLASS, "gvisor"),
            (keys::CLAWFLEET_PLATFORM_DEVICE_ID, "device-1"),
            (keys::OPENCLAW_TRUSTED_PROXIES, "10.0.0.1, 10.0.0.2"),
            (keys::OPENCLAW_STORAGE_CLASS, "premium-rwo"),
            (keys::CLAWFLEET_PLATFORM_NAMESPACE, "clawfleet"),
        ]);
        let config = KubernetesConfig::from_env(&env).unwrap();
        assert_eq!(
            config.access,
            ClusterAccess::Kubeconfig("/etc/kube/config".into())
        );
        assert_eq!(config.namespace, "claws");
        assert_eq!(config.image, "registry.example/openclaw:2026.9.6");
        assert_eq!(
            config.ingress_domain_base.as_deref(),
            Some("claw.example.com")
        );
        assert_eq!(config.runtime_class.as_deref(), Some("gvisor"));
        assert_eq!(config.trusted_proxies, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(config.storage_class.as_deref(), Some("premium-rwo"));
        assert_eq!(config.bridge_namespace.as_deref(), Some("clawfleet"));
        assert_eq!(config.platform_device_id.as_deref(), Some("device-1"));
    }

    #[test]
    fn ingress_without_a_domain_or_a_bad_namespace_is_refused() {
        let env = EnvMap::from_pairs([
            (keys::OPENCLAW_IMAGE_REPO, "openclaw"),
            (keys::OPENCLAW_INGRESS_ENABLED, "true"),
        ]);
        assert_eq!(
            KubernetesConfig::from_env(&env).unwrap_err().to_string(),
            "missing required environment variable OPENCLAW_DOMAIN_BASE"
        );
        let env = EnvMap::from_pairs([
            (keys::OPENCLAW_IMAGE_REPO, "openclaw"),
            (keys::OPENCLAW_NAMESPACE, "Not_A_Label"),
        ]);
        assert!(KubernetesConfig::from_env(&env).is_err());
    }
}
