-- 003: the gallery write an audit event records, by the token the write's note carried (see
-- Gallery.notes): replaying a note after a crash adds its event once, never twice.

ALTER TABLE events ADD COLUMN op TEXT;
CREATE UNIQUE INDEX events_op ON events (op) WHERE op IS NOT NULL;
