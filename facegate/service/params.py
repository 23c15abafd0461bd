"""Where the API lives and the bounds its path and query parameters share.

One value of each, so every router refuses the same out-of-range id or malformed gate name the
same way (and the OpenAPI schema states the same bounds everywhere).
"""

from __future__ import annotations

API = "/api/v1"  # every route but health, metrics, the schema, the docs and the web page lives under this prefix
MAX_ID = 2**62  # SQLite integers are 64-bit; larger ids cannot exist and must not reach the driver
GATE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"

# The one face-choice rule (facegate.pipeline.DEFAULT_PICK) and the integrity override, as every route takes them.
PICK_DOC = ("a photo with several faces: use the largest (default; the answer says how many were found and which "
            "was used), refuse it (single: 422 multiple_faces), or the one nearest the centre (center)")
FORCE_DOC = ("enrol photos the integrity checks refuse (the face is another enrolled person, does not match the "
             "person's photos at FAR 1e-3, or the photo is enrolled under another name; otherwise 409 "
             "enrolment_conflict); forced photos are recorded as forced")
