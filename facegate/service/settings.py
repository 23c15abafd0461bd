"""Settings of the REST service that are not pipeline settings (those stay in :class:`~facegate.config.Config`).

Kept apart from ``Config`` on purpose: ``Config`` describes *how faces are computed* and is
shared by every front end, while these describe *how the service is exposed* (limits,
CORS, audit retention), which only ``facegate serve`` needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from facegate.config import Config, machine_time_zone


def default_service_db(config: Config) -> Path:
    """Where keys and the audit log live: next to the gallery file (``gallery.sqlite`` ->
    ``gallery.service.sqlite``), so ``facegate keys`` and ``facegate serve`` with the same
    ``--gallery``/``--home`` always agree; ``<home>/service.sqlite`` for a Milvus gallery."""
    if config.backend == "sqlite":
        g = config.gallery_path
        return g.with_name(g.stem + ".service.sqlite")
    return config.home / "service.sqlite"


@dataclass(frozen=True)
class ServiceSettings:
    """How the service is exposed. Defaults are the safe ones: CORS closed, images not kept."""

    db_path: Path | None = None  # keys + events; default: see default_service_db
    cors_origins: tuple[str, ...] = ()  # exact origins allowed to call the API from a browser; none by default
    max_upload_bytes: int = 16 * 1024 * 1024  # whole request body; larger uploads get 413 before parsing
    max_images: int = 20  # photos per enrolment request
    max_batch_images: int = 200  # photos per bulk enrolment request (POST /enrol/batch)
    # gate bursts (issue 21): at most facegate.liveness.MAX_GATE_FRAMES frames; together at most this many
    # bytes, and this many decoded pixels shared between the frames (so a burst costs what one big image may)
    max_burst_bytes: int = 8 * 1024 * 1024
    max_burst_pixels: int = 24_000_000
    keep_event_images: bool = False  # store the probe face crop with each access event (audit vs privacy)
    auth_fail_limit: int = 10  # failed authentications per client address ...
    auth_fail_window: float = 60.0  # ... within this many seconds, then the address is locked out for the window
    metrics_public: bool = False  # /metrics without a key (for a Prometheus scraper on a closed network)
    warmup: bool = True  # load the models in the background at start; /readyz says when done
    docs: bool = True  # serve /docs: Swagger UI from a local swagger-ui-bundle, else a plain page (schema: /openapi.json)
    static: bool = True  # serve the operator web page at /
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)  # honour X-Forwarded-For only from these
    # slow clients (see facegate.service.server): a request's headers must arrive within header_timeout
    # of the connection being idle, a body may pause at most body_timeout; connections are bounded
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0  # idle keep-alive connections are closed after this
    max_connections: int = 1000  # all clients together; beyond: idle ones evicted, else a JSON 503
    max_connections_per_client: int = 64  # per client address (trusted proxies exempt)
    # integrations (issue 24): outbox limits and delivery timings (an EventsOutSettings); None: its defaults
    events_out: Any = None
    # the site's IANA time zone: access rules made without one get it, so a door's "08:00" is local time
    time_zone: str = field(default_factory=machine_time_zone)

    def replace(self, **changes: object) -> ServiceSettings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def resolved_db(self, config: Config) -> Path:
        return Path(self.db_path) if self.db_path is not None else default_service_db(config)
