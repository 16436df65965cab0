"""The stable front door on :3000: an HTTP/1.1 reverse proxy that lets a new model replace the old one
with no failed request.

BentoML's server (and ZenML's BentoML deployer, which starts it) cannot swap the model of a running
process, and stopping one server before starting the next drops every request in between. So the
deployment pipeline runs each model version as its own BentoML service on a *backend* port (blue /
green: 3001, 3002) and this gateway forwards client requests to the active one:

1. the new backend is started and smoke-tested on the idle port while the old one keeps serving;
2. the gateway's state file is rewritten to name the new backend and the gateway is sent SIGHUP:
   requests that arrive from then on go to the new backend;
3. once no request is in flight on the old backend (``GET /-/gateway`` reports it), the old
   service is stopped.

Requests are forwarded one at a time per backend connection, over a small pool of keep-alive
connections. If a pooled connection turns out to be closed before any response byte came back,
the request is re-sent once on a fresh connection to the *current* backend, so a backend that goes
away between requests costs no client an error.

Run: ``python -m service.gateway --port 3000 --state state/serving/gateway.json``. The state file
(``{"backend": "http://127.0.0.1:3001", ...}``) is written by :func:`write_state`.
``GET /-/gateway`` (loopback clients only) returns the active backend and the in-flight counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("fraud.gateway")

MAX_HEAD_BYTES = 64 * 1024
POOL_SIZE = 32
STATUS_PATH = b"/-/gateway"
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te", b"trailer"}


def write_state(path: str | Path, backend: str, **extra) -> None:
    """Atomically point the gateway's state file at ``backend`` (``http://host:port``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"backend": backend, "written_at": time.time(), **extra}, indent=2))
    os.replace(tmp, path)


def read_state(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The head up to the blank line; None on a clean close between requests."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial.strip():
            return None
        raise BadRequest(400, "incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "request head too large") from None


def _parse_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise BadRequest(400, "malformed header line")
        headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            # trailers until the blank line
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _read_body(reader: asyncio.StreamReader, headers) -> bytes:
    if (_header(headers, b"transfer-encoding") or b"").lower() == b"chunked":
        return await _read_chunked(reader)
    length = _header(headers, b"content-length")
    if length is None:
        return b""
    try:
        n = int(length)
    except ValueError:
        raise BadRequest(400, "invalid Content-Length") from None
    return await reader.readexactly(n) if n else b""


class Backend:
    """A pool of keep-alive connections to one backend."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def connection(self, fresh: bool = False):
        while self.idle and not fresh:
            reader, writer = self.idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD_BYTES)
        return reader, writer, False

    def release(self, reader, writer) -> None:
        if len(self.idle) < POOL_SIZE and not writer.is_closing():
            self.idle.append((reader, writer))
        else:
            writer.close()

    def close_idle(self) -> None:
        while self.idle:
            self.idle.pop()[1].close()


class Gateway:
    def __init__(self, state_path: str | Path):
        self.state_path = Path(state_path)
        self.backends: dict[str, Backend] = {}
        self.active: Backend | None = None
        self.in_flight: dict[str, int] = defaultdict(int)
        self.forwarded = 0
        self.retried = 0
        self.reload()

    def reload(self) -> None:
        url = read_state(self.state_path).get("backend")
        if not url:
            log.warning("state file %s names no backend", self.state_path)
            return
        if self.active is not None and self.active.url == url:
            return
        previous = self.active
        self.active = self.backends.setdefault(url, Backend(url))
        log.info("active backend: %s (was %s)", url, previous.url if previous else None)
        if previous is not None:
            previous.close_idle()  # in-flight requests finish on their own connections

    def status(self) -> dict:
        return {
            "backend": self.active.url if self.active else None,
            "in_flight": {url: n for url, n in self.in_flight.items() if n},
            "forwarded": self.forwarded,
            "retried": self.retried,
        }

    async def forward(self, request: bytes, method: bytes) -> bytes:
        """Send one request to the active backend; the whole response (head + body) as bytes."""
        for attempt in range(2):
            backend = self.active  # read per attempt: a retry goes to the backend active now
            if backend is None:
                return _response(503, {"error": "no backend is configured yet"})
            self.in_flight[backend.url] += 1
            try:
                response = await self._exchange(backend, request, method, fresh=attempt > 0)
            finally:
                self.in_flight[backend.url] -= 1
            if response is not None:
                self.forwarded += 1
                return response
            self.retried += 1
        return _response(502, {"error": f"backend {backend.url} is unreachable or closed the connection"})

    async def _exchange(self, backend: Backend, request: bytes, method: bytes, fresh: bool) -> bytes | None:
        """One request/response on a backend connection; None if nothing came back (safe to resend)."""
        try:
            reader, writer, _ = await backend.connection(fresh=fresh)
        except OSError:
            return None
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return None
        status_line, headers = _parse_head(head)
        body = b""
        if method != b"HEAD" and status_line.split(b" ")[1:2] not in ([b"204"], [b"304"]):
            if (_header(headers, b"transfer-encoding") or b"").lower() == b"chunked":
                body = await _read_chunked(reader)
            elif _header(headers, b"content-length") is not None:
                body = await reader.readexactly(int(_header(headers, b"content-length")))
            else:  # delimited by the close of the connection
                body = await reader.read()
                writer.close()
        if (_header(headers, b"connection") or b"").lower() == b"close" or writer.is_closing():
            writer.close()
        else:
            backend.release(reader, writer)
        return _assemble(status_line, headers, body)

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        peer = client_writer.get_extra_info("peername") or ("", 0)
        try:
            while True:
                head = await _read_head(client_reader)
                if head is None:
                    break
                request_line, headers = _parse_head(head)
                parts = request_line.split(b" ")
                if len(parts) != 3:
                    raise BadRequest(400, "malformed request line")
                method, target, _ = parts
                body = await _read_body(client_reader, headers)
                if target == STATUS_PATH and peer[0] in ("127.0.0.1", "::1"):
                    response = _response(200, self.status())
                else:
                    kept = [(k, v) for k, v in headers if k not in HOP_BY_HOP and k != b"content-length"]
                    kept.append((b"content-length", str(len(body)).encode()))
                    request = b"%s %s HTTP/1.1\r\n" % (method, target)
                    request += b"".join(b"%s: %s\r\n" % kv for kv in kept) + b"\r\n" + body
                    response = await self.forward(request, method)
                client_writer.write(response)
                await client_writer.drain()
                if (_header(headers, b"connection") or b"").lower() == b"close":
                    break
        except BadRequest as error:
            client_writer.write(_response(error.status, {"error": str(error)}, close=True))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            client_writer.close()


def _assemble(status_line: bytes, headers, body: bytes) -> bytes:
    kept = [(k, v) for k, v in headers if k not in HOP_BY_HOP and k != b"content-length"]
    kept.append((b"content-length", str(len(body)).encode()))
    return status_line + b"\r\n" + b"".join(b"%s: %s\r\n" % kv for kv in kept) + b"\r\n" + body


def _response(status: int, payload: dict, close: bool = False) -> bytes:
    body = json.dumps(payload).encode()
    reason = {200: b"OK", 400: b"Bad Request", 431: b"Request Header Fields Too Large",
              502: b"Bad Gateway", 503: b"Service Unavailable"}.get(status, b"Error")
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (status, reason, len(body))
    if close:
        head += b"connection: close\r\n"
    return head + b"\r\n" + body


async def serve(host: str, port: int, state_path: str | Path) -> None:
    gateway = Gateway(state_path)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, gateway.reload)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await asyncio.start_server(gateway.handle, host, port, limit=MAX_HEAD_BYTES, backlog=2048)
    log.info("gateway on http://%s:%d -> %s", host, port, gateway.active.url if gateway.active else None)
    async with server:
        await stop
    log.info("gateway stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--state", required=True, help="JSON file naming the active backend")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(message)s")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio works, a little slower
        pass
    asyncio.run(serve(args.host, args.port, args.state))


if __name__ == "__main__":
    main()
