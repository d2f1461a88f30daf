//! The instance store: desired state on SQLite (the embedded default, a file in the
//! data dir) or PostgreSQL (production, shared by every lifecycle replica), chosen by
//! the `DATABASE_URL` scheme; see docs/product/configuration.md.
//!
//! Every write is one conditional statement or one transaction, so two replicas racing
//! on one id never lose an update: an insert of an existing id fails on the key, a
//! change to a row being deleted changes nothing, and the quota is counted and the row
//! inserted under one lock per owner. On PostgreSQL each write also notifies
//! [`CHANGES_CHANNEL`] with the instance id, so other replicas reload that row at once.

use clawfleet_database::{Database, DatabaseError, Migrations, is_unique_violation, on_backend};

use crate::{
    instance_id::InstanceId,
    model::{Deletion, DesiredState, InstanceRecord, Plan, Secrets},
};

/// The table that records which lifecycle migrations ran (not sqlx's shared default).
pub const MIGRATIONS_TABLE: &str = "_clawfleet_lifecycle_migrations";

/// The PostgreSQL notification channel that carries the id of every changed instance.
pub const CHANGES_CHANNEL: &str = "clawfleet_lifecycle_instances";

/// Columns in the order every query selects them (see [`Row`]).
const COLUMNS: &str = "id, owner, plan, desired_state, model, gateway_token, secrets, \
     created_at_ms, updated_at_ms, deleting_since_ms, delete_preserve_data, generation";

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    bool,
    i64,
);

/// Store failures; the service maps them to gRPC statuses. Messages never contain the
/// database URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("instance {0} already exists")]
    AlreadyExists(InstanceId),
    #[error("the owner already has {owned} instances and {kept} kept of {quota}")]
    QuotaExceeded {
        owned: usize,
        /// Deleted instances whose data is kept (see [`crate::kept_data`]).
        kept: usize,
        quota: usize,
    },
    #[error(transparent)]
    Open(#[from] DatabaseError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
}

/// Tells the other replicas (on commit of `$transaction`) that `$id` changed. A macro
/// because it is written inside [`on_backend!`] bodies, which must compile for either
/// backend's connection type (it only runs on PostgreSQL).
macro_rules! notify {
    ($transaction:ident, $id:expr) => {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind($id.as_str())
            .execute(&mut *$transaction)
            .await?
    };
}

/// Runs `$sql` (an UPDATE of the row `$id` = `$1`, RETURNING its columns, with `$binds`
/// as `$2`…) in a write transaction that also notifies other replicas when a row changed,
/// and tells what it found. A macro for the same reason as [`notify!`].
macro_rules! update_returning {
    ($store:expr, $id:expr, $sql:expr, $($bind:expr),*) => {{
        let postgres = $store.notifies();
        let row: Option<Row> = on_backend!($store, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            let row = sqlx::query_as(sqlx::AssertSqlSafe($sql))
                .bind($id.as_str())
                $(.bind($bind))*
                .fetch_optional(&mut *transaction)
                .await?;
            if postgres && row.is_some() {
                notify!(transaction, $id);
            }
            transaction.commit().await?;
            row
        });
        $store.update_from($id, row).await
    }};
}

/// What a conditional change found.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The row changed; this is its new state.
    Changed(InstanceRecord),
    /// The row is being deleted, so nothing changed; this is its state.
    Deleting(InstanceRecord),
    /// No such row.
    Missing,
}

/// Desired state of every instance.
#[derive(Clone, Debug)]
pub struct InstanceStore {
    database: Database,
}

impl AsRef<Database> for InstanceStore {
    fn as_ref(&self) -> &Database {
        &self.database
    }
}

impl InstanceStore {
    /// Connects to `database_url` (`sqlite://…`, `sqlite::memory:`, `postgres://…`) and
    /// applies the embedded migrations.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let migrations = Migrations {
            sqlite: sqlx::migrate!("./migrations/sqlite"),
            postgres: sqlx::migrate!("./migrations/postgres"),
            table: MIGRATIONS_TABLE,
        };
        Ok(Self {
            database: Database::open(database_url, migrations).await?,
        })
    }

    /// An in-memory SQLite store, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        Self::open("sqlite::memory:").await
    }

    /// The open database (for [`crate::replication`], which listens on PostgreSQL).
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Inserts `record` (without a quota).
    pub async fn insert(&self, record: &InstanceRecord) -> Result<InstanceRecord, StoreError> {
        self.insert_within_quota(record, None).await
    }

    /// Inserts `record` unless its id exists or its owner already has `quota` instances
    /// (deleting ones not counted, the kept data of deleted ones counted). A kept copy of
    /// the same id is reattached, so it is no longer kept data. Counting and inserting happen in one transaction
    /// holding a lock per owner, so creates racing on any replica cannot both slip
    /// under the quota. Returns the stored row.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "INSERT instances", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "INSERT", db.collection.name = "instances",
        clawfleet.store.call = "insert_within_quota",
    ))]
    pub async fn insert_within_quota(
        &self,
        record: &InstanceRecord,
        quota: Option<usize>,
    ) -> Result<InstanceRecord, StoreError> {
        let secrets = serde_json::to_string(&record.secrets)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let postgres = self.notifies();
        let insert = format!(
            "INSERT INTO instances ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, TRUE, 1) RETURNING {COLUMNS}"
        );
        let row: Row = on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            if let Some(quota) = quota {
                if postgres {
                    // SQLite's BEGIN IMMEDIATE already serialises writers.
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                        .bind(&record.owner)
                        .execute(&mut *transaction)
                        .await?;
                }
                let (owned,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM instances WHERE owner = $1 AND deleting_since_ms IS NULL",
                )
                .bind(&record.owner)
                .fetch_one(&mut *transaction)
                .await?;
                let (kept,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM kept_data WHERE owner = $1 AND id <> $2")
                        .bind(&record.owner)
                        .bind(record.id.as_str())
                        .fetch_one(&mut *transaction)
                        .await?;
                let owned = usize::try_from(owned).unwrap_or(usize::MAX);
                let kept = usize::try_from(kept).unwrap_or(usize::MAX);
                if owned.saturating_add(kept) >= quota {
                    return Err(StoreError::QuotaExceeded { owned, kept, quota });
                }
            }
            sqlx::query("DELETE FROM kept_data WHERE id = $1")
                .bind(record.id.as_str())
                .execute(&mut *transaction)
                .await?;
            let row = sqlx::query_as(sqlx::AssertSqlSafe(insert.as_str()))
                .bind(record.id.as_str())
                .bind(&record.owner)
                .bind(record.plan.as_str())
                .bind(record.desired_state.as_str())
                .bind(&record.model)
                .bind(&record.gateway_token)
                .bind(&secrets)
                .bind(record.created_at_ms)
                .bind(record.updated_at_ms)
                .fetch_one(&mut *transaction)
                .await
                .map_err(|error| {
                    if is_unique_violation(&error) {
                        StoreError::AlreadyExists(record.id.clone())
                    } else {
                        error.into()
                    }
                })?;
            if postgres {
                notify!(transaction, record.id);
            }
            transaction.commit().await?;
            row
        });
        record_from_row(row)
    }

    /// The row of `id`, if any.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT instances", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "SELECT", db.collection.name = "instances",
        clawfleet.store.call = "get",
    ))]
    pub async fn get(&self, id: &InstanceId) -> Result<Option<InstanceRecord>, StoreError> {
        let select = format!("SELECT {COLUMNS} FROM instances WHERE id = $1");
        let row: Option<Row> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(record_from_row).transpose()
    }

    /// Every row, ordered by id.
    pub async fn load_all(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        Ok(self.load_all_reporting().await?.0)
    }

    /// Every readable row, and the ids of rows that could not be read. A corrupt row
    /// (edited by hand, written by a newer version) is reported and skipped, so one bad
    /// row never stops the lifecycle from starting or serving everyone else.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT instances", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "SELECT", db.collection.name = "instances",
        clawfleet.store.call = "load_all",
    ))]
    pub async fn load_all_reporting(
        &self,
    ) -> Result<(Vec<InstanceRecord>, Vec<String>), StoreError> {
        let select = format!("SELECT {COLUMNS} FROM instances ORDER BY id");
        let rows: Vec<Row> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .fetch_all(pool)
                .await?
        });
        let mut records = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in rows {
            let id = row.0.clone();
            match record_from_row(row) {
                Ok(record) => records.push(record),
                Err(error) => {
                    tracing::error!(instance = %id.escape_debug(), %error, "skipping an instance row that cannot be read; fix or remove it");
                    unreadable.push(id);
                }
            }
        }
        Ok((records, unreadable))
    }

    /// Sets the desired state, unless the instance is being deleted.
    pub async fn set_desired_state(
        &self,
        id: &InstanceId,
        desired_state: DesiredState,
        updated_at_ms: i64,
    ) -> Result<Update, StoreError> {
        self.change(
            id,
            "desired_state = $2, updated_at_ms = $3",
            desired_state.as_str(),
            updated_at_ms,
        )
        .await
    }

    /// Replaces the gateway token, unless the instance is being deleted.
    pub async fn set_gateway_token(
        &self,
        id: &InstanceId,
        gateway_token: &str,
        updated_at_ms: i64,
    ) -> Result<Update, StoreError> {
        self.change(
            id,
            "gateway_token = $2, updated_at_ms = $3",
            gateway_token,
            updated_at_ms,
        )
        .await
    }

    /// Sets the plan, unless the instance is being deleted.
    pub async fn set_plan(
        &self,
        id: &InstanceId,
        plan: Plan,
        updated_at_ms: i64,
    ) -> Result<Update, StoreError> {
        self.change(
            id,
            "plan = $2, updated_at_ms = $3",
            plan.as_str(),
            updated_at_ms,
        )
        .await
    }

    /// Replaces the provider secrets, unless the instance is being deleted.
    pub async fn set_secrets(
        &self,
        id: &InstanceId,
        secrets: &Secrets,
        updated_at_ms: i64,
    ) -> Result<Update, StoreError> {
        let secrets = serde_json::to_string(secrets)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        self.change(
            id,
            "secrets = $2, updated_at_ms = $3",
            &secrets,
            updated_at_ms,
        )
        .await
    }

    /// Records that a delete was accepted. A second delete changes nothing and finds
    /// the first one's [`Update::Deleting`].
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "UPDATE instances", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "UPDATE", db.collection.name = "instances",
        clawfleet.store.call = "mark_deleting",
    ))]
    pub async fn mark_deleting(
        &self,
        id: &InstanceId,
        preserve_data: bool,
        now_ms: i64,
    ) -> Result<Update, StoreError> {
        let update = format!(
            "UPDATE instances SET deleting_since_ms = $2, delete_preserve_data = $3, \
             updated_at_ms = $2, generation = generation + 1 \
             WHERE id = $1 AND deleting_since_ms IS NULL RETURNING {COLUMNS}"
        );
        update_returning!(self, id, update.as_str(), now_ms, preserve_data)
    }

    /// Removes the row of a finished delete; a row not marked deleting stays (a delete
    /// never removes what was not asked to go). A delete that keeps the data records it
    /// as kept data (from `now_ms`) in the same transaction. Returns whether a row went.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "DELETE instances", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "DELETE", db.collection.name = "instances",
        clawfleet.store.call = "remove_deleted",
    ))]
    pub async fn remove_deleted(&self, id: &InstanceId, now_ms: i64) -> Result<bool, StoreError> {
        let postgres = self.notifies();
        let removed = on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            let gone: Option<(String, bool)> = sqlx::query_as(
                "DELETE FROM instances WHERE id = $1 AND deleting_since_ms IS NOT NULL \
                 RETURNING owner, delete_preserve_data",
            )
            .bind(id.as_str())
            .fetch_optional(&mut *transaction)
            .await?;
            if let Some((owner, true)) = &gone {
                sqlx::query(
                    "INSERT INTO kept_data (id, owner, kept_since_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, \
                     kept_since_ms = excluded.kept_since_ms",
                )
                .bind(id.as_str())
                .bind(owner)
                .bind(now_ms)
                .execute(&mut *transaction)
                .await?;
            }
            let removed = gone.is_some();
            if postgres && removed {
                notify!(transaction, id);
            }
            transaction.commit().await?;
            removed
        });
        Ok(removed)
    }

    pub async fn close(&self) {
        self.database.close().await;
    }

    /// Only PostgreSQL has other replicas to tell.
    fn notifies(&self) -> bool {
        matches!(self.database, Database::Postgres(_))
    }

    /// Sets `assignments` (`$2` = `value`, `$3` = the time) on a row not being deleted.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "UPDATE instances", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "UPDATE", db.collection.name = "instances",
        clawfleet.store.call = "change",
    ))]
    async fn change(
        &self,
        id: &InstanceId,
        assignments: &str,
        value: &str,
        updated_at_ms: i64,
    ) -> Result<Update, StoreError> {
        let update = format!(
            "UPDATE instances SET {assignments}, generation = generation + 1 \
             WHERE id = $1 AND deleting_since_ms IS NULL RETURNING {COLUMNS}"
        );
        update_returning!(self, id, update.as_str(), value, updated_at_ms)
    }

    /// The outcome of a conditional update that returned `row` (none when the row is
    /// missing or being deleted; reading it again tells which).
    async fn update_from(&self, id: &InstanceId, row: Option<Row>) -> Result<Update, StoreError> {
        if let Some(row) = row {
            return Ok(Update::Changed(record_from_row(row)?));
        }
        Ok(match self.get(id).await? {
            Some(record) if record.deleting.is_some() => Update::Deleting(record),
            // Not deleting, yet the update matched nothing: it was deleted and created
            // again in between; report what is there now.
            Some(record) => Update::Changed(record),
            None => Update::Missing,
        })
    }
}

fn record_from_row(
    (
        id,
        owner,
        plan,
        desired_state,
        model,
        gateway_token,
        secrets,
        created_at_ms,
        updated_at_ms,
        deleting_since_ms,
        delete_preserve_data,
        generation,
    ): Row,
) -> Result<InstanceRecord, StoreError> {
    let id = InstanceId::parse(&id).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    let plan = Plan::from_name(&plan)
        .map_err(|error| StoreError::Corrupt(format!("instance {id}: {error}")))?;
    let desired_state = DesiredState::from_name(&desired_state).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "instance {id} has unknown desired state {desired_state:?}"
        ))
    })?;
    let secrets: Secrets = serde_json::from_str(&secrets)
        .map_err(|error| StoreError::Corrupt(format!("instance {id} secrets: {error}")))?;
    Ok(InstanceRecord {
        revision: 0,
        id,
        owner,
        plan,
        desired_state,
        model,
        gateway_token,
        secrets,
        created_at_ms,
        updated_at_ms,
        deleting: deleting_since_ms.map(|since_ms| Deletion {
            since_ms,
            preserve_data: delete_preserve_data,
        }),
        generation,
    })
}
