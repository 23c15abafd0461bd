"""Request bodies: images as multipart uploads or base64 JSON, under a hard size limit.

Parsing is done here by hand rather than by FastAPI's parameter injection because one
route accepts two content types (``multipart/form-data`` with file fields, or
``application/json`` with ``*_base64`` strings) and because every way a body can be
wrong (no boundary, truncated part, invalid JSON, bad base64, a text field where a file
belongs) must become a 4xx with a code, never a 500. The schema each route advertises is
built by :func:`image_body` so the OpenAPI document matches what is parsed.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate.service.errors import ApiError, error_body

log = logging.getLogger(__name__)

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413 before anything parses them.

    A declared ``Content-Length`` over the limit is answered at once, after draining
    what the client sends (up to ``drain`` bytes) so an ordinary client reads the 413
    instead of a reset connection. A body without a length (chunked) is read here up to
    the limit and then handed on whole, so no route ever sees part of an oversized body.
    A body longer than its declared length is cut by the HTTP server itself.
    """

    def __init__(self, app: ASGIApp, limit: int, drain: int | None = None) -> None:
        self.app = app
        self.limit = int(limit)
        self.drain = int(drain if drain is not None else max(4 * limit, 64 * 1024 * 1024))

    async def _reply(self, send: Send, status: int = 413) -> None:
        body = json.dumps(
            error_body("payload_too_large", f"request body is over the limit of {self.limit:,} bytes")
        ).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        expects_continue = False
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = -1
            elif k == b"expect" and v.lower() == b"100-continue":
                expects_continue = True
        if declared is not None and declared < 0:
            await self._reply_bad_length(send)
            return
        if declared is not None and declared > self.limit:
            seen = 0
            # a client waiting for "100 Continue" has sent nothing yet: answer without reading
            # (reading would make the server send 100 Continue and the client the whole body)
            while not expects_continue and seen <= self.drain:
                msg = await receive()
                if msg["type"] != "http.request":
                    return  # client went away
                seen += len(msg.get("body", b""))
                if not msg.get("more_body", False):
                    break
            log.info("refused a %d-byte request body on %s", declared, scope.get("path"))
            await self._reply(send)
            return

        if declared is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            # no Content-Length (chunked): read it here, up to the limit, and replay it to the app,
            # so every route (FastAPI's own body parsing included) sees either a whole body or a 413
            chunks: list[bytes] = []
            total = 0
            while True:
                msg = await receive()
                if msg["type"] != "http.request":
                    return  # client went away
                chunk = msg.get("body", b"")
                total += len(chunk)
                if total > self.limit:
                    log.info("refused a streamed request body over %d bytes on %s", self.limit, scope.get("path"))
                    await self._reply(send)
                    return
                chunks.append(chunk)
                if not msg.get("more_body", False):
                    break
            body = b"".join(chunks)
            sent = False

            async def replay() -> Message:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()  # after the body: disconnect notifications

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    async def _reply_bad_length(self, send: Send) -> None:
        body = json.dumps(error_body("bad_request", "invalid Content-Length header")).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


@dataclass
class Body:
    """A parsed request body: files by field name (several per field allowed) and other fields."""

    kind: str  # "multipart" or "json"
    files: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)  # field -> [(filename, bytes)]
    fields: dict[str, Any] = field(default_factory=dict)

    def one_image(self, name: str) -> tuple[str, bytes]:
        """The single image of field ``name`` (multipart ``name`` or JSON ``name_base64``)."""
        got = self.images(name)
        if len(got) != 1:
            raise ApiError(422, "validation", f"expected exactly one image in {self.field_name(name)}, got {len(got)}")
        return got[0]

    def images(self, name: str, plural: str | None = None) -> list[tuple[str, bytes]]:
        """Images of field ``name`` (multipart: repeated ``name``/``plural`` parts; JSON: ``name_base64``
        string or ``plural_base64`` list)."""
        if self.kind == "multipart":
            out = list(self.files.get(name, []))
            if plural:
                out += self.files.get(plural, [])
            for key in (name, plural):
                if key and key in self.fields and key not in self.files:
                    raise ApiError(400, "invalid_field", f"multipart field {key!r} must be a file upload, not text")
            if not out:
                want = f"{plural!r} (one or more image files)" if plural else f"{name!r} (an image file)"
                raise ApiError(422, "validation", f"multipart field {want} is required")
            return out
        out = []
        single = self.fields.get(f"{name}_base64")
        if single is not None:
            out.append((f"{name}", decode_base64(single, f"{name}_base64")))
        if plural and self.fields.get(f"{plural}_base64") is not None:
            many = self.fields[f"{plural}_base64"]
            if not isinstance(many, list):
                raise ApiError(422, "validation", f"{plural}_base64 must be a list of base64 strings")
            out += [(f"{plural}[{i}]", decode_base64(s, f"{plural}_base64[{i}]")) for i, s in enumerate(many)]
        if not out:
            want = f"{plural}_base64 (a list)" if plural else f"{name}_base64"
            raise ApiError(422, "validation", f"JSON field {want} (base64 image) is required")
        return out

    def field_name(self, name: str) -> str:
        return name if self.kind == "multipart" else f"{name}_base64"

    def text(self, name: str, *, required: bool = False, max_len: int = 200) -> str | None:
        v = self.fields.get(name)
        if v is None:
            if required:
                raise ApiError(422, "validation", f"field {name!r} is required")
            return None
        if not isinstance(v, str):
            raise ApiError(422, "validation", f"field {name!r} must be a string")
        v = v.strip()
        if required and not v:
            raise ApiError(422, "validation", f"field {name!r} must not be empty")
        if len(v) > max_len:
            raise ApiError(422, "validation", f"field {name!r} is longer than {max_len} characters")
        return v


def decode_base64(value: Any, where: str) -> bytes:
    """Strict base64 (standard or URL-safe alphabet, optional ``data:`` URL prefix, whitespace ignored)."""
    if not isinstance(value, str):
        raise ApiError(422, "validation", f"{where} must be a base64 string")
    s = _DATA_URL.sub("", value.strip(), count=1)
    s = "".join(s.split())
    if "-" in s or "_" in s:
        s = s.replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4) if not s.endswith("=") else ""
    try:
        data = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "invalid_base64", f"{where} is not valid base64 ({exc})") from exc
    if not data:
        raise ApiError(400, "invalid_image", f"{where} is empty")
    return data


async def read_body(request: Request, *, max_files: int = 20, max_fields: int = 20) -> Body:
    """Parse a multipart or JSON body; anything else is 415, anything malformed 400."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=max_files, max_fields=max_fields, max_part_size=64 * 1024)
        except Exception as exc:  # MultiPartException, HTTPException(400) or a parser error on a malformed body
            msg = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if str(msg).startswith(("Too many files", "Too many fields")):  # stopped at the limit, before the rest
                raise ApiError(413, "too_many_files", f"too many parts in one request (at most {max_files} files and "
                               f"{max_fields} other fields)") from exc
            raise ApiError(400, "malformed_multipart", f"cannot parse the multipart body: {msg}") from exc
        body = Body("multipart")
        try:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read()
                    body.files.setdefault(key, []).append((value.filename or key, data))
                else:
                    body.fields[key] = value
        finally:
            await form.close()
        return body
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            raw = await request.body()
        except ClientDisconnect as exc:  # the server closed a stalled upload, or the client left
            raise ApiError(400, "incomplete_body", "the connection closed before the whole body arrived") from exc
        try:
            data = json.loads(raw)
        except RecursionError as exc:  # "[[[[..." deeper than the parser's stack: malformed for us
            raise ApiError(400, "invalid_json", "the JSON body is nested too deeply") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_json", "the JSON body must be an object")
        return Body("json", fields=data)
    raise ApiError(
        415,
        "unsupported_media_type",
        f"send multipart/form-data or application/json, not {ctype or 'a body without Content-Type'}",
    )


async def read_json(request: Request) -> dict[str, Any]:
    """A JSON object body (for routes without images)."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not (ctype == "application/json" or ctype.endswith("+json")):
        raise ApiError(415, "unsupported_media_type", f"send application/json, not {ctype or 'a body without Content-Type'}")
    return (await read_body(request)).fields


async def read_photos(request: Request, limit: int, per: str = "request") -> tuple[Body, list[tuple[str, bytes]]]:
    """The body and its photos (fields ``image``/``images``), at most ``limit`` of them (422 beyond)."""
    body = await read_body(request, max_files=limit + 1, max_fields=10)
    photos = body.images("image", "images")
    if len(photos) > limit:
        raise ApiError(422, "validation", f"at most {limit} photos per {per}")
    return body, photos


def clean_text(value: Any, field: str, max_len: int = 200) -> str:
    """A name-like string: non-empty after trimming, printable, encodable, bounded."""
    if not isinstance(value, str):
        raise ApiError(422, "validation", f"{field} must be a string")
    v = value.strip()
    if not v:
        raise ApiError(422, "validation", f"{field} must not be empty")
    if len(v) > max_len:
        raise ApiError(422, "validation", f"{field} is longer than {max_len} characters")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(422, "validation", f"{field} is not valid Unicode text") from exc
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in v):
        raise ApiError(422, "validation", f"{field} must not contain control characters")
    return v


M = TypeVar("M", bound=BaseModel)


async def read_model(request: Request, model: type[M]) -> M:
    """A JSON body validated as ``model``. Routes call this *after* their authentication
    dependency has run, so an unauthenticated caller gets 401 whatever it sent (FastAPI's own
    body parameters are parsed and validated before dependencies can refuse the request)."""
    fields = await read_json(request)
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors()]) from exc


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The ``requestBody`` of a route that reads ``model`` with :func:`read_model`, for ``openapi_extra``."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


# -- OpenAPI descriptions of the two body shapes --------------------------------------------------
# A few bytes of a JPEG's base64, to show the shape of the field (a data: URL prefix is accepted too).
B64_EXAMPLE = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8U..."
IMAGE_FIELDS: dict[str, str] = {
    "image": "the image (JPEG, PNG, WebP, BMP, GIF, PPM/PGM or TIFF)",
    "image1": "the first image",
    "image2": "the second image",
    "images": "one or more images, each a separate part of the same name",
}
# Text fields routes send along with images, documented here when the route gives no description.
TEXT_FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("the person's name (unique in the gallery; an existing name gets the photos added)", "Ada Lovelace"),
}


def _image_doc(name: str, multipart: bool) -> dict[str, Any]:
    what = IMAGE_FIELDS.get(name, "an image")
    if multipart:  # a file has no text example: the description shows how to send one
        return {"type": "string", "format": "binary", "description": f"{what}, as a file part (curl -F {name}=@photo.jpg)"}
    return {"type": "string", "description": f"{what}, base64 (standard or URL-safe; a data: URL is fine)",
            "examples": [B64_EXAMPLE]}


def image_body(
    singles: list[str],
    *,
    plural: str | None = None,
    text_fields: dict[str, dict[str, Any]] | None = None,
    required_text: list[str] | None = None,
    description: str = "",
) -> dict[str, Any]:
    """The ``requestBody`` of a route taking images both ways, for ``openapi_extra``: multipart parts named
    ``singles``/``plural``, or JSON with ``<name>_base64`` strings (``<plural>_base64``: a list of them)."""
    text_fields = dict(text_fields or {})
    for key, schema in list(text_fields.items()):
        if "description" not in schema and key in TEXT_FIELDS:
            doc, example = TEXT_FIELDS[key]
            text_fields[key] = {**schema, "description": doc, "examples": [example]}
    required_text = required_text or []
    mp_props: dict[str, Any] = {n: _image_doc(n, True) for n in singles}
    js_props: dict[str, Any] = {f"{n}_base64": _image_doc(n, False) for n in singles}
    mp_req = list(singles)
    js_req = [f"{n}_base64" for n in singles]
    if plural:
        mp_props[plural] = {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1,
                            "description": f"{IMAGE_FIELDS.get(plural, 'images')}, as file parts "
                            f"(curl -F {plural}=@1.jpg -F {plural}=@2.jpg)"}
        js_props[f"{plural}_base64"] = {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                        "description": "a list of images, each base64 (a data: URL is fine)",
                                        "examples": [[B64_EXAMPLE]]}
        mp_req.append(plural)
        js_req.append(f"{plural}_base64")
    mp_props.update(text_fields)
    js_props.update(text_fields)
    mp_req += required_text
    js_req += required_text
    return {
        "requestBody": {
            "required": True,
            "description": (description + "; " if description else "")
            + "multipart/form-data with file parts, or application/json with base64 fields named <field>_base64",
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": mp_props, "required": mp_req},
                },
                "application/json": {
                    "schema": {"type": "object", "properties": js_props, "required": js_req},
                },
            },
        }
    }
