-- 001: the gallery's source of truth.
-- people and their faces; every embedding says which model made it; crops kept so a
-- gallery can be re-embedded with another model without the original photos; a change
-- log whose monotonically increasing seq lets every process catch its vector index up.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));

CREATE TABLE people (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a stale index cannot alias a new person
    name    TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    updated REAL NOT NULL
);

CREATE TABLE faces (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    model     TEXT NOT NULL,
    dim       INTEGER NOT NULL,
    embedding BLOB NOT NULL,  -- float32 little-endian, unit length
    quality   TEXT,           -- JSON: the quality gate's metrics
    source    TEXT,           -- file name or "image" for in-memory input
    box       TEXT,           -- JSON [x1, y1, x2, y2] in source pixels
    created   REAL NOT NULL,
    CHECK (length(embedding) = 4 * dim)
);

CREATE INDEX faces_person ON faces (person_id);

CREATE TABLE face_crops (
    face_id   INTEGER PRIMARY KEY REFERENCES faces (id) ON DELETE CASCADE,
    jpeg      BLOB NOT NULL,  -- the face with a margin, unaligned, for re-embedding
    landmarks TEXT NOT NULL   -- JSON 5x2, crop pixels, dlib 5-point order
);

CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER,        -- the person whose faces changed; NULL for 'reset'
    kind      TEXT NOT NULL CHECK (kind IN ('person', 'reset')),
    at        REAL NOT NULL
);
