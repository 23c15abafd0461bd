"""How the service meets the network: uvicorn's options, a guard against slow clients, and
:func:`serve_in_thread` to run the app on a loopback port (tests, benchmarks, scripts).

``facegate serve`` and :func:`serve_in_thread` both take their uvicorn options from
:func:`uvicorn_options`, so the hardening below is the same in tests as in production:

* proxy headers: uvicorn's own ``X-Forwarded-For`` handling is off (by default it trusts
  loopback, so any local client could pick its address); :func:`client_address` honours the
  header only from the configured ``--trusted-proxy`` addresses, in one place;
* slow clients: uvicorn with h11 waits for request headers forever and never times out a
  body that trickles in. :func:`guarded_protocol` adds, per connection, a deadline for the
  headers of each request (from the moment the connection is idle, not reset by data), an
  idle timeout while a body is being received, a bound on open connections per client
  address (a new connection evicts that client's oldest one still waiting for headers) and
  a bound on all connections, answered with a JSON 503 instead of uvicorn's plain-text one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(proxies: Iterable[str]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values (addresses or CIDR networks) as networks; a bad one is a UsageError."""
    from facegate.errors import UsageError

    out = []
    for p in proxies:
        try:
            out.append(ipaddress.ip_network(p.strip(), strict=False))
        except ValueError as exc:
            raise UsageError(f"--trusted-proxy {p!r} is not an IP address or network") from exc
    return tuple(out)


def _trusted(host: str, proxies: tuple[Network, ...]) -> bool:
    if not proxies:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The client a request stands for: the TCP peer, unless the peer is a trusted proxy; then the
    nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy (each proxy appends
    the address it saw, so entries left of the first untrusted one are the client's to forge)."""
    if not forwarded_for or not _trusted(peer, proxies):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not hop:
            continue
        if not _trusted(hop, proxies):
            return hop[:64]
    return peer


_OVERLOADED = json.dumps({"code": "overloaded", "message": "too many open connections; try again shortly"}).encode()
_OVERLOADED_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_OVERLOADED)).encode() + b"\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    + _OVERLOADED
)


def guarded_protocol(
    *,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    max_per_client: int,
    proxies: tuple[Network, ...] = (),
) -> type:
    """An h11 protocol class for uvicorn (``http=``) with the slow-client guard described above.

    One class per server: the registry of open connections lives on the class. Trusted proxies
    are exempt from the per-client bound (all their clients share their address).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        # every open connection, oldest first; and per client address
        _open: OrderedDict[Any, None] = OrderedDict()
        _by_client: dict[str, OrderedDict[Any, None]] = {}

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._timer: asyncio.TimerHandle | None = None
            self._active: Any = None  # the request cycle whose headers were last seen complete
            self._answered: Any = None  # the cycle last seen answered (None: no request yet)
            self._host = self.client[0] if self.client else ""
            cls = type(self)
            cls._open[self] = None
            mine = cls._by_client.setdefault(self._host, OrderedDict())
            mine[self] = None
            self._arm_header_deadline()
            if self._host and not _trusted(self._host, proxies) and len(mine) > max_per_client:
                if not self._evict(mine):
                    self._refuse(f"more than {max_per_client} connections from {self._host}")
                    return
            if len(cls._open) > max_connections and not self._evict(cls._open):
                self._refuse(f"more than {max_connections} open connections")

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            cls = type(self)
            cls._open.pop(self, None)
            mine = cls._by_client.get(self._host)
            if mine is not None:
                mine.pop(self, None)
                if not mine:
                    del cls._by_client[self._host]
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._after_io()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._after_io()

        # -- the guard ----------------------------------------------------------------------
        def _waiting(self) -> bool:
            """Between requests: no request yet, or the last one answered."""
            return self.cycle is None or self.cycle.response_complete

        def _after_io(self) -> None:
            if self.transport is None or self.transport.is_closing():
                return
            cycle = self.cycle
            if self._waiting():
                if self._answered is not cycle:  # just answered: the next request's headers are due
                    self._answered = cycle
                    self._arm_header_deadline()
                return
            if cycle is not self._active:  # headers of a new request are complete
                self._active = cycle
                self._cancel()
            if cycle.more_body:  # receiving a body: at most body_timeout between pieces of it
                self._cancel()
                self._timer = self.loop.call_later(body_timeout, self._expire, "request body")
            else:
                self._cancel()

        def _arm_header_deadline(self) -> None:
            self._cancel()
            self._timer = self.loop.call_later(header_timeout, self._expire, "request headers")

        def _cancel(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expire(self, what: str) -> None:
            self._timer = None
            if self.transport is None or self.transport.is_closing():
                return
            if what == "request headers" and not self._waiting():
                return
            log.info("closing a connection from %s: %s not received in time", self._host or "?", what)
            self.transport.close()

        def _evict(self, pool: OrderedDict[Any, None]) -> bool:
            """Close the oldest connection in ``pool`` still waiting for a request (not this one)."""
            for other in pool:
                if other is not self and other._waiting() and not other.transport.is_closing():
                    log.info("closing an idle connection from %s to make room", other._host or "?")
                    other.transport.close()
                    return True
            return False

        def _refuse(self, why: str) -> None:
            log.warning("refusing a connection from %s: %s", self._host or "?", why)
            self._cancel()
            self.transport.write(_OVERLOADED_RESPONSE)
            self.transport.close()

    return GuardedH11Protocol


def uvicorn_options(settings: Any = None) -> dict[str, Any]:
    """uvicorn keyword arguments for serving the app with ``settings`` (a ServiceSettings)."""
    from facegate.service.settings import ServiceSettings

    s = settings if settings is not None else ServiceSettings()
    return {
        "proxy_headers": False,  # client_address() decides, from --trusted-proxy only
        "forwarded_allow_ips": [],
        "server_header": False,
        "timeout_keep_alive": s.keep_alive_timeout,
        "http": guarded_protocol(
            header_timeout=s.header_timeout,
            body_timeout=s.body_timeout,
            max_connections=s.max_connections,
            max_per_client=s.max_connections_per_client,
            proxies=parse_proxies(s.trusted_proxies),
        ),
    }


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0, **uvicorn_options_: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn until the block ends; yields the base URL. Runs the app's lifespan.
    The options are :func:`uvicorn_options` of the app's settings; keyword arguments override them."""
    import uvicorn

    port = port or free_port(host)
    svc = getattr(getattr(app, "state", None), "svc", None)
    options = {**uvicorn_options(getattr(svc, "settings", None)), **uvicorn_options_}
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server on {host}:{port} failed to start")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server on {host}:{port} did not start in {timeout:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
