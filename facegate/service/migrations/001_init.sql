-- 001: the service's own database (API keys and the audit trail), kept in a file of its
-- own next to the gallery so the gallery's schema and migrations stay the gallery's.

CREATE TABLE api_keys (
    id        TEXT PRIMARY KEY,            -- public prefix of the key (fg_<id>_<secret>), safe to log
    name      TEXT NOT NULL DEFAULT '',    -- what the key is for ("gate 3 camera", "Alice")
    role      TEXT NOT NULL CHECK (role IN ('admin', 'gate', 'viewer')),
    hash      TEXT NOT NULL,               -- sha256 hex of the secret part; the secret itself is never stored
    created   REAL NOT NULL,
    revoked   REAL,                        -- NULL while valid
    last_used REAL
);

CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,               -- unix time, seconds
    kind      TEXT NOT NULL CHECK (kind IN ('access', 'auth_failure', 'audit')),
    gate      TEXT,                        -- access: the gate's name
    decision  TEXT,                        -- access: allow | deny
    person_id INTEGER,                     -- access: who was recognised (kept after the person is deleted)
    name      TEXT,                        -- their name at the time (the audit trail must not change later)
    score     REAL,
    threshold REAL,
    far       REAL,
    faces     INTEGER,
    key_id    TEXT,                        -- the API key that made the request (or was tried)
    client    TEXT,                        -- client address
    action    TEXT,                        -- audit: enrol, delete_person, key_create, ...; auth_failure: why
    detail    TEXT                         -- JSON with anything else worth keeping
);

CREATE INDEX events_at ON events (at);
CREATE INDEX events_person ON events (person_id, at);
CREATE INDEX events_gate ON events (gate, at);

-- Face crops of access events, only when the service runs with --keep-event-images.
CREATE TABLE event_images (
    event_id  INTEGER PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    person_id INTEGER,                     -- so deleting a person also deletes their images here
    jpeg      BLOB NOT NULL
);

CREATE INDEX event_images_person ON event_images (person_id);
