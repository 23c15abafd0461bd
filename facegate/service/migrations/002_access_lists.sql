-- 002: per-gate access lists. A gate with at least one rule admits only the recognised people
-- its rules permit (a person directly, or through a group), optionally in weekly time windows;
-- a gate without rules keeps admitting every recognised person. Person ids are the gallery's
-- (another file), so they carry no foreign key: deleting a person removes their rows here.

CREATE TABLE access_groups (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);

CREATE TABLE access_group_members (
    group_id  INTEGER NOT NULL REFERENCES access_groups (id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL,
    PRIMARY KEY (group_id, person_id)
);

CREATE INDEX access_group_members_person ON access_group_members (person_id);

CREATE TABLE access_rules (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    gate      TEXT NOT NULL,
    person_id INTEGER,                     -- exactly one of person_id and group_id
    group_id  INTEGER REFERENCES access_groups (id) ON DELETE CASCADE,
    days      TEXT,                        -- comma-separated mon..sun; NULL: every day
    start     TEXT,                        -- HH:MM local time of tz; NULL with end NULL: all day
    end       TEXT,                        -- HH:MM; end <= start crosses midnight
    tz        TEXT,                        -- IANA time zone of the window; NULL: UTC
    created   REAL NOT NULL,
    CHECK ((person_id IS NULL) != (group_id IS NULL)),
    CHECK ((start IS NULL) = (end IS NULL))
);

CREATE INDEX access_rules_gate ON access_rules (gate);
