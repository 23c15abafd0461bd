"""How the service answers: the JSON encoder of every response and the documented error responses."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from facegate.service import schemas as S


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: ASCII escapes (a stray lone surrogate cannot break UTF-8
    encoding) and no NaN (not JSON)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


_ERR = {"model": S.ErrorOut}
# The errors an authenticated route can answer, for its ``responses`` in the OpenAPI schema.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERR, "description": "malformed request: bad image, multipart, base64 or JSON"},
    401: {**_ERR, "description": "no key, or an unknown, wrong or revoked key"},
    403: {**_ERR, "description": "the key's role may not do this"},
    404: {**_ERR, "description": "no such person, face, event or key"},
    409: {**_ERR, "description": "conflict: name taken, gallery of another model, unsupported by the backend"},
    413: {**_ERR, "description": "request body or image too large; a gate burst of too many bytes or pixels"},
    415: {**_ERR, "description": "send multipart/form-data or application/json"},
    422: {**_ERR, "description": "invalid fields; no face, several faces, every enrolment photo rejected, or more "
                                  "frames than a gate check takes"},
    429: {**_ERR, "description": "too many failed authentications from this address; see Retry-After"},
    503: {**_ERR, "description": "not ready: models loading or no calibrated threshold"},
}

# A route answering a JPEG (a stored or kept face crop): its 200 response in the schema.
JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}}
