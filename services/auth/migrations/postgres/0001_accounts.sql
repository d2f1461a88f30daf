-- Accounts of the auth service (PostgreSQL). Times are Unix milliseconds.
CREATE TABLE users (
    id             TEXT    PRIMARY KEY NOT NULL,
    -- trimmed and lowercased; NULL for provider accounts without a verified email
    email          TEXT    UNIQUE,
    name           TEXT    NOT NULL DEFAULT '',
    -- argon2id PHC string; NULL for accounts that only sign in with a provider
    password_hash  TEXT,
    plan           TEXT    NOT NULL DEFAULT 'free',
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT  NOT NULL
);

CREATE TABLE identities (
    provider   TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_by_user ON identities (user_id);

CREATE TABLE refresh_tokens (
    -- hex SHA-256 of the opaque token; the token itself is never stored
    token_hash TEXT    PRIMARY KEY NOT NULL,
    family_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    rotated_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
