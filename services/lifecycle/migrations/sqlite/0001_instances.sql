-- Desired state of every instance (SQLite). Observed state lives in the runtime.
-- IF NOT EXISTS: stores created before the lifecycle kept its migrations in a table of
-- its own already hold this table.
CREATE TABLE IF NOT EXISTS instances (
    id            TEXT    PRIMARY KEY NOT NULL,
    owner         TEXT    NOT NULL DEFAULT '',
    plan          TEXT    NOT NULL,
    desired_state TEXT    NOT NULL,
    model         TEXT    NOT NULL DEFAULT '',
    -- The gateway's shared token; never returned to app users.
    gateway_token TEXT    NOT NULL,
    -- Provider secrets as a JSON object of env name -> value.
    secrets       TEXT    NOT NULL DEFAULT '{}',
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS instances_by_owner ON instances (owner, id);
