-- The data (PVC) of instances deleted with their data kept: it counts toward the
-- owner's plan and is purged once older than the retention. Times are Unix milliseconds.
CREATE TABLE kept_data (
    id            TEXT   PRIMARY KEY NOT NULL,
    owner         TEXT   NOT NULL DEFAULT '',
    kept_since_ms BIGINT NOT NULL
);

CREATE INDEX kept_data_by_owner ON kept_data (owner);
CREATE INDEX kept_data_by_age ON kept_data (kept_since_ms);
