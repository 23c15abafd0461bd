-- 002: staging for 'facegate reembed'. New embeddings are written here in batches (so an
-- interrupted re-embed resumes where it stopped) and swapped into faces in one transaction,
-- so the gallery never holds a mix of two models.

CREATE TABLE reembed_staging (
    face_id   INTEGER PRIMARY KEY REFERENCES faces (id) ON DELETE CASCADE,
    model     TEXT NOT NULL,
    dim       INTEGER NOT NULL,
    embedding BLOB NOT NULL
);
