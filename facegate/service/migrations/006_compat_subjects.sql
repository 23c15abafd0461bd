-- 006: CompreFace-compatible API (issue 24). CompreFace lets a client create a subject before it has
-- any face (POST /api/v1/recognition/subjects); a facegate person exists only with faces. A name
-- created that way waits here until its first face is added (then the gallery holds the person and
-- the row goes), so listing subjects shows it as CompreFace would.

CREATE TABLE compat_subjects (
    name    TEXT PRIMARY KEY,
    created REAL NOT NULL
);
