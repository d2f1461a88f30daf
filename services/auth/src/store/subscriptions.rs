//! Subscriptions: where each user's plan came from, whether a paid subscription is in
//! good standing, and every RevenueCat webhook event received
//! (docs/product/subscriptions.md). The plan itself is `users.plan`, so a sign-in and a
//! plan read always agree.

use clawfleet_kit::plan::Plan;

use super::{AuthStore, StoreError, on_backend};

/// Who decided a user's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanSource {
    /// Nobody yet: the plan every account starts with.
    Default,
    RevenueCat,
    Operator,
}

impl PlanSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanSource::Default => "default",
            PlanSource::RevenueCat => "revenuecat",
            PlanSource::Operator => "operator",
        }
    }

    fn from_column(value: Option<&str>) -> PlanSource {
        match value {
            Some("revenuecat") => PlanSource::RevenueCat,
            Some("operator") => PlanSource::Operator,
            _ => PlanSource::Default,
        }
    }
}

/// What a subscription grants: the plan, whether it is in good standing, and the
/// entitlements behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub plan: Plan,
    /// False once a paid subscription lapsed.
    pub active: bool,
    pub entitlements: Vec<String>,
    pub expires_at_ms: Option<i64>,
}

/// A user's recorded subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub user_id: String,
    pub state: SubscriptionState,
    pub source: PlanSource,
    /// The newest event applied (or subscriber read); older events change nothing.
    pub last_event_at_ms: i64,
    /// When RevenueCat was last read for this user (0: never).
    pub checked_at_ms: i64,
}

/// One webhook event, as recorded.
#[derive(Debug, Clone)]
pub struct ReceivedEvent<'a> {
    pub event_id: &'a str,
    pub user_id: &'a str,
    pub event_type: &'a str,
    pub event_timestamp_ms: i64,
    pub received_at_ms: i64,
}

/// What recording a webhook event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRecording {
    /// The event's state is now the user's; `changed` when plan or standing moved.
    Applied {
        record: SubscriptionRecord,
        changed: bool,
    },
    /// Recorded before; the user's current record, if the user exists.
    Duplicate(Option<SubscriptionRecord>),
    /// A newer event or read was applied before; the current record is unchanged.
    Stale(SubscriptionRecord),
    /// The event type does not change access.
    Ignored(SubscriptionRecord),
    UnknownUser,
}

/// What deleting a user removed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedUser {
    pub identities: u64,
    pub refresh_tokens: u64,
}

type SubscriptionRow = (
    String,
    Option<bool>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

const SELECT_SUBSCRIPTION: &str = "SELECT users.plan, subscriptions.active, subscriptions.entitlements, \
     subscriptions.expires_at, subscriptions.source, subscriptions.last_event_at, subscriptions.checked_at \
     FROM users LEFT JOIN subscriptions ON subscriptions.user_id = users.id WHERE users.id = $1";

const UPSERT_SUBSCRIPTION: &str = "INSERT INTO subscriptions \
     (user_id, active, entitlements, expires_at, source, last_event_at, checked_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (user_id) DO UPDATE SET active = excluded.active, \
     entitlements = excluded.entitlements, expires_at = excluded.expires_at, \
     source = excluded.source, last_event_at = excluded.last_event_at, \
     checked_at = excluded.checked_at, updated_at = excluded.updated_at";

fn record_from_row(user_id: &str, row: SubscriptionRow) -> Result<SubscriptionRecord, StoreError> {
    let (plan, active, entitlements, expires_at_ms, source, last_event_at_ms, checked_at_ms) = row;
    let plan = Plan::from_name(&plan).map_err(|error| StoreError::Corrupt {
        id: user_id.to_owned(),
        reason: error.to_string(),
    })?;
    Ok(SubscriptionRecord {
        user_id: user_id.to_owned(),
        state: SubscriptionState {
            plan,
            active: active.unwrap_or(true),
            entitlements: entitlements
                .unwrap_or_default()
                .split(',')
                .filter(|entitlement| !entitlement.is_empty())
                .map(str::to_owned)
                .collect(),
            expires_at_ms,
        },
        source: PlanSource::from_column(source.as_deref()),
        last_event_at_ms: last_event_at_ms.unwrap_or(0),
        checked_at_ms: checked_at_ms.unwrap_or(0),
    })
}

/// Reads, within `$executor`, the subscription of `$user_id` (None: no such user).
macro_rules! select_subscription {
    ($executor:expr, $user_id:expr) => {{
        let row: Option<SubscriptionRow> = sqlx::query_as(SELECT_SUBSCRIPTION)
            .bind($user_id)
            .fetch_optional($executor)
            .await?;
        row.map(|row| record_from_row($user_id, row)).transpose()?
    }};
}

/// Writes `$record` (plan into `users`, the rest into `subscriptions`) within `$executor`.
macro_rules! write_subscription {
    ($transaction:expr, $record:expr, $now_ms:expr) => {{
        let record: &SubscriptionRecord = $record;
        sqlx::query("UPDATE users SET plan = $1 WHERE id = $2")
            .bind(record.state.plan.as_str())
            .bind(&record.user_id)
            .execute(&mut *$transaction)
            .await?;
        sqlx::query(UPSERT_SUBSCRIPTION)
            .bind(&record.user_id)
            .bind(record.state.active)
            .bind(record.state.entitlements.join(","))
            .bind(record.state.expires_at_ms)
            .bind(record.source.as_str())
            .bind(record.last_event_at_ms)
            .bind(record.checked_at_ms)
            .bind($now_ms)
            .execute(&mut *$transaction)
            .await?;
    }};
}

fn differs(before: &SubscriptionState, after: &SubscriptionState) -> bool {
    before.plan != after.plan || before.active != after.active
}

impl AuthStore {
    /// The user's subscription; `None` when there is no such user.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT subscriptions", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "SELECT", db.collection.name = "subscriptions",
        clawfleet.store.call = "subscription_of",
    ))]
    pub async fn subscription_of(
        &self,
        user_id: &str,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        Ok(on_backend!(self, |pool, _begin| {
            select_subscription!(pool, user_id)
        }))
    }

    /// Records what a read of the subscriber at `read_at_ms` found. An event applied
    /// meanwhile that is newer than the read wins: then only the check time moves.
    /// Returns the record and whether plan or standing changed; `None` for no user.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "UPDATE subscriptions", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "UPDATE", db.collection.name = "subscriptions",
        clawfleet.store.call = "record_subscriber_read",
    ))]
    pub async fn record_subscriber_read(
        &self,
        user_id: &str,
        state: SubscriptionState,
        read_at_ms: i64,
    ) -> Result<Option<(SubscriptionRecord, bool)>, StoreError> {
        on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            let Some(current) = select_subscription!(&mut *transaction, user_id) else {
                return Ok(None);
            };
            let mut next = current.clone();
            next.checked_at_ms = read_at_ms;
            if current.last_event_at_ms <= read_at_ms {
                next.state = state;
                next.source = PlanSource::RevenueCat;
                next.last_event_at_ms = read_at_ms;
            }
            write_subscription!(transaction, &next, read_at_ms);
            transaction.commit().await?;
            let changed = differs(&current.state, &next.state);
            Ok(Some((next, changed)))
        })
    }

    /// Records one webhook event and, unless it is a duplicate, older than the newest
    /// applied, of a type that does not change access (`state` is `None`) or for no user,
    /// makes `state` the user's — all in one transaction.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "INSERT subscription_events", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "INSERT", db.collection.name = "subscription_events",
        clawfleet.store.call = "record_subscription_event",
    ))]
    pub async fn record_subscription_event(
        &self,
        event: &ReceivedEvent<'_>,
        state: Option<SubscriptionState>,
    ) -> Result<EventRecording, StoreError> {
        on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            // ON CONFLICT keeps the transaction usable on PostgreSQL, where a failed
            // insert would abort it.
            let inserted = sqlx::query(
                "INSERT INTO subscription_events \
                 (event_id, user_id, event_type, event_timestamp, outcome, received_at) \
                 VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(event.event_id)
            .bind(event.user_id)
            .bind(event.event_type)
            .bind(event.event_timestamp_ms)
            .bind(event.received_at_ms)
            .execute(&mut *transaction)
            .await?
            .rows_affected()
                == 1;
            let current = select_subscription!(&mut *transaction, event.user_id);
            if !inserted {
                return Ok(EventRecording::Duplicate(current));
            }
            let (outcome, recording) = match (current, state) {
                (None, _) => ("unknown_user", EventRecording::UnknownUser),
                (Some(current), None) => ("ignored", EventRecording::Ignored(current)),
                (Some(current), Some(_))
                    if event.event_timestamp_ms <= current.last_event_at_ms =>
                {
                    ("stale", EventRecording::Stale(current))
                }
                (Some(current), Some(state)) => {
                    let next = SubscriptionRecord {
                        user_id: current.user_id.clone(),
                        state,
                        source: PlanSource::RevenueCat,
                        last_event_at_ms: event.event_timestamp_ms,
                        checked_at_ms: current.checked_at_ms,
                    };
                    write_subscription!(transaction, &next, event.received_at_ms);
                    let changed = differs(&current.state, &next.state);
                    (
                        "applied",
                        EventRecording::Applied {
                            record: next,
                            changed,
                        },
                    )
                }
            };
            sqlx::query("UPDATE subscription_events SET outcome = $1 WHERE event_id = $2")
                .bind(outcome)
                .bind(event.event_id)
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
            Ok(recording)
        })
    }

    /// Sets the user's plan by an operator's choice (in good standing); `None` for no
    /// user. Returns the record and whether plan or standing changed.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "UPDATE subscriptions", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "UPDATE", db.collection.name = "subscriptions",
        clawfleet.store.call = "set_plan_by_operator",
    ))]
    pub async fn set_plan_by_operator(
        &self,
        user_id: &str,
        plan: Plan,
        now_ms: i64,
    ) -> Result<Option<(SubscriptionRecord, bool)>, StoreError> {
        on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            let Some(current) = select_subscription!(&mut *transaction, user_id) else {
                return Ok(None);
            };
            let next = SubscriptionRecord {
                state: SubscriptionState {
                    plan,
                    active: true,
                    entitlements: Vec::new(),
                    expires_at_ms: None,
                },
                source: PlanSource::Operator,
                ..current.clone()
            };
            write_subscription!(transaction, &next, now_ms);
            transaction.commit().await?;
            let changed = differs(&current.state, &next.state);
            Ok(Some((next, changed)))
        })
    }

    /// Deletes the user with everything the auth store holds of them: identities,
    /// refresh tokens, subscription and webhook events. `None` when there is no such user.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "DELETE users", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "DELETE", db.collection.name = "users",
        clawfleet.store.call = "delete_user",
    ))]
    pub async fn delete_user(&self, user_id: &str) -> Result<Option<DeletedUser>, StoreError> {
        on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            let mut deleted = [0u64; 4];
            // Children first, explicitly: the counts are reported, and nothing relies on
            // the engine enforcing foreign keys.
            for (slot, table) in [
                "identities",
                "refresh_tokens",
                "subscriptions",
                "subscription_events",
            ]
            .into_iter()
            .enumerate()
            {
                let statement = format!("DELETE FROM {table} WHERE user_id = $1");
                deleted[slot] = sqlx::query(sqlx::AssertSqlSafe(statement))
                    .bind(user_id)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
            }
            let users = sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user_id)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if users == 0 {
                return Ok(None);
            }
            transaction.commit().await?;
            Ok(Some(DeletedUser {
                identities: deleted[0],
                refresh_tokens: deleted[1],
            }))
        })
    }

    /// Rows that still name `user_id`, per auth table (for tests and operators' checks).
    pub async fn rows_naming_user(&self, user_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let mut counts = Vec::new();
        for (table, column) in [
            ("users", "id"),
            ("identities", "user_id"),
            ("refresh_tokens", "user_id"),
            ("subscriptions", "user_id"),
            ("subscription_events", "user_id"),
        ] {
            let statement = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
            let count: i64 = on_backend!(self, |pool, _begin| {
                sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
                    .bind(user_id)
                    .fetch_one(pool)
                    .await?
            });
            counts.push((table.to_owned(), count));
        }
        Ok(counts)
    }
}
