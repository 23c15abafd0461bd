-- 005: events out (issue 24). Targets that gate decisions (and, when asked, watch identifications)
-- are delivered to, and a durable outbox: a row per (event, target) written in the SAME transaction
-- as the access event it carries, so a committed decision is never lost on the way out, and
-- delivered later by a background worker (facegate.service.events_out.worker).

CREATE TABLE hook_targets (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,          -- how admins refer to it: "front-door-webhook"
    kind          TEXT NOT NULL CHECK (kind IN ('webhook', 'mqtt')),
    url           TEXT NOT NULL,                 -- http(s)://... or mqtt(s)://host:port; never with credentials
    secret        TEXT,                          -- webhook: the HMAC key; mqtt: the password. Never returned
    username      TEXT,                          -- mqtt only
    events        TEXT NOT NULL,                 -- comma-separated: gate.decision, watch.identified
    gates         TEXT,                          -- comma-separated gate names; NULL: every gate
    template      TEXT,                          -- webhook: a JSON body template; NULL: the standard payload
    options       TEXT NOT NULL DEFAULT '{}',    -- JSON: mqtt topic_prefix, discovery_prefix, node_id
    allow_private INTEGER NOT NULL DEFAULT 0,    -- 1: loopback, link-local and private addresses allowed
    enabled       INTEGER NOT NULL DEFAULT 1,
    created       REAL NOT NULL,
    updated       REAL NOT NULL,
    delivered     INTEGER NOT NULL DEFAULT 0,    -- running counters, for 'hooks list'
    failures      INTEGER NOT NULL DEFAULT 0,
    dropped       INTEGER NOT NULL DEFAULT 0,    -- pending rows dropped because the outbox was full
    last_success  REAL,
    last_error    TEXT,
    last_error_at REAL
);

CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    target_id   INTEGER NOT NULL REFERENCES hook_targets (id) ON DELETE CASCADE,
    event_id    INTEGER,                          -- events.id of a gate decision; NULL for watch identifications
    kind        TEXT NOT NULL,                    -- gate.decision | watch.identified | hook.test
    idem        TEXT NOT NULL,                    -- idempotency key: one per event, the same on every retry
    payload     TEXT NOT NULL,                    -- the JSON body, fixed at enqueue time
    created     REAL NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     REAL NOT NULL,                    -- not before this unix time (back-off)
    lease_until REAL,                             -- claimed by a worker until then (several processes may deliver)
    last_error  TEXT,
    dead_at     REAL,
    UNIQUE (target_id, idem)
);

CREATE INDEX outbox_due ON outbox (target_id, state, next_at);
CREATE INDEX outbox_state ON outbox (state, id);

-- Counters that outlive the rows: how many were dropped because the outbox was full, and when.
CREATE TABLE outbox_counters (
    name    TEXT PRIMARY KEY,
    value   INTEGER NOT NULL,
    updated REAL NOT NULL
);
