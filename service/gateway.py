"""The stable front door on :3000: a Starlette app served by uvicorn that forwards to the active
model service with aiohttp's client, so that a new model replaces the old one with no failed request.

BentoML's server (and ZenML's BentoML deployer, which starts it) cannot swap the model of a running
process, and stopping one server before starting the next drops every request in between. So the
deployment pipeline runs each model version as its own BentoML service on a *backend* port (blue /
green: 3001, 3002) and this gateway forwards client requests to the active one:

1. the new backend is started and smoke-tested on the idle port while the old one keeps serving;
2. the state file is rewritten to name the new backend (:func:`write_state`); the gateway watches
   it and sends every request that arrives from then on to the new backend;
3. once no request is in flight on the old backend (``GET /-/gateway`` reports it), the old
   service is stopped.

What a client sees (``docs/api.md``, "Behind the gateway"):

* a request body is read here first, up to the service's ``max_body_bytes`` (413 otherwise, before
  the backend sees a byte), within the ``gateway:`` timeouts of ``configs/deployment.yaml``
  (408 otherwise); ``Expect: 100-continue`` is answered as soon as the body is wanted;
* the request is sent to the backend once. Only when no connection to the backend could be opened
  is it tried again (once, on the backend active then); a ``POST`` or ``PATCH`` the backend may have
  received is never sent twice (a request of an idempotent method -- ``GET``, ``HEAD``, ``OPTIONS``,
  ``PUT``, ``DELETE`` -- whose connection broke off is sent once more by aiohttp itself, as RFC 9112
  section 9.3.1 allows; the service's scoring and label routes are all ``POST``). No backend to
  reach: 503 with ``Retry-After``; a backend that breaks off its answer: 502; one that does not answer
  in time (a wait for a free pooled connection included): 504 -- each with a JSON ``{"error": ...}`` body;
* the backend's answer is read whole before the client gets its first byte, so a backend that dies
  half-way through still gives the client a complete 502, never a truncated 200;
* malformed HTTP gets a JSON 400 (431 for an oversized head) and the connection is closed; so does a
  header value with a control character, and a target with a ``#`` gets a 400 (what would follow it
  cannot be forwarded);
* the target, headers and body reach the backend as the client sent them, less the hop-by-hop
  headers, plus ``X-Forwarded-For``/``-Proto``/``-Host`` and ``X-Request-ID`` (a header value that
  is not UTF-8 is sent as the UTF-8 of its Latin-1 reading: aiohttp sends header text as UTF-8).

Structure: :func:`create_app` builds a Starlette app with the front door (:class:`FrontDoor`) mounted
last, as the fallback; routes placed before it (``extra_routes``) are served by this process itself
-- ``GET /-/gateway`` (loopback clients only) is the first. The front door sends

* the pages of the **analyst console** (:mod:`service.console`: ``/``, ``/signin``, ``/queue``,
  ``/static/...``, every path one of its routes matches) to the console app, mounted in this process
  when ``GatewaySettings.console`` is set (``gateway_control.ensure_running`` sets it);
* ``/docs`` to the backend's ``/``: BentoML serves its Swagger UI at ``/`` and has no setting to
  move it, and its page loads ``./docs.json`` and ``./static_content/...`` relative to itself, which
  resolve to the backend's own paths from ``/docs`` as well;
* everything else -- the API: ``/predict*``, ``/labels``, ``/model``, ``/livez``, ``/readyz``,
  ``/metrics``, ``/docs.json``, and unknown paths, which get the backend's JSON 404 -- to the
  active backend (:class:`Proxy`).

The console gets the gateway's protections too: its request body is read here first, with the same
limit and timeouts (413/408 before the console sees a byte), and the HTTP parsing and head timeouts
are the protocol's. The console's handlers do blocking work (SQLite, reading the prediction log,
asking the service over HTTP), so they never run on the proxy's event loop: each console request
runs in a worker thread on an event loop of its own (:class:`ConsoleOnThreads`, at most
:data:`CONSOLE_THREADS` at once), and a slow console page cannot delay a ``/predict``. The console's
Score page asks the service through this same front door (its ``service_url`` is the gateway's own
address when mounted), so the analyst's request takes the path every client's takes.

Written by hand, because neither uvicorn nor Starlette has it: (a) :class:`GatewayProtocol`, a
subclass of uvicorn's h11 protocol that adds a timeout for the request head (uvicorn has none: a
client trickling header bytes holds a connection forever), closes connections on which no request
ever starts, and answers malformed requests with JSON naming the problem; (b) the forwarding itself
(hop-by-hop headers, the retry rule, the blue/green switch), which is this project's policy.

Run: ``python -m service.gateway --port 3000 --state state/serving/gateway.json``. The process is a
supervisor (uvicorn's ``Multiprocess``): it holds the listening socket and runs the server in one
child process that it restarts if it dies, so clients queue in the socket's backlog during a
restart instead of being refused; ``SIGTERM`` stops both. The child reads its settings from
``FRAUD_GATEWAY_SETTINGS`` (JSON written by the supervisor) and reads no configuration files; the
console's imports (pandas, matplotlib, scikit-learn for the model report) make a restart take
about 3 s on these machines (``bench.gateway``: SIGKILL to the first answer, under load).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import logging.config
import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import h11
import yarl
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match, Mount, Route
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors.multiprocess import Multiprocess

log = logging.getLogger("fraud.gateway")

STATUS_PATH = "/-/gateway"
DOCS_PATH = "/docs"  # BentoML's Swagger UI, which the backend serves at "/"
CONSOLE_THREADS = 8  # console requests handled at once (each on a worker thread); more wait for a thread
SETTINGS_ENV = "FRAUD_GATEWAY_SETTINGS"
LOOPBACK = frozenset({"127.0.0.1", "::1"})
FORWARDED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Hop-by-hop headers (RFC 9110 section 7.6.1) and what this gateway sets itself.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer", b"upgrade",
     b"proxy-authenticate", b"proxy-authorization"}
)
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"expect", b"x-forwarded-for", b"x-forwarded-proto",
                              b"x-forwarded-host"}
NOT_RETURNED = HOP_BY_HOP | {b"content-length", b"date", b"server"}
REQUEST_ID = b"x-request-id"
SKIPPED_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
# Pooled backend connections are dropped before the backend's own keep-alive timeout (uvicorn's 5 s)
# would close them, so a request is never sent on a connection the backend is closing.
BACKEND_KEEPALIVE_SECONDS = 2.0
STATE_POLL_SECONDS = 0.05
MAX_ERROR_DETAIL = 200
HTTP_VERSIONS = frozenset({"1.0", "1.1"})
_BARE_LF = re.compile(rb"(?<!\r)\n")
# Control characters other than tab (RFC 9110 section 5.5: field values are visible characters,
# spaces and tabs). h11 lets them through; an HTTP client refuses to send them on.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


# ---------------------------------------------------------------------------------------- state


def write_state(path: str | Path, backend: str, **extra) -> None:
    """Atomically point the gateway's state file at ``backend`` (``http://host:port``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"backend": backend, "written_at": time.time(), **extra}, indent=2))
    os.replace(tmp, path)


def read_state(path: str | Path) -> dict:
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    """What the server process needs: the state file, the body limit and the ``gateway:`` section's values."""

    state_path: str
    max_body_bytes: int
    header_timeout_seconds: float = 3.0
    body_timeout_seconds: float = 3.0
    request_timeout_seconds: float = 30.0
    idle_timeout_seconds: float = 5.0
    connect_timeout_seconds: float = 2.0
    backend_timeout_seconds: float = 35.0
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    max_connections: int = 512
    backend_connections: int = 64
    shutdown_timeout_seconds: float = 15.0
    supervised: bool = False
    console: bool = False  # mount the analyst console at "/" (service.console)
    console_config: str | None = None  # its YAML (None: FRAUD_CONSOLE_CONFIG or configs/console.yaml)
    self_url: str | None = None  # this gateway's own address (set by serve()): the console scores through it

    @classmethod
    def from_config(cls, deployment_file, state_path: str | Path, supervised: bool = False, console: bool = False,
                    console_config: str | Path | None = None) -> "GatewaySettings":
        """From a validated ``DeploymentFile`` (fraud_detection.serving.config)."""
        return cls(state_path=str(state_path), max_body_bytes=deployment_file.service.max_body_bytes,
                   supervised=supervised, console=console,
                   console_config=str(console_config) if console_config is not None else None,
                   **deployment_file.gateway.model_dump())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_environment(cls) -> "GatewaySettings":
        try:
            return cls(**json.loads(os.environ[SETTINGS_ENV]))
        except KeyError:
            raise RuntimeError(f"{SETTINGS_ENV} is not set: start the gateway with python -m service.gateway") from None


# ---------------------------------------------------------------------------------------- HTTP


def json_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], request_id: bytes | None = None,
                  *, close: bool = False) -> None:
    headers = [*headers, (b"x-content-type-options", b"nosniff")]
    if request_id is not None and not any(name == REQUEST_ID for name, _ in headers):
        headers.append((REQUEST_ID, request_id))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def respond_error(send, status: int, message: str, request_id: bytes | None, *, close: bool = False,
                        extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json_body(message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await respond(send, status, body, headers, request_id, close=close)


def _is_backend_url(backend: object) -> bool:
    """``http(s)://host[:port]`` with nothing after it but an optional ``/``."""
    if not isinstance(backend, str):
        return False
    try:
        url = yarl.URL(backend)
    except (ValueError, TypeError):
        return False
    return (url.scheme in ("http", "https") and bool(url.host) and url.path in ("", "/") and not url.query_string
            and not url.fragment and not url.user)


def _header_text(value: bytes) -> str:
    """A header value as aiohttp takes it (text, sent as UTF-8): UTF-8 bytes pass unchanged; other
    bytes above 0x7f (obsolete Latin-1 text, RFC 9110 section 5.5) are sent as their UTF-8 form."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class Refused(Exception):
    """A request this gateway answers itself with a 4xx (and closes the connection if ``close``)."""

    def __init__(self, status: int, message: str, close: bool = False, extra: list | None = None):
        super().__init__(message)
        self.status, self.close, self.extra = status, close, extra or []


class BackendFailed(Exception):
    def __init__(self, status: int, message: str, kind: str, extra: list | None = None):
        super().__init__(message)
        self.status, self.kind, self.extra = status, kind, extra or []


class Proxy:
    """The ASGI app that forwards every request to the active backend named by the state file."""

    def __init__(self, settings: GatewaySettings, request_id_or_none: Callable[[str], str | None]):
        self.settings = settings
        self.state_path = Path(settings.state_path)
        self.active: str | None = None
        self.clients: dict[str, aiohttp.ClientSession] = {}
        self.in_flight: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.started_at = time.time()
        self.console = False  # whether the console is mounted beside this proxy (reported by status())
        self._state_key: tuple | None = None
        self._failing: set[str] = set()
        self._request_id_or_none = request_id_or_none  # the service's rule for a client's X-Request-ID
        # Opening a connection has its own limit; the whole exchange (a wait for a free pooled connection
        # included) is bounded by backend_timeout_seconds in _exchange.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=settings.connect_timeout_seconds)
        self.reload()

    # ------------------------------------------------------------ the active backend

    def reload(self) -> None:
        """Follow the state file: a new backend named there gets every request from now on."""
        try:
            stat = self.state_path.stat()
        except FileNotFoundError:
            if self._state_key != ():
                log.warning("no state file %s yet: answering 503 until a backend is named there", self.state_path)
            self._state_key = ()
            return
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if key == self._state_key:
            return
        self._state_key = key
        backend = read_state(self.state_path).get("backend")
        if not _is_backend_url(backend):
            log.warning("state file %s names no backend URL (%r): keeping %s", self.state_path, backend, self.active)
            return
        if backend != self.active:
            log.info("active backend: %s (was %s)", backend, self.active)
            self.active = backend

    def client(self, backend: str) -> aiohttp.ClientSession:
        client = self.clients.get(backend)
        if client is None:
            connector = aiohttp.TCPConnector(limit=self.settings.backend_connections, limit_per_host=0,
                                             keepalive_timeout=BACKEND_KEEPALIVE_SECONDS)
            # trust_env=False: a proxy configured for the package index must not capture loopback traffic.
            # The client's own headers are forwarded as they came: aiohttp adds none of its defaults
            # (User-Agent, Accept, Accept-Encoding, Content-Type) and decompresses nothing.
            client = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False,
                                           auto_decompress=False, skip_auto_headers=SKIPPED_AUTO_HEADERS,
                                           cookie_jar=aiohttp.DummyCookieJar(), raise_for_status=False)
            self.clients[backend] = client
        return client

    async def close_retired(self) -> None:
        """Close the connection pools of backends that are no longer active and have nothing in flight."""
        for backend in [b for b in self.clients if b != self.active and not self.in_flight[b]]:
            await self.clients.pop(backend).close()

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.close()
        self.clients.clear()

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.active,
            "in_flight": {url: n for url, n in self.in_flight.items() if n},
            "pid": os.getpid(),
            "started_at": self.started_at,
            "console": self.console,
            **{name: self.counts[name] for name in ("forwarded", "retried", "unreachable", "broken", "timed_out")},
        }

    # ------------------------------------------------------------ ASGI

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan is the Starlette app's; websockets are not proxied
            return
        headers = scope["headers"]
        sent_id = next((value for name, value in headers if name == REQUEST_ID), None)
        valid = self._request_id_or_none(sent_id.decode("latin-1")) if sent_id else None
        request_id = sent_id if valid else uuid.uuid4().hex.encode()
        try:
            self._check_request(scope)
            body = await self._read_body(headers, receive)
            if body is None:
                return  # the client went away: nobody to answer
            status, response_headers, content = await self._forward(scope, body, request_id)
        except Refused as refusal:
            return await respond_error(send, refusal.status, str(refusal), request_id, close=refusal.close,
                                       extra=refusal.extra)
        except BackendFailed as failure:
            self.counts[failure.kind] += 1
            return await respond_error(send, failure.status, str(failure), request_id, extra=failure.extra)
        await respond(send, status, content, response_headers, request_id)

    def _check_request(self, scope) -> None:
        method = scope["method"]
        if scope["http_version"] not in HTTP_VERSIONS:
            raise Refused(400, f"HTTP/{scope['http_version'][:8]} is not supported: send HTTP/1.1", close=True)
        if method not in FORWARDED_METHODS:
            allowed = ", ".join(sorted(FORWARDED_METHODS))
            raise Refused(405, f"method {method[:32]} is not allowed; use one of {allowed}",
                          extra=[(b"allow", allowed.encode())])
        if not scope["raw_path"].startswith(b"/"):
            raise Refused(400, "the request target must be a path starting with / (this is not a forward proxy)")
        if b"#" in scope["raw_path"] or b"#" in scope["query_string"]:
            raise Refused(400, "the request target contains '#': a fragment is not sent to a server "
                               "(percent-encode it as %23 if it is data)")
        for name, value in scope["headers"]:
            if _CONTROL.search(value):
                raise Refused(400, f"header {name[:64].decode('latin-1')!r} contains a control character", close=True)
        names = {name for name, _ in scope["headers"]}
        if b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 section 6.3: a message framed both ways is a smuggling attempt until proven otherwise.
            raise Refused(400, "Transfer-Encoding and Content-Length together: send one of them", close=True)

    async def _read_body(self, headers, receive) -> bytes | None:
        """The whole request body within the limits; None if the client disconnected."""
        limit = self.settings.max_body_bytes
        declared = next((value for name, value in headers if name == b"content-length"), None)
        if declared is not None and int(declared) > limit:  # h11 checked it is a number
            raise Refused(413, f"the request body is larger than the limit of {limit} bytes "
                               f"(Content-Length: {int(declared)})", close=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.request_timeout_seconds
        chunks, size = [], 0
        while True:
            wait = min(self.settings.body_timeout_seconds, deadline - loop.time())
            try:
                async with asyncio.timeout(max(wait, 0)):
                    message = await receive()
            except TimeoutError:
                if loop.time() >= deadline:
                    message = f"the request body did not arrive within {self.settings.request_timeout_seconds:g} s"
                else:
                    message = (f"the request body stalled: no byte for {self.settings.body_timeout_seconds:g} s "
                               f"after {size} bytes")
                raise Refused(408, message, close=True) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"the request body is larger than the limit of {limit} bytes", close=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _request_headers(self, scope, request_id: bytes) -> list[tuple[bytes, bytes]]:
        headers = scope["headers"]
        named = {token.strip().lower() for name, value in headers if name == b"connection" for token in value.split(b",")}
        kept = [(name, value) for name, value in headers
                if name not in NOT_FORWARDED and name not in named and name != REQUEST_ID]
        client = scope.get("client")
        host = next((value for name, value in headers if name == b"host"), None)
        kept.append((REQUEST_ID, request_id))
        if client:
            kept.append((b"x-forwarded-for", client[0].encode()))
        kept.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        if host:
            kept.append((b"x-forwarded-host", host))
        return kept

    async def _forward(self, scope, body: bytes, request_id: bytes):
        method = scope["method"]
        target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        try:
            target_url = target.decode("ascii")
        except UnicodeError as error:
            raise Refused(400, f"the request target cannot be forwarded: {str(error)[:MAX_ERROR_DETAIL]}") from None
        headers = [(name.decode("latin-1"), _header_text(value))
                   for name, value in self._request_headers(scope, request_id)]
        content = body if body or method not in IDEMPOTENT_METHODS else None
        for attempt in (1, 2):
            backend = self.active  # read per attempt: a retry goes to the backend active then
            if backend is None:
                raise BackendFailed(503, "no backend is configured yet", "unreachable", [(b"retry-after", b"1")])
            self.in_flight[backend] += 1
            try:
                answer = await self._exchange(backend, method, target_url, headers, content)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
                # Nothing was sent: trying again cannot score a transaction twice.
                if attempt == 1:
                    self.counts["retried"] += 1
                    await asyncio.sleep(0.05)
                    continue
                self._backend_failing(backend, error)
                raise BackendFailed(503, f"the model service is unreachable ({type(error).__name__}); "
                                         "nothing was processed: try again", "unreachable",
                                    [(b"retry-after", b"1")]) from None
            except TimeoutError:  # asyncio's and aiohttp's (reading an answer)
                raise BackendFailed(504, f"the model service did not answer within "
                                         f"{self.settings.backend_timeout_seconds:g} s", "timed_out") from None
            except aiohttp.InvalidURL as error:
                raise Refused(400, f"the request cannot be forwarded: {str(error)[:MAX_ERROR_DETAIL]}") from None
            except aiohttp.ClientError as error:  # disconnected, reset, or not HTTP: the request may have arrived
                # (an idempotent request was already sent a second time by aiohttp: not again here)
                self._backend_failing(backend, error)
                raise BackendFailed(502, "the model service broke off its answer "
                                         f"({type(error).__name__}); the request may have been processed",
                                    "broken") from None
            finally:
                self.in_flight[backend] -= 1
            self.counts["forwarded"] += 1
            if backend in self._failing:
                self._failing.discard(backend)
                log.info("backend %s answers again", backend)
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, backend: str, method: str, target: str, headers, content: bytes | None):
        client = self.client(backend)
        url = yarl.URL(backend.rstrip("/") + target, encoded=True)  # the client's target byte for byte
        async with asyncio.timeout(self.settings.backend_timeout_seconds):
            async with client.request(method, url, headers=headers, data=content, allow_redirects=False,
                                      compress=False) as response:
                content = await response.read()
                status, raw_headers = response.status, response.raw_headers
        kept = [(name.lower(), value) for name, value in raw_headers if name.lower() not in NOT_RETURNED]
        if method == "HEAD":
            kept += [(b"content-length", value) for name, value in raw_headers if name.lower() == b"content-length"]
        elif status not in (204, 304) and status >= 200:
            kept.append((b"content-length", str(len(content)).encode()))
        return status, kept, content

    def _backend_failing(self, backend: str, error: Exception) -> None:
        if backend not in self._failing:  # log the change, not every failed request
            self._failing.add(backend)
            log.warning("backend %s fails: %s: %s", backend, type(error).__name__, error)


# ---------------------------------------------------------------------------------------- the app


class StatusEndpoint:
    """``GET /-/gateway`` for loopback clients: the active backend, requests in flight, counts, pid."""

    def __init__(self, proxy: Proxy):
        self.proxy = proxy

    async def __call__(self, scope, receive, send) -> None:
        client = scope.get("client") or ("", 0)
        if client[0] not in LOOPBACK:  # not for remote clients: the backend answers (404)
            return await self.proxy(scope, receive, send)
        body = json.dumps(self.proxy.status()).encode()
        await respond(send, 200, body, [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())])


class ConsoleOnThreads:
    """An ASGI app (the console) run off the gateway's event loop: each request on a worker thread with
    an event loop of its own, its body read beforehand by the gateway (limit and timeouts), its
    answer sent back through the gateway's loop. Blocking work in the console's handlers then holds
    one thread, never the loop that forwards API requests."""

    def __init__(self, app, proxy: Proxy, threads: int = CONSOLE_THREADS):
        self.app = app
        self.proxy = proxy
        self.limiter = anyio.CapacityLimiter(threads)

    async def __call__(self, scope, receive, send) -> None:
        body = await self.proxy._read_body(scope["headers"], receive)  # Refused: answered by the front door
        if body is None:
            return  # the client went away
        loop = asyncio.get_running_loop()
        replayed = False

        async def thread_receive():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(receive(), loop))

        async def thread_send(message) -> None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(send(message), loop))

        def run() -> None:
            asyncio.run(self.app(scope, thread_receive, thread_send))

        await anyio.to_thread.run_sync(run, limiter=self.limiter)


_ROUTING_KEYS = frozenset({"app", "router", "endpoint", "route", "path_params", "app_root_path"})


class FrontDoor:
    """Console pages to the console, ``/docs`` to the backend's ``/``, everything else to the backend."""

    def __init__(self, proxy: Proxy, console=None):
        self.proxy = proxy
        self.console = console  # the console's Starlette app, or None
        self.console_routes = list(console.routes) if console is not None else []
        self.on_threads = ConsoleOnThreads(console, proxy) if console is not None else None

    def is_console(self, scope) -> bool:
        return any(route.matches(scope)[0] is not Match.NONE for route in self.console_routes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == DOCS_PATH:
            scope = {**scope, "path": "/", "raw_path": b"/"}
            return await self.proxy(scope, receive, send)
        if self.on_threads is None or not self.is_console(scope):
            return await self.proxy(scope, receive, send)
        # The console is an app of its own: its router (url_for) and not the gateway's.
        scope = {key: value for key, value in scope.items() if key not in _ROUTING_KEYS}
        try:
            self.proxy._check_request(scope)
            await self.on_threads(scope, receive, send)
        except Refused as refusal:
            await respond_error(send, refusal.status, str(refusal), None, close=refusal.close, extra=refusal.extra)


def _console_app(settings: GatewaySettings):
    """The analyst console, scoring through this gateway (imported only when it is mounted: it is heavy)."""
    from service.console.app import create_app as create_console
    from service.console.config import load_console_config

    config = load_console_config(settings.console_config)
    if settings.self_url:
        config = config.model_copy(update={"service_url": settings.self_url})
    return create_console(config)


def create_app(settings: GatewaySettings, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """The gateway's Starlette app: ``GET /-/gateway``, then ``extra_routes``, then the front door
    (the console's pages if mounted, the API for everything else)."""
    from fraud_detection.serving.contract import request_id_or_none  # the one rule for a client's request id

    proxy = Proxy(settings, request_id_or_none)
    console = _console_app(settings) if settings.console else None
    front = FrontDoor(proxy, console)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        parent = os.getppid() if settings.supervised else None
        task = asyncio.create_task(_watch(proxy, parent))
        log.info("gateway process %d serving -> %s%s", os.getpid(), proxy.active,
                 ", the console at /" if console is not None else "")
        try:
            yield
        finally:
            task.cancel()
            await proxy.aclose()
            if console is not None:
                console.state.console.close()

    routes = [Route(STATUS_PATH, StatusEndpoint(proxy), methods=["GET"]), *(extra_routes or []), Mount("/", app=front)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.router.default = front  # also the fallback for what matches no route (targets not starting with /)
    app.state.proxy = proxy
    proxy.console = console is not None
    return app


async def _watch(proxy: Proxy, parent: int | None) -> None:
    """Follow the state file, close retired pools, and stop if the supervisor is gone."""
    while True:
        try:
            proxy.reload()
            await proxy.close_retired()
        except Exception:  # the watcher must outlive a bad state file or a pool that fails to close
            log.exception("state watcher")
        if parent is not None and os.getppid() != parent:
            log.warning("the supervisor (pid %d) is gone: stopping", parent)
            signal.raise_signal(signal.SIGTERM)  # uvicorn's handler: finish in-flight requests, then exit
            return
        await asyncio.sleep(STATE_POLL_SECONDS)


def create_app_from_environment() -> Starlette:
    """The uvicorn factory of the server process: settings from ``FRAUD_GATEWAY_SETTINGS``."""
    return create_app(GatewaySettings.from_environment())


# ---------------------------------------------------------------------------------------- uvicorn protocol


class _Connection(h11.Connection):
    """h11's server connection, remembering the last protocol error so the 400 can name it."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self):
        try:
            return super().next_event()
        except h11.RemoteProtocolError as error:
            self.last_error = error
            raise


class GatewayProtocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head timeout, an idle timeout from the first byte, and JSON errors."""

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = _Connection(h11.SERVER, config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE)
        settings = _settings()
        self.header_timeout = settings.header_timeout_seconds
        self.max_head_bytes = settings.max_head_bytes
        self.max_headers = settings.max_headers
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        # uvicorn starts its keep-alive timer only after a response: a client that never sends a byte
        # would hold the connection forever.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state in (h11.IDLE, h11.DONE) and not self._head_acceptable(data):
            return
        super().data_received(data)  # cancels the idle timer
        self._watch_head(started=True)

    def _head_acceptable(self, data: bytes) -> bool:
        """Refuse what h11 would let through: a head over the limits (h11 enforces its size limit only
        while a head is incomplete), bare LF line ends and obsolete line folding (RFC 9112 section 5.2)."""
        pending = self.conn.trailing_data[0] + data
        end = pending.find(b"\r\n\r\n")
        head = pending if end < 0 else pending[: end + 2]
        problem = None
        if len(head) > self.max_head_bytes:
            status, problem = 431, f"the request head is larger than {self.max_head_bytes} bytes"
        elif head.count(b"\r\n") > self.max_headers + 1:
            status, problem = 431, f"more than {self.max_headers} header lines"
        elif _BARE_LF.search(head):
            status, problem = 400, "a line of the request head ends in a bare LF: end every line with CRLF"
        elif b"\r\n " in head or b"\r\n\t" in head:
            status, problem = 400, "a header line is folded onto the next line (obsolete line folding)"
        if problem is None:
            return True
        self._write_error(status, f"invalid HTTP request: {problem}")
        return False

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the idle timer and parses a pipelined request
        self._watch_head(started=bool(self.conn.trailing_data[0]))

    def _watch_head(self, started: bool) -> None:
        """Once a byte of a request arrived, its head must be complete within the header timeout."""
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()
        elif started and self.head_timer is None:
            self.head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._write_error(408, f"the request head did not arrive within {self.header_timeout:g} s")

    def _unsupported_upgrade_warning(self) -> None:
        """uvicorn logs two warnings per request that asks for an Upgrade; the gateway drops the header."""

    def send_400_response(self, msg: str) -> None:
        error = self.conn.last_error
        status = getattr(error, "error_status_hint", 400) if error is not None else 400
        detail = str(error)[:MAX_ERROR_DETAIL] if error is not None and str(error) else msg
        self._write_error(status if 400 <= status < 500 else 400, f"invalid HTTP request: {detail}")

    def _write_error(self, status: int, message: str) -> None:
        """Answer outside h11's state machine (the request is unparsable or incomplete) and close."""
        self._unset_keepalive_if_required()
        body = json_body(message)
        reason = {400: b"Bad Request", 408: b"Request Timeout", 413: b"Content Too Large",
                  414: b"URI Too Long", 431: b"Request Header Fields Too Large"}.get(status, b"Client Error")
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"x-content-type-options: nosniff\r\nconnection: close\r\n\r\n" % (status, reason, len(body)))
        self.transport.write(head + body)
        self.transport.close()


_SETTINGS: GatewaySettings | None = None


def _settings() -> GatewaySettings:
    global _SETTINGS
    if _SETTINGS is None:
        _SETTINGS = GatewaySettings.from_environment()
    return _SETTINGS


# ---------------------------------------------------------------------------------------- supervisor


class OncePerMinute(logging.Filter):
    """uvicorn logs a line for every malformed request and every connection over the limit: a client
    could fill the log. Keep the first of each kind per minute, saying how many were left out."""

    PER_REQUEST = ("Invalid HTTP request received.", "Exceeded concurrency limit.")

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, float] = {}
        self.left_out: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        key = record.msg if isinstance(record.msg, str) else ""
        if key not in self.PER_REQUEST:
            return True
        now = time.monotonic()
        if now - self.last.get(key, -60.0) < 60.0:
            self.left_out[key] += 1
            return False
        self.last[key] = now
        if self.left_out[key]:
            record.msg = f"{key} ({self.left_out.pop(key)} more in the minute before)"
        return True


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s gateway[%(process)d] %(levelname)s %(message)s"}},
    "filters": {"once_per_minute": {"()": "service.gateway.OncePerMinute"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr",
                            "filters": ["once_per_minute"]}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "fraud.gateway": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


class Supervisor(Multiprocess):
    """uvicorn's ``Multiprocess``, whose health check also sees a child die while it waits for an answer.

    uvicorn's check sends the child a ping and waits up to the health-check timeout (30 s here) for
    the answer. The pipe is created in the supervisor, which keeps its own copy of the child's end:
    a child killed between ping and answer leaves that end open, the wait sees no end-of-file and
    runs its full 30 s before the child is restarted. The child's copy is passed to it when it is
    spawned, so the supervisor closes its own right after every start: a child's death then ends
    the wait at once, as a failed check. The supervisor's loop is uvicorn's own.
    """

    def _release_child_ends(self) -> None:
        for process in self.processes:
            process.child_conn.close()  # idempotent; the child holds its own copy

    def init_processes(self) -> None:
        super().init_processes()
        self._release_child_ends()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._release_child_ends()

    def restart_all(self) -> None:
        super().restart_all()
        self._release_child_ends()


def serve(host: str, port: int, settings: GatewaySettings) -> None:
    """Bind ``host:port`` and run the server in a child process that is restarted if it dies."""
    import uvicorn

    if settings.self_url is None:
        settings = dataclasses.replace(settings, self_url=f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}")
    os.environ[SETTINGS_ENV] = settings.to_json()
    config = uvicorn.Config(
        "service.gateway:create_app_from_environment",
        factory=True,
        host=host,
        port=port,
        http=GatewayProtocol,
        ws="none",
        lifespan="on",
        workers=1,
        access_log=False,
        log_config=LOG_CONFIG,
        server_header=False,
        backlog=2048,
        timeout_keep_alive=settings.idle_timeout_seconds,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_head_bytes,
        # A restarted child answers the supervisor's ping only once its imports are done: on a busy
        # machine that can take seconds, and a child that misses the ping is killed as hung.
        timeout_worker_healthcheck=30,
    )
    sock = config.bind_socket()
    log.info("gateway on http://%s:%d (supervisor %d), state %s", host, port, os.getpid(), settings.state_path)
    Supervisor(config, sockets=[sock]).run()
    log.info("gateway on http://%s:%d stopped", host, port)


def main(argv: list[str] | None = None) -> None:
    from fraud_detection.serving.config import DEPLOYMENT_CONFIG_ENV

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--state", required=True, help="JSON file naming the active backend")
    parser.add_argument("--config", default=None,
                        help=f"deployment YAML (default: ${DEPLOYMENT_CONFIG_ENV} or configs/deployment.yaml)")
    parser.add_argument("--console", action=argparse.BooleanOptionalAction, default=None,
                        help="mount the analyst console at / (default: as gateway_control set it; else yes)")
    parser.add_argument("--console-config", default=None, help="the console's YAML (default: configs/console.yaml)")
    args = parser.parse_args(argv)
    logging.config.dictConfig(LOG_CONFIG)
    if SETTINGS_ENV in os.environ and args.config is None:  # given by gateway_control: no config to read
        settings = dataclasses.replace(GatewaySettings.from_environment(), state_path=args.state, supervised=True)
    else:
        from fraud_detection.serving.config import load_deployment_config

        deployment_file = load_deployment_config(args.config or os.environ.get(DEPLOYMENT_CONFIG_ENV) or None)
        settings = GatewaySettings.from_config(deployment_file, args.state, supervised=True, console=True)
    if args.console is not None:
        settings = dataclasses.replace(settings, console=args.console)
    if args.console_config is not None:
        settings = dataclasses.replace(settings, console_config=args.console_config)
    serve(args.host, args.port, settings)


if __name__ == "__main__":
    import logging.config

    from service.gateway import main as _main  # the importable module's classes, not __main__'s copies

    _main()
