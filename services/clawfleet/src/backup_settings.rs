//! Where the lifecycle keeps backups and the key sealing them, from the environment
//! (docs/product/backups.md#configuration).

use std::path::Path;

use clawfleet_backup::store::{S3Settings, StoreConfig};
use clawfleet_kit::{
    config::{self, ConfigError, EnvSource, keys},
    secret::SecretString,
};
use clawfleet_lifecycle::backups::BackupsConfig;

/// The backups configuration; `None` when backups are off. The local runtime keeps them
/// in `<data dir>/backups` unless told otherwise; the Kubernetes runtime takes none
/// unless a store is configured (it cannot take them yet: docs/product/backups.md#runtimes).
pub fn backups_config(
    env: &dyn EnvSource,
    data_dir: &Path,
    local_runtime: bool,
) -> Result<Option<BackupsConfig>, ConfigError> {
    let default = if local_runtime { "local" } else { "off" };
    let choice = config::optional(env, keys::CLAWFLEET_BACKUP_STORE);
    let store = match choice.as_deref().unwrap_or(default) {
        "off" => return Ok(None),
        "local" => StoreConfig::Local {
            dir: config::optional(env, keys::CLAWFLEET_BACKUP_DIR)
                .map(Into::into)
                .unwrap_or_else(|| data_dir.join("backups")),
        },
        "s3" => StoreConfig::S3(S3Settings {
            endpoint: config::required(env, keys::CLAWFLEET_BACKUP_S3_ENDPOINT)?,
            bucket: config::required(env, keys::CLAWFLEET_BACKUP_S3_BUCKET)?,
            prefix: config::optional(env, keys::CLAWFLEET_BACKUP_S3_PREFIX).unwrap_or_default(),
            region: config::optional(env, keys::CLAWFLEET_BACKUP_S3_REGION)
                .unwrap_or_else(|| "us-east-1".to_owned()),
            access_key_id: config::required(env, keys::CLAWFLEET_BACKUP_S3_ACCESS_KEY_ID)?,
            secret_access_key: SecretString::from(config::required(
                env,
                keys::CLAWFLEET_BACKUP_S3_SECRET_ACCESS_KEY,
            )?),
        }),
        other => {
            return Err(ConfigError::Invalid {
                key: keys::CLAWFLEET_BACKUP_STORE,
                reason: format!("{other:?} is not local, s3 or off"),
            });
        }
    };
    let key_file = config::optional(env, keys::CLAWFLEET_BACKUP_KEY_FILE)
        .map(Into::into)
        .unwrap_or_else(|| data_dir.join("backup.key"));
    Ok(Some(BackupsConfig { store, key_file }))
}
