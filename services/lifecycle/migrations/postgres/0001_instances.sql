-- Desired state of every instance (PostgreSQL). Observed state lives in the runtime.
-- Times are Unix milliseconds.
CREATE TABLE instances (
    id                   TEXT    PRIMARY KEY NOT NULL,
    owner                TEXT    NOT NULL DEFAULT '',
    plan                 TEXT    NOT NULL,
    desired_state        TEXT    NOT NULL,
    model                TEXT    NOT NULL DEFAULT '',
    -- The gateway's shared token; never returned to app users.
    gateway_token        TEXT    NOT NULL,
    -- Provider secrets as a JSON object of env name -> value.
    secrets              TEXT    NOT NULL DEFAULT '{}',
    created_at_ms        BIGINT  NOT NULL,
    updated_at_ms        BIGINT  NOT NULL,
    -- Set when a delete was accepted; the row goes once the runtime's teardown is done.
    deleting_since_ms    BIGINT,
    delete_preserve_data BOOLEAN NOT NULL DEFAULT TRUE,
    -- Counts the row's changes, so replicas keep the newest copy.
    generation           BIGINT  NOT NULL DEFAULT 1
);

CREATE INDEX instances_by_owner ON instances (owner, id);
