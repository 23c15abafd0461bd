-- 004: find the faces enrolled from a photo by its bytes. Enrolment stores each photo's sha256 in the face's
-- quality JSON ("photo_sha256"); this index on that value lets enrolment notice the same photo offered again
-- (under the same name: skipped; under another name: refused unless forced) without reading every face.

CREATE INDEX faces_photo_sha256 ON faces (json_extract(quality, '$.photo_sha256'));
