"""The gateway's forwarding rules against backends that misbehave in each way the rules name.

The gateway runs for real (``gateway_control.ensure_running``: supervisor and server process); its
backends are real listeners on loopback ports:

* an echo backend (Starlette on uvicorn) that answers with what it received, so the test sees the
  request exactly as the gateway sent it: method, raw target, headers, body;
* raw sockets that misbehave: one that hangs up after reading a request, one that never answers,
  one that answers with bytes that are not HTTP, one that counts the requests it receives.

What is checked (``service/gateway.py``, the module docstring): the client's target and headers pass
unchanged (hop-by-hop headers dropped, ``X-Forwarded-*`` and ``X-Request-ID`` set, nothing of the
HTTP client library's own added, no cookie kept from one client for another); no backend -> 503
with ``Retry-After``; a backend that hangs up -> 502, a ``POST`` sent once and a ``GET`` twice; no
answer in time -> 504; not HTTP -> 502; every error a JSON body naming the problem.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import yaml

from service import gateway_control
from service.gateway import write_state
from service.gateway_control import GatewayPaths
from testkit.ports import free_port

pytestmark = pytest.mark.timeout(180)

BACKEND_TIMEOUT = 2.0

ECHO_APP = '''
import json
from starlette.applications import Starlette
from starlette.responses import Response

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = {"method": scope["method"], "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
            "body": body.decode("latin-1")}
    payload = json.dumps(seen).encode()
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"x-backend", b"echo"),
                            (b"set-cookie", b"session=for-this-client-only; Path=/"),
                            (b"connection", b"keep-alive")]})
    await send({"type": "http.response.body", "body": payload})
'''


class RawBackend:
    """A loopback listener that reads each request's head and then does ``behaviour`` with the socket."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        self.requests.append(data.split(b"\r\n", 1)[0])
        if self.behaviour == "hang_up":
            conn.close()
        elif self.behaviour == "garbage":
            conn.sendall(b"this is not HTTP at all\r\n\r\n")
            conn.close()
        elif self.behaviour == "silent":
            time.sleep(BACKEND_TIMEOUT * 3)  # holds the connection open, answering nothing
            conn.close()

    def __enter__(self) -> "RawBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
        for conn in self._open:
            conn.close()


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    root = tmp_path_factory.mktemp("echo")
    (root / "echo_app.py").write_text(ECHO_APP)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(root), "echo_app:app",
                                "--port", str(port), "--log-level", "warning"])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, trust_env=False, timeout=2)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the echo backend did not start"
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway(echo, tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway")
    config = root / "deployment.yaml"
    config.write_text(yaml.safe_dump({"service": {"timeout_seconds": 1},
                                      "gateway": {"backend_timeout_seconds": BACKEND_TIMEOUT,
                                                  "connect_timeout_seconds": 1.0}}))
    files = GatewayPaths(root / "state")
    port = free_port()
    gateway_control.ensure_running("127.0.0.1", port, echo, files, config_path=config, console=False)
    yield port, files
    assert gateway_control.stop(files)


def point(gateway, backend: str) -> str:
    port, files = gateway
    gateway_control.switch("127.0.0.1", port, backend, files)
    return f"http://127.0.0.1:{port}"


def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as bytes (so nothing is normalised on the way) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def test_the_target_headers_and_body_arrive_as_the_client_sent_them(gateway, echo):
    url = point(gateway, echo)
    port = gateway[0]
    value = "caf\u00e9 \u2014 ok".encode()  # UTF-8 bytes in a header value
    request = (b"POST /predict/%2Fodd%20path?b=2&a=%3D1&a=x HTTP/1.1\r\nHost: fraud.example:3000\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\nX-Custom: " + value + b"\r\n"
               b"X-Custom: second\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\n"
               b"Content-Length: 5\r\n\r\nhello")
    status, headers, body = raw_request(port, request)
    assert status == 201, body
    assert headers["x-backend"] == "echo" and "x-request-id" in headers
    seen = json.loads(body)
    assert seen["method"] == "POST"
    assert seen["raw_path"] == "/predict/%2Fodd%20path" and seen["query_string"] == "b=2&a=%3D1&a=x"
    assert seen["body"] == "hello"
    names = [name for name, _ in seen["headers"]]
    sent = {}
    for name, value_seen in seen["headers"]:
        sent.setdefault(name, []).append(value_seen)
    assert sent["x-custom"] == [value.decode("latin-1"), "second"]  # both, in order, byte for byte
    assert sent["content-type"] == ["text/plain; charset=utf-8"]
    assert sent["content-length"] == ["5"]
    assert sent["x-forwarded-host"] == ["fraud.example:3000"] and sent["x-forwarded-for"] == ["127.0.0.1"]
    assert sent["x-forwarded-proto"] == ["http"]
    assert sent["x-request-id"] == [headers["x-request-id"]]
    # hop-by-hop headers, and the header the client named in Connection, stop at the gateway;
    # nothing of the HTTP library's own is added
    for dropped in ("x-drop-me", "keep-alive", "user-agent", "accept", "accept-encoding"):
        assert dropped not in names, (dropped, seen["headers"])
    # a GET without a body carries no body framing, and a client's request id is kept when valid
    answer = httpx.get(url + "/model?x=1", headers={"X-Request-ID": "abc-123"}, trust_env=False)
    seen = answer.json()
    assert answer.status_code == 201 and answer.headers["x-request-id"] == "abc-123"
    assert seen["method"] == "GET" and seen["query_string"] == "x=1"
    assert not {"content-length", "transfer-encoding"} & {name for name, _ in seen["headers"]}
    # a cookie the backend set reaches that client, and is never sent on another client's behalf
    assert answer.headers["set-cookie"].startswith("session=for-this-client-only")
    seen = httpx.get(url + "/model", trust_env=False).json()
    assert "cookie" not in {name for name, _ in seen["headers"]}


def test_no_backend_listening_is_a_503_that_says_nothing_was_processed(gateway):
    url = point(gateway, f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    answer = httpx.post(url + "/predict", content=b"{}", trust_env=False, timeout=30)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert "unreachable" in answer.json()["error"] and "nothing was processed" in answer.json()["error"]
    assert time.monotonic() - started < 10


def test_a_backend_that_hangs_up_gives_a_502_and_a_post_is_sent_once(gateway):
    with RawBackend("hang_up") as backend:
        url = point(gateway, backend.url)
        answer = httpx.post(url + "/predict", content=b'{"Amount": 1}', trust_env=False, timeout=30)
        assert answer.status_code == 502, answer.text
        assert "may have been processed" in answer.json()["error"]
        assert backend.requests == [b"POST /predict HTTP/1.1"]  # never sent twice: it may have been scored
        backend.requests.clear()
        answer = httpx.get(url + "/model", trust_env=False, timeout=30)
        assert answer.status_code == 502, answer.text
        assert backend.requests == [b"GET /model HTTP/1.1"] * 2  # idempotent: tried once more, no more


def test_a_backend_that_does_not_answer_in_time_gives_a_504(gateway):
    with RawBackend("silent") as backend:
        url = point(gateway, backend.url)
        started = time.monotonic()
        answer = httpx.post(url + "/predict", content=b"{}", trust_env=False, timeout=30)
        waited = time.monotonic() - started
        assert answer.status_code == 504, answer.text
        assert f"within {BACKEND_TIMEOUT:g} s" in answer.json()["error"]
        assert BACKEND_TIMEOUT * 0.9 < waited < BACKEND_TIMEOUT * 2.5
        assert len(backend.requests) == 1


def test_an_answer_that_is_not_http_gives_a_502(gateway):
    with RawBackend("garbage") as backend:
        url = point(gateway, backend.url)
        answer = httpx.post(url + "/predict", content=b"{}", trust_env=False, timeout=30)
        assert answer.status_code == 502, answer.text
        assert answer.headers["content-type"] == "application/json" and answer.json()["error"]


def test_the_gateway_counted_what_happened(gateway, echo):
    port, _ = gateway
    point(gateway, echo)
    report = gateway_control.status("127.0.0.1", port)
    assert report["unreachable"] >= 1 and report["broken"] >= 3 and report["timed_out"] >= 1
    assert report["retried"] >= 1 and report["forwarded"] >= 2  # the unreachable backend was tried twice



@pytest.mark.parametrize(("request_bytes", "words"), [
    (b"GET /model HTTP/1.1\r\nHost: a\r\nX-Evil: one\x01two\r\n\r\n", "control character"),
    (b"GET /model HTTP/1.1\r\nHost: a\x7f\r\n\r\n", "control character"),
    (b"GET /model#frag?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", "'#'"),
    (b"GET /model?x=1#frag HTTP/1.1\r\nHost: a\r\n\r\n", "'#'"),
], ids=["control_in_value", "control_in_host", "fragment_in_path", "fragment_in_query"])
def test_what_cannot_be_forwarded_as_sent_gets_a_json_400_naming_it(gateway, echo, request_bytes, words):
    point(gateway, echo)
    status, headers, body = raw_request(gateway[0], request_bytes)
    assert status == 400, body
    assert headers["content-type"] == "application/json" and words in json.loads(body)["error"]


def test_a_state_file_naming_no_usable_backend_keeps_the_active_one(gateway, echo):
    port, files = gateway
    url = point(gateway, echo)
    for bad in ("http://:3001", "ftp://127.0.0.1:1", "http://127.0.0.1:3001/some/path", 42):
        write_state(files.state, bad)
        time.sleep(0.3)  # the gateway polls the state file every 50 ms
        assert gateway_control.status("127.0.0.1", port)["backend"] == echo
        assert httpx.get(url + "/model", trust_env=False).status_code == 201
