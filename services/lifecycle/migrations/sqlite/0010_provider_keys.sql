-- Per-user provider keys (docs/product/provider-keys.md): one OpenRouter key per owner,
-- shared by the owner's instances. The value is kept like the instances' own secrets,
-- since every new instance of the owner gets it; the hash names it at OpenRouter.
CREATE TABLE provider_keys (
    owner           TEXT    PRIMARY KEY NOT NULL,
    key_hash        TEXT    NOT NULL,
    key_value       TEXT    NOT NULL,
    limit_usd       REAL    NOT NULL,
    disabled        INTEGER NOT NULL DEFAULT 0,
    -- The highest usage alert sent for this key (0, 80 or 100 percent).
    alerted_percent INTEGER NOT NULL DEFAULT 0,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);

-- Each owner's plan and subscription state as SetOwnerPlan last set it; a lapse is
-- durable here, so a restarted lifecycle still stops (or starts) the owner's instances.
CREATE TABLE owner_subscriptions (
    owner             TEXT    PRIMARY KEY NOT NULL,
    plan              TEXT    NOT NULL,
    active            INTEGER NOT NULL,
    lapsed_since_ms   INTEGER,
    -- JSON array of the instance ids the lapse stopped (started again on renewal);
    -- NULL while the grace runs.
    stopped_for_lapse TEXT,
    updated_at_ms     INTEGER NOT NULL
);

CREATE INDEX owner_subscriptions_by_lapse ON owner_subscriptions (lapsed_since_ms);
