//! The instance store: desired state in SQLite (a file in the data dir), with the
//! migrations embedded in the binary.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    Row, SqlitePool,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
};

use crate::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, Plan, Secrets},
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Store failures; the service maps them to gRPC statuses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("instance {0} already exists")]
    AlreadyExists(InstanceId),
    #[error("the owner already has {owned} of {quota} instances")]
    QuotaExceeded { owned: usize, quota: usize },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
}

/// Desired state of every instance.
#[derive(Clone, Debug)]
pub struct InstanceStore {
    pool: SqlitePool,
}

impl InstanceStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// An in-memory store, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // One connection that is never recycled: each new in-memory connection would be empty.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    pub async fn insert(&self, record: &InstanceRecord) -> Result<(), StoreError> {
        let secrets = serde_json::to_string(&record.secrets)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let result = sqlx::query(
            "INSERT INTO instances (id, owner, plan, desired_state, model, gateway_token, secrets, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.id.as_str())
        .bind(&record.owner)
        .bind(record.plan.as_str())
        .bind(record.desired_state.as_str())
        .bind(&record.model)
        .bind(&record.gateway_token)
        .bind(secrets)
        .bind(record.created_at_ms)
        .bind(record.updated_at_ms)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(StoreError::AlreadyExists(record.id.clone()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Sets the desired state; returns false when the instance does not exist.
    pub async fn set_desired_state(
        &self,
        id: &InstanceId,
        desired_state: DesiredState,
        updated_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE instances SET desired_state = ?, updated_at_ms = ? WHERE id = ?")
                .bind(desired_state.as_str())
                .bind(updated_at_ms)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Replaces the gateway token; returns false when the instance does not exist.
    pub async fn set_gateway_token(
        &self,
        id: &InstanceId,
        gateway_token: &str,
        updated_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE instances SET gateway_token = ?, updated_at_ms = ? WHERE id = ?")
                .bind(gateway_token)
                .bind(updated_at_ms)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes the record; returns false when it did not exist.
    pub async fn delete(&self, id: &InstanceId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM instances WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Every record, ordered by id.
    pub async fn load_all(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, owner, plan, desired_state, model, gateway_token, secrets, created_at_ms, updated_at_ms \
             FROM instances ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn record_from_row(row: &SqliteRow) -> Result<InstanceRecord, StoreError> {
    let id_text: String = row.try_get("id")?;
    let id = InstanceId::parse(&id_text).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    let plan_text: String = row.try_get("plan")?;
    let plan = Plan::from_name(&plan_text)
        .map_err(|error| StoreError::Corrupt(format!("instance {id}: {error}")))?;
    let desired_text: String = row.try_get("desired_state")?;
    let desired_state = DesiredState::from_name(&desired_text).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "instance {id} has unknown desired state {desired_text:?}"
        ))
    })?;
    let secrets_text: String = row.try_get("secrets")?;
    let secrets: Secrets = serde_json::from_str(&secrets_text)
        .map_err(|error| StoreError::Corrupt(format!("instance {id} secrets: {error}")))?;
    Ok(InstanceRecord {
        revision: 0,
        id,
        owner: row.try_get("owner")?,
        plan,
        desired_state,
        model: row.try_get("model")?,
        gateway_token: row.try_get("gateway_token")?,
        secrets,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> InstanceRecord {
        InstanceRecord {
            revision: 0,
            id: InstanceId::parse(id).unwrap(),
            owner: "user-1".into(),
            plan: Plan::Pro,
            desired_state: DesiredState::Running,
            model: "anthropic/claude".into(),
            gateway_token: "token".into(),
            secrets: [("ANTHROPIC_API_KEY".to_string(), "sk".to_string())].into(),
            created_at_ms: 1,
            updated_at_ms: 2,
        }
    }

    #[tokio::test]
    async fn records_round_trip() {
        let store = InstanceStore::in_memory().await.unwrap();
        store.insert(&record("alice")).await.unwrap();
        assert_eq!(store.load_all().await.unwrap(), vec![record("alice")]);
    }

    #[tokio::test]
    async fn duplicate_ids_are_refused_and_change_nothing() {
        let store = InstanceStore::in_memory().await.unwrap();
        store.insert(&record("alice")).await.unwrap();
        let mut other = record("alice");
        other.owner = "someone-else".into();
        assert!(matches!(
            store.insert(&other).await,
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(store.load_all().await.unwrap()[0].owner, "user-1");
    }

    #[tokio::test]
    async fn desired_state_and_delete_report_missing_rows() {
        let store = InstanceStore::in_memory().await.unwrap();
        let id = InstanceId::parse("alice").unwrap();
        assert!(
            !store
                .set_desired_state(&id, DesiredState::Stopped, 3)
                .await
                .unwrap()
        );
        store.insert(&record("alice")).await.unwrap();
        assert!(
            store
                .set_desired_state(&id, DesiredState::Stopped, 3)
                .await
                .unwrap()
        );
        assert_eq!(
            store.load_all().await.unwrap()[0].desired_state,
            DesiredState::Stopped
        );
        assert!(store.set_gateway_token(&id, "rotated", 4).await.unwrap());
        assert_eq!(store.load_all().await.unwrap()[0].gateway_token, "rotated");
        assert!(store.delete(&id).await.unwrap());
        assert!(!store.delete(&id).await.unwrap());
        assert!(!store.set_gateway_token(&id, "x", 5).await.unwrap());
    }

    #[tokio::test]
    async fn a_file_store_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lifecycle.db");
        let store = InstanceStore::open(&path).await.unwrap();
        store.insert(&record("alice")).await.unwrap();
        store.close().await;
        let reopened = InstanceStore::open(&path).await.unwrap();
        assert_eq!(reopened.load_all().await.unwrap().len(), 1);
    }
}
