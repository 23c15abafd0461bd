-- 007: per-gate settings (issue 21). A gate is a name used by its checks; a gate without a row here
-- keeps the defaults, so every gate, existing or new, has liveness on (mode 'burst': the burst check
-- when a request carries several frames, else the still check) until an administrator turns it off.

CREATE TABLE gate_settings (
    gate     TEXT PRIMARY KEY,
    liveness TEXT NOT NULL CHECK (liveness IN ('off', 'still', 'burst')),
    updated  REAL NOT NULL
);
