-- identity crate family: shared-store schema, version 3 (every migration, each idempotent:
-- a database of any older version is brought up to date by running the whole file).
-- `{schema}` is replaced by the configured schema name (validated: [a-z_][a-z0-9_]{0,62}).
-- Every time column holds the application's clock (seconds since the epoch); the database
-- clock is never consulted.

CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    version integer PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS {schema}.refresh_families (
    id                  bytea   PRIMARY KEY CHECK (length(id) = 16),
    subject             text    NOT NULL CHECK (octet_length(subject) BETWEEN 1 AND 255),
    client_id           text    NOT NULL CHECK (octet_length(client_id) BETWEEN 1 AND 255),
    created_at          bigint  NOT NULL,
    absolute_expires_at bigint  NOT NULL,
    head                bytea   NOT NULL CHECK (length(head) = 16),
    head_parent         bytea   CHECK (length(head_parent) = 16),
    head_generation     bigint  NOT NULL CHECK (head_generation >= 0),
    version             bigint  NOT NULL CHECK (version >= 0),
    status              text    NOT NULL CHECK (status IN ('active', 'revoked')),
    revoked_at          bigint,
    revoked_reason      text,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL AND revoked_reason IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS refresh_families_subject
    ON {schema}.refresh_families (subject) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS refresh_families_expiry
    ON {schema}.refresh_families (absolute_expires_at);

CREATE TABLE IF NOT EXISTS {schema}.refresh_tokens (
    family_id   bytea   NOT NULL REFERENCES {schema}.refresh_families (id) ON DELETE CASCADE,
    id          bytea   NOT NULL CHECK (length(id) = 16),
    parent      bytea   CHECK (length(parent) = 16),
    generation  bigint  NOT NULL CHECK (generation >= 0),
    secret_hash bytea   NOT NULL CHECK (length(secret_hash) = 32),  -- SHA-256, never the secret
    issued_at   bigint  NOT NULL,
    state       text    NOT NULL CHECK (state IN ('active', 'rotated', 'superseded')),
    state_at    bigint,          -- rotated_at or superseded_at
    successor   bytea,           -- rotated: the successor; superseded: the sibling
    grace_uses  integer NOT NULL DEFAULT 0 CHECK (grace_uses >= 0),
    PRIMARY KEY (family_id, id),
    CHECK ((state = 'active') = (state_at IS NULL AND successor IS NULL))
);

CREATE TABLE IF NOT EXISTS {schema}.devices (
    device_id    text    PRIMARY KEY CHECK (octet_length(device_id) BETWEEN 1 AND 64),
    state        text    NOT NULL
                 CHECK (state IN ('pending', 'approved', 'suspended', 'revoked', 'denied', 'expired')),
    state_by     text    CHECK (octet_length(state_by) BETWEEN 1 AND 64),  -- operator
    state_at     bigint,         -- decision time (pending: requested_at)
    expires_at   bigint,         -- pending only
    version      bigint  NOT NULL CHECK (version >= 0)
);

CREATE TABLE IF NOT EXISTS {schema}.device_keys (
    device_id      text    NOT NULL REFERENCES {schema}.devices (device_id) ON DELETE CASCADE,
    key_id         text    NOT NULL CHECK (octet_length(key_id) BETWEEN 1 AND 64),
    position       smallint NOT NULL CHECK (position BETWEEN 0 AND 3),
    status         text    NOT NULL CHECK (status IN ('active', 'retiring')),
    retiring_until bigint,
    sealed_secret  bytea   NOT NULL CHECK (length(sealed_secret) <= 512),  -- never plain text
    PRIMARY KEY (device_id, key_id),
    UNIQUE (device_id, position),
    CHECK ((status = 'retiring') = (retiring_until IS NOT NULL))
);

INSERT INTO {schema}.schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;

-- Version 2: the DPoP key binding of a refresh family (RFC 7638 thumbprint, RFC 9449
-- section 5), set once at creation; NULL for an unbound family.
ALTER TABLE {schema}.refresh_families
    ADD COLUMN IF NOT EXISTS dpop_jkt bytea CHECK (length(dpop_jkt) = 32);
INSERT INTO {schema}.schema_version (version) VALUES (2) ON CONFLICT DO NOTHING;

-- Version 3: device heartbeat sessions (`handoff_device::DeviceSession`): token hashes only,
-- never a token. `expires_at` is the record's `expires_at()` (min(last_seen + idle_timeout,
-- created_at + max_lifetime)), written on every insert and compare-and-set; the purge of
-- ended sessions reads it through its index.
CREATE TABLE IF NOT EXISTS {schema}.device_sessions (
    session_id    bytea   PRIMARY KEY CHECK (length(session_id) = 16),
    device_id     text    NOT NULL CHECK (octet_length(device_id) BETWEEN 1 AND 64),
    created_at    bigint  NOT NULL,
    last_seen     bigint  NOT NULL,
    idle_timeout  bigint  NOT NULL CHECK (idle_timeout >= 0),
    max_lifetime  bigint  NOT NULL CHECK (max_lifetime >= 0),
    rotated_at    bigint  NOT NULL,
    current_hash  bytea   NOT NULL CHECK (length(current_hash) = 32),  -- SHA-256, never a token
    previous_hash bytea   CHECK (length(previous_hash) = 32),
    overlap_until bigint  NOT NULL,
    generation    bigint  NOT NULL CHECK (generation >= 0),
    revoked_at    bigint,
    version       bigint  NOT NULL CHECK (version >= 0),
    expires_at    bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS device_sessions_expiry
    ON {schema}.device_sessions (expires_at);
INSERT INTO {schema}.schema_version (version) VALUES (3) ON CONFLICT DO NOTHING;
