-- Subscriptions decide plans (docs/product/subscriptions.md). The plan itself stays in
-- users.plan; this row says where it came from and whether a paid subscription is in
-- good standing. Times are Unix milliseconds.
CREATE TABLE subscriptions (
    user_id       TEXT    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- false once a paid subscription lapsed
    active        BOOLEAN NOT NULL,
    -- active RevenueCat entitlement ids, comma-separated
    entitlements  TEXT    NOT NULL DEFAULT '',
    expires_at    INTEGER,
    -- 'revenuecat' or 'operator'
    source        TEXT    NOT NULL,
    -- event_timestamp_ms of the newest event applied, or the time of the newest read
    -- of the subscriber: an event older than this changes nothing
    last_event_at INTEGER  NOT NULL DEFAULT 0,
    -- when RevenueCat was last read for this user (0: never)
    checked_at    INTEGER  NOT NULL DEFAULT 0,
    updated_at    INTEGER  NOT NULL
);

-- Every webhook event received, by RevenueCat's event id (retries reuse the id). No
-- foreign key: events may name ids that are not (or no longer) users.
CREATE TABLE subscription_events (
    event_id        TEXT    PRIMARY KEY NOT NULL,
    user_id         TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    event_timestamp INTEGER  NOT NULL,
    -- applied, stale, ignored or unknown_user
    outcome         TEXT    NOT NULL,
    received_at     INTEGER  NOT NULL
);
CREATE INDEX subscription_events_by_user ON subscription_events (user_id);
