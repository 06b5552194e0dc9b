-- Version 3: device heartbeat sessions (`handoff_device::DeviceSession`): token hashes only,
-- never a token. `expires_at` is the record's `expires_at()` (min(last_seen + idle_timeout,
-- created_at + max_lifetime)), written on every insert and compare-and-set; the purge of
-- ended sessions reads it through its index. A rowid table (the purge deletes by rowid),
-- so the key is declared NOT NULL.
CREATE TABLE device_sessions (
    session_id    BLOB    NOT NULL PRIMARY KEY CHECK (length(session_id) = 16),
    device_id     TEXT    NOT NULL CHECK (length(CAST(device_id AS BLOB)) BETWEEN 1 AND 64),
    created_at    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    idle_timeout  INTEGER NOT NULL CHECK (idle_timeout >= 0),
    max_lifetime  INTEGER NOT NULL CHECK (max_lifetime >= 0),
    rotated_at    INTEGER NOT NULL,
    current_hash  BLOB    NOT NULL CHECK (length(current_hash) = 32),  -- SHA-256, never a token
    previous_hash BLOB    CHECK (length(previous_hash) = 32),
    overlap_until INTEGER NOT NULL,
    generation    INTEGER NOT NULL CHECK (generation >= 0),
    revoked_at    INTEGER,
    version       INTEGER NOT NULL CHECK (version >= 0),
    expires_at    INTEGER NOT NULL
);
CREATE INDEX device_sessions_expiry ON device_sessions (expires_at);
