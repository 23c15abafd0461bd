"""What one app instance holds (``app.state.svc``): configuration, the service database, the
engine, metrics, and the authentication bookkeeping that lives as long as the app."""

from __future__ import annotations

import logging

from starlette.requests import Request

from facegate.config import Config
from facegate.service.auth import FailureLimiter, KeyVerifier, key_id_of
from facegate.service.db import ServiceDB
from facegate.service.engine import Engine
from facegate.service.metrics import Metrics
from facegate.service.server import client_address, parse_proxies
from facegate.service.settings import ServiceSettings

log = logging.getLogger(__name__)


class Service:
    """Everything one app instance holds; routers reach it through :func:`facegate.service.deps.get_service`."""

    def __init__(self, config: Config, settings: ServiceSettings, db: ServiceDB, engine: Engine, metrics: Metrics) -> None:
        self.config = config
        self.settings = settings
        self.db = db
        self.engine = engine
        self.metrics = metrics
        self.keys = KeyVerifier(db)
        self.limiter = FailureLimiter(settings.auth_fail_limit, settings.auth_fail_window)
        self.proxies = parse_proxies(settings.trusted_proxies)
        self.closed = False

    def client_of(self, request: Request) -> str:
        """The client address for lockouts and the audit trail (X-Forwarded-For only via a trusted proxy)."""
        host = request.client.host if request.client else "unknown"
        return client_address(host, request.headers.get("x-forwarded-for"), self.proxies)

    def auth_failed(self, client: str, presented: str | None, reason: str, path: str) -> None:
        """Count a failed authentication towards ``client``'s lockout and record it (blocking: run in a thread)."""
        n = self.limiter.fail(client)
        self.metrics.auth_failures.labels(reason).inc()
        kid = key_id_of(presented or "")
        log.warning("authentication failed from %s on %s: %s (key id %s, %d in window)", client, path, reason, kid, n)
        if n <= self.settings.auth_fail_limit:  # past the limit the address is locked out: no flood of rows
            try:
                self.db.add_event("auth_failure", key_id=kid, client=client, action=reason, detail={"path": path[:200]})
            except Exception as exc:  # noqa: BLE001 - recording is best-effort; the 401 must still be answered
                log.warning("could not record an authentication failure: %s", exc)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.close()
            self.db.close()
