-- identity crate family: embedded (SQLite) store schema, version 1.
-- Every time column holds the application's clock (seconds since the epoch); SQLite's
-- clock is never consulted.

CREATE TABLE replay_log (
    key    BLOB    PRIMARY KEY CHECK (length(key) = 32),
    until  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX replay_log_until ON replay_log (until);

-- One row: how many entries the replay log holds (kept by triggers, so a capacity check
-- is one read, not a count).
CREATE TABLE replay_meta (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    entries  INTEGER NOT NULL CHECK (entries >= 0)
);
INSERT INTO replay_meta (one, entries) VALUES (1, 0);
CREATE TRIGGER replay_log_ins AFTER INSERT ON replay_log
BEGIN UPDATE replay_meta SET entries = entries + 1 WHERE one = 1; END;
CREATE TRIGGER replay_log_del AFTER DELETE ON replay_log
BEGIN UPDATE replay_meta SET entries = entries - 1 WHERE one = 1; END;

CREATE TABLE refresh_families (
    id                  BLOB    PRIMARY KEY CHECK (length(id) = 16),
    subject             TEXT    NOT NULL CHECK (length(CAST(subject AS BLOB)) BETWEEN 1 AND 255),
    client_id           TEXT    NOT NULL CHECK (length(CAST(client_id AS BLOB)) BETWEEN 1 AND 255),
    created_at          INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    head                BLOB    NOT NULL CHECK (length(head) = 16),
    head_parent         BLOB    CHECK (length(head_parent) = 16),
    head_generation     INTEGER NOT NULL CHECK (head_generation >= 0),
    version             INTEGER NOT NULL CHECK (version >= 0),
    status              TEXT    NOT NULL CHECK (status IN ('active', 'revoked')),
    revoked_at          INTEGER,
    revoked_reason      TEXT,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL AND revoked_reason IS NOT NULL))
) WITHOUT ROWID;
CREATE INDEX refresh_families_subject ON refresh_families (subject) WHERE status = 'active';
CREATE INDEX refresh_families_expiry ON refresh_families (absolute_expires_at);

CREATE TABLE refresh_tokens (
    family_id   BLOB    NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    id          BLOB    NOT NULL CHECK (length(id) = 16),
    parent      BLOB    CHECK (length(parent) = 16),
    generation  INTEGER NOT NULL CHECK (generation >= 0),
    secret_hash BLOB    NOT NULL CHECK (length(secret_hash) = 32),  -- SHA-256, never the secret
    issued_at   INTEGER NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('active', 'rotated', 'superseded')),
    state_at    INTEGER,
    successor   BLOB,
    grace_uses  INTEGER NOT NULL DEFAULT 0 CHECK (grace_uses >= 0),
    PRIMARY KEY (family_id, id),
    CHECK ((state = 'active') = (state_at IS NULL AND successor IS NULL))
) WITHOUT ROWID;

CREATE TABLE devices (
    device_id    TEXT    PRIMARY KEY CHECK (length(CAST(device_id AS BLOB)) BETWEEN 1 AND 64),
    state        TEXT    NOT NULL
                 CHECK (state IN ('pending', 'approved', 'suspended', 'revoked', 'denied', 'expired')),
    state_by     TEXT    CHECK (length(CAST(state_by AS BLOB)) BETWEEN 1 AND 64),
    state_at     INTEGER,
    expires_at   INTEGER,
    version      INTEGER NOT NULL CHECK (version >= 0)
) WITHOUT ROWID;

CREATE TABLE device_keys (
    device_id      TEXT    NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    key_id         TEXT    NOT NULL CHECK (length(CAST(key_id AS BLOB)) BETWEEN 1 AND 64),
    position       INTEGER NOT NULL CHECK (position BETWEEN 0 AND 3),
    status         TEXT    NOT NULL CHECK (status IN ('active', 'retiring')),
    retiring_until INTEGER,
    sealed_secret  BLOB    NOT NULL CHECK (length(sealed_secret) <= 512),  -- never plain text
    PRIMARY KEY (device_id, key_id),
    UNIQUE (device_id, position),
    CHECK ((status = 'retiring') = (retiring_until IS NOT NULL))
) WITHOUT ROWID;
