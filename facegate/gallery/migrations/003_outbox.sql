-- 003: notes committed with a write. A caller that keeps its own record of gallery changes in another
-- file (the service's audit trail) passes a note; it is stored in the same transaction as the write
-- it describes, with the write's result, and removed by the caller once its own record is written.
-- A crash between the two leaves the note here, and the caller finishes its record on the next start.

CREATE TABLE outbox (
    token TEXT PRIMARY KEY,   -- the caller's id for the write (idempotent replays)
    at    REAL NOT NULL,      -- commit time, seconds
    note  TEXT NOT NULL       -- JSON: the caller's note plus "result" (person_id, name, detail)
);
