"""Webhook delivery: one signed JSON POST per outbox row.

Headers of every request (docs/integrations/webhooks.md):

* ``X-Facegate-Signature: t=<unix seconds>,v1=<hex>``: ``v1`` is HMAC-SHA256 with the target's
  secret over ``f"{t}.".encode() + body``, computed for this attempt (so ``t`` is fresh on every
  retry while the body stays byte-identical). A receiver recomputes it, compares in constant
  time, and rejects ``t`` more than the replay window (300 s) away from its clock.
* ``Idempotency-Key`` and ``X-Facegate-Delivery``: the event's key, the same on every retry;
  also the payload's ``id``. A receiver that has seen it drops the repeat.
* ``X-Facegate-Event``: the payload's type (``gate.decision``, ``watch.identified``, ``hook.test``).
* ``X-Facegate-Attempt``: 1 for the first try.

Redirects are not followed and environment proxies are not used: the address checked before the
request (:func:`facegate.service.events_out.targets.check_destination`) is the one connected to.
Any 2xx is success; 408, 425, 429 and 5xx (and no answer) are retried with back-off; any other
status is a refusal by the receiver, and the row becomes a dead letter at once (retry it with
``facegate hooks dead-letters --retry`` once the receiver is fixed).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from typing import Any

from facegate.service.events_out.targets import Target, check_destination, render_template

RETRY_STATUS = {408, 425, 429}
REPLAY_WINDOW = 300.0
USER_AGENT = "facegate-hooks/1"


class DeliveryError(Exception):
    """A delivery that did not succeed; ``permanent``: retrying the same request cannot help."""

    def __init__(self, message: str, *, permanent: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


def signature(secret: str, body: bytes, t: int) -> str:
    """The ``X-Facegate-Signature`` header value for ``body`` signed at unix time ``t``."""
    mac = hmac.new(secret.encode("utf-8"), f"{int(t)}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={int(t)},v1={mac}"


def verify_signature(secret: str, header: str | None, body: bytes, *, tolerance: float = REPLAY_WINDOW,
                     now: float | None = None) -> bool:
    """Whether ``header`` is a valid signature of ``body`` made within ``tolerance`` seconds of ``now``."""
    if not header:
        return False
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        k, _, v = item.strip().partition("=")
        parts.setdefault(k, []).append(v)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError, IndexError):
        return False
    now = time.time() if now is None else now
    if abs(now - t) > tolerance:
        return False
    expected = signature(secret, body, t).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))


def body_of(target: Target, payload: dict[str, Any]) -> bytes:
    """The request body: the target's template rendered, or the standard payload."""
    if target.template:
        return render_template(target.template, payload)
    import json

    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise DeliveryError(f"the receiver redirected ({code}) to {newurl[:200]}; redirects are not followed, "
                            "configure the final URL", permanent=True, status=code)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def post(target: Target, payload: dict[str, Any], *, attempt: int, timeout: float, now: float | None = None) -> int:
    """POST one payload to a webhook target; returns the HTTP status (2xx) or raises DeliveryError."""
    check_destination_now(target)
    body = body_of(target, payload)
    t = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Facegate-Event": str(payload.get("type")),
        "X-Facegate-Delivery": str(payload.get("id")),
        "Idempotency-Key": str(payload.get("id")),
        "X-Facegate-Attempt": str(int(attempt)),
        "X-Facegate-Signature": signature(target.secret or "", body, t),
    }
    req = urllib.request.Request(target.url, data=body, method="POST", headers=headers)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            resp.read(65536)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
        retry = status in RETRY_STATUS or status >= 500
        raise DeliveryError(f"HTTP {status} from the receiver", permanent=not retry, status=status) from None
    except DeliveryError:
        raise
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"no answer: {type(exc).__name__}: {reason}") from None


def check_destination_now(target: Target) -> None:
    """Re-check the target's address before connecting (its name may now point elsewhere)."""
    from facegate.service.events_out.targets import HookError

    try:
        check_destination(target.host, target.port, target.allow_private)
    except HookError as exc:
        raise DeliveryError(str(exc)) from None
