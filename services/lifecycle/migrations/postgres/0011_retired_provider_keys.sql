-- Provider keys the platform no longer uses but could not delete at OpenRouter yet (a
-- rotated-out key, the loser of two racing creates): the upkeep pass retries the delete
-- until it succeeds, so no key is left behind unknown to the platform.
CREATE TABLE retired_provider_keys (
    key_hash      TEXT   PRIMARY KEY NOT NULL,
    owner         TEXT   NOT NULL,
    retired_at_ms BIGINT NOT NULL
);
