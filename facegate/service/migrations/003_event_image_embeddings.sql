-- 002: the probe embedding beside each kept event image, so that deleting a person also erases the
-- images of their *denied* attempts (person_id NULL: not recognised, or not enrolled yet), found by
-- similarity to the person's enrolled faces. Deleted with its image; never returned by the API.

ALTER TABLE event_images ADD COLUMN embedding BLOB;  -- little-endian float32, unit length; NULL before 002
