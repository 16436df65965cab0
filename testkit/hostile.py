"""A hostile client: about a hundred requests that a careless or malicious client sends, over raw sockets.

``python -m testkit.hostile http://127.0.0.1:3000`` prints one line per case and exits 1 if any
case fails; ``tests/serving/test_gateway.py`` runs every case against the gateway and against a
backend directly. Raw sockets, because the point is bad framing that HTTP client libraries refuse
to send (negative or conflicting lengths, broken chunks, bare CR/LF in headers, trickled heads).

The contract every case checks (``docs/api.md``):

* a bad request gets a 4xx (the case says which), a good one a 2xx -- never a 5xx;
* never a dropped connection or silence: an answer within :data:`ANSWER_SECONDS` (5 s);
* an error body is JSON that names the field or the limit at fault, and stays small
  (:data:`MAX_ERROR_BODY` bytes) whatever the request held.

Cases are grouped: ``framing`` (lengths, chunks, request line), ``headers``, ``expect``,
``methods``, ``paths``, ``slow`` (slowloris, stalled bodies, idle connections), ``keepalive`` and
``body`` (JSON: overflow numbers, NaN, duplicate keys, nesting, sizes, types, reflection).
``Case.needs`` says what a case needs beyond a plain HTTP server: ``"gateway"`` (a front door's
read timeouts and strict HTTP/1.1 parsing -- the gateway has them, a bare BentoML backend does not)
or ``"hardening"`` (the service fixes of issue #12 item 1).
"""

from __future__ import annotations

import argparse
import json
import random
import select
import socket
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fraud_detection.data.schema import TRANSACTION_FIELDS

ANSWER_SECONDS = 5.0
MAX_ERROR_BODY = 2048  # bytes of an error body, whatever the request held


# ---------------------------------------------------------------------------------------- the wire


class NoAnswer(Exception):
    """The server said nothing in time, or closed the connection without a complete response."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    interim: list[int] = field(default_factory=list)  # 1xx statuses before the final one
    header_names: list[str] = field(default_factory=list)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_size: int = 1000
    max_columnar_rows: int = 10_000
    api_key: str | None = None

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"


class Wire:
    """One raw TCP connection with a deadline for everything read from it."""

    def __init__(self, target: Target, seconds: float = ANSWER_SECONDS):
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.sock = socket.create_connection((target.host, target.port), timeout=seconds)
        self.buffer = b""
        self.send_failed = False

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send; a server that already answered and closed may refuse the rest (that is fine)."""
        if self.send_failed:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.send_failed = True

    def answered(self, wait: float = 0.0) -> bool:
        """Whether the server has sent something (or closed) within ``wait`` seconds."""
        return bool(self.buffer) or bool(select.select([self.sock], [], [], wait)[0])

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise NoAnswer(f"no answer within {self.seconds:g} s")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 16)
        except TimeoutError:
            raise NoAnswer(f"no answer within {self.seconds:g} s") from None
        except ConnectionResetError:
            raise NoAnswer("the connection was reset without an answer") from None
        if not chunk:
            raise NoAnswer("the connection was closed without an answer" if not self.buffer
                           else "the connection was closed in the middle of the answer")
        self.buffer += chunk

    def _take_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def closed(self) -> bool:
        """True once the server closed the connection (before the deadline)."""
        try:
            self._fill()
        except NoAnswer as gone:
            return "closed" in str(gone) or "reset" in str(gone)
        return False

    def response(self, head_request: bool = False) -> Response:
        interim = []
        while True:
            head = self._take_until(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise NoAnswer(f"not an HTTP response: {lines[0][:80]!r}")
            status = int(parts[1])
            names, headers = [], {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                key = name.strip().lower().decode("latin-1")
                names.append(key)
                headers[key] = value.strip().decode("latin-1")
            if 100 <= status < 200:
                interim.append(status)
                continue
            break
        if head_request or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._take_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._take_until(b"\r\n")
                    break
                body += self._take(size)
                self._take(2)
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        else:
            while True:
                try:
                    self._fill()
                except NoAnswer:
                    break
            body, self.buffer = self.buffer, b""
        return Response(status, headers, body, interim, names)


# ---------------------------------------------------------------------------------------- requests


def transaction(**changes) -> dict:
    """A valid transaction (every field of the schema), with ``changes``."""
    row = {name: 0.0 for name in TRANSACTION_FIELDS}
    row.update(Time=1000.0, Amount=10.0)
    row.update(changes)
    return row


def good_body() -> bytes:
    return json.dumps({"transaction": transaction()}).encode()


def request(target: Target, method: str = "POST", path: str = "/predict", body: bytes = b"",
            headers: list[str] | None = None, *, length: bool = True, host: bool = True,
            content_type: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    if host:
        lines.append(f"Host: {target.host_header}")
    if content_type and method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Type: application/json")
    if target.api_key:
        lines.append(f"X-API-Key: {target.api_key}")
    if length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join([*lines, *(headers or [])]).encode("latin-1")
    return head + b"\r\n\r\n" + body


def exchange(target: Target, data: bytes, seconds: float = ANSWER_SECONDS, head_request: bool = False) -> Response:
    wire = Wire(target, seconds)
    try:
        wire.send(data)
        return wire.response(head_request)
    finally:
        wire.close()


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


# ---------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    expect: tuple[int, ...]  # acceptable statuses; (2,) or (4,) alone means "any 2xx/4xx"
    send: Callable[[Target], Response | list[Response]]
    mentions: tuple[str, ...] = ()  # the error body must name these (a field, a limit)
    check: Callable[[Target, Response], str | None] | None = None  # another check; returns a problem
    needs: str | None = None  # "timeouts" (a front door's) or "hardening" (issue #12 item 1)
    seconds: float = ANSWER_SECONDS


CASES: list[Case] = []


def case(name: str, group: str, expect, mentions=(), check=None, needs=None, seconds=ANSWER_SECONDS):
    def register(send):
        CASES.append(Case(name, group, tuple(expect), send, tuple(mentions), check, needs, seconds))
        return send

    return register


def simple(name: str, group: str, expect, build: Callable[[Target], bytes], **options) -> None:
    case(name, group, expect, **options)(lambda target: exchange(target, build(target)))


def post_json(name: str, document, expect=(422,), path: str = "/predict", **options) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    simple(name, "body", expect, lambda target: request(target, "POST", path, body), **options)


def echoes_no(header: str):
    def check(target: Target, response: Response) -> str | None:
        return f"the response carries an injected {header} header" if header in response.headers else None

    return check


# --- framing: lengths ------------------------------------------------------------------------------------

BODY = good_body()
simple("content_length_negative", "framing", (400,),
       lambda t: request(t, body=BODY, length=False, headers=["Content-Length: -1"]))
case("content_length_huge", "framing", (400, 413))(
    lambda t: _early_answer(t, request(t, length=False, headers=["Content-Length: 99999999999999999999999"]), b""))
simple("content_length_not_a_number", "framing", (400,),
       lambda t: request(t, body=BODY, length=False, headers=["Content-Length: ten"]))
simple("content_length_plus_sign", "framing", (400,),
       lambda t: request(t, body=BODY, length=False, headers=[f"Content-Length: +{len(BODY)}"]))
simple("content_length_hex", "framing", (400,),
       lambda t: request(t, body=BODY, length=False, headers=[f"Content-Length: 0x{len(BODY):x}"]))
simple("content_length_conflicting", "framing", (400,),
       lambda t: request(t, body=BODY, length=False,
                         headers=[f"Content-Length: {len(BODY)}", f"Content-Length: {len(BODY) + 5}"]))
simple("content_length_shorter_than_body", "framing", (4,),
       lambda t: request(t, body=BODY, length=False, headers=[f"Content-Length: {len(BODY) // 2}"]))
case("content_length_longer_than_body", "framing", (408, 400), needs="gateway")(
    lambda t: exchange(t, request(t, body=BODY, length=False, headers=[f"Content-Length: {len(BODY) + 100}"])))
simple("content_length_and_chunked", "framing", (400,),
       lambda t: request(t, body=chunked(BODY), length=False,
                         headers=["Transfer-Encoding: chunked", f"Content-Length: {len(BODY)}"]))

# --- framing: chunks -------------------------------------------------------------------------------------

simple("chunked_good", "framing", (200,),
       lambda t: request(t, body=chunked(BODY[:40], BODY[40:]), length=False, headers=["Transfer-Encoding: chunked"]))
simple("transfer_encoding_unknown", "framing", (4,),
       lambda t: request(t, body=BODY, length=False, headers=["Transfer-Encoding: gzip"]))
simple("transfer_encoding_twice", "framing", (400,),
       lambda t: request(t, body=chunked(BODY), length=False,
                         headers=["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]))
simple("chunk_size_not_hex", "framing", (400,),
       lambda t: request(t, body=b"zz\r\n" + BODY + b"\r\n0\r\n\r\n", length=False, headers=["Transfer-Encoding: chunked"]))
simple("chunk_size_negative", "framing", (400,),
       lambda t: request(t, body=b"-5\r\nhello\r\n0\r\n\r\n", length=False, headers=["Transfer-Encoding: chunked"]))
case("chunk_size_huge", "framing", (400, 408, 413), needs="gateway")(
    lambda t: _early_answer(t, request(t, length=False, headers=["Transfer-Encoding: chunked"]),
                            b"ffffffffffffffff\r\n" + b"x" * 1024))
simple("chunk_size_overlong", "framing", (400, 413),
       lambda t: request(t, body=b"0" * 100 + b"5\r\nhello\r\n0\r\n\r\n", length=False,
                         headers=["Transfer-Encoding: chunked"]))
simple("chunk_longer_than_its_size", "framing", (400,),
       lambda t: request(t, body=b"5\r\nhello world\r\n0\r\n\r\n", length=False, headers=["Transfer-Encoding: chunked"]))
case("chunked_without_last_chunk", "framing", (408, 400), needs="gateway")(
    lambda t: exchange(t, request(t, body=b"%x\r\n%s\r\n" % (len(BODY), BODY), length=False,
                                  headers=["Transfer-Encoding: chunked"])))
simple("chunk_extension_huge", "framing", (400, 413, 431),
       lambda t: request(t, body=b"5;" + b"x" * 70_000 + b"\r\nhello\r\n0\r\n\r\n", length=False,
                         headers=["Transfer-Encoding: chunked"]))

# --- framing: the request line ---------------------------------------------------------------------------

simple("request_line_garbage", "framing", (400,), lambda t: b"NONSENSE\r\n\r\n")
simple("request_line_http09", "framing", (400,), lambda t: b"GET /livez\r\n\r\n", needs="gateway")
simple("request_line_unknown_version", "framing", (4,),
       lambda t: request(t, "GET", "/livez").replace(b"HTTP/1.1", b"HTTP/3.7", 1))
simple("request_line_extra_spaces", "framing", (400,),
       lambda t: request(t, "GET", "/livez").replace(b"GET /livez ", b"GET  /livez  ", 1), needs="gateway")
simple("request_line_lowercase_method", "framing", (4,), lambda t: request(t, "post", "/predict", BODY))
simple("request_line_nul", "framing", (400,), lambda t: request(t, "GET", "/livez").replace(b"/livez", b"/liv\x00ez", 1))
simple("request_target_fragment", "framing", (200, 400), lambda t: request(t, "GET", "/livez#part?x=1"))

# --- headers ---------------------------------------------------------------------------------------------

simple("host_missing", "headers", (400,), lambda t: request(t, body=BODY, host=False), needs="gateway")
simple("host_twice", "headers", (400,), lambda t: request(t, body=BODY, headers=["Host: evil.example"]),
       needs="gateway")
simple("header_bare_cr", "headers", (400,), lambda t: request(t, body=BODY, headers=["X-Test: a\rX-Injected: b"]))
simple("header_bare_lf", "headers", (400,), lambda t: request(t, body=BODY, headers=["X-Test: a\nX-Injected: b"]))
simple("header_nul", "headers", (400,), lambda t: request(t, body=BODY, headers=["X-Test: a\x00b"]))
simple("header_space_before_colon", "headers", (400,), lambda t: request(t, body=BODY, headers=["X-Test : a"]))
simple("header_folded", "headers", (400,), lambda t: request(t, body=BODY, headers=["X-Test: a", " folded"]))
simple("header_without_colon", "headers", (400,), lambda t: request(t, body=BODY, headers=["X-Test"]))
simple("header_name_invalid", "headers", (400,), lambda t: request(t, body=BODY, headers=["X@Test: a"]))
simple("header_line_very_long", "headers", (400, 431),
       lambda t: request(t, body=BODY, headers=["X-Test: " + "a" * 70_000]), needs="gateway")
simple("headers_very_many", "headers", (400, 431),
       lambda t: request(t, body=BODY, headers=[f"X-Test-{i}: {i}" for i in range(3000)]), needs="gateway")
simple("header_value_latin1", "headers", (200, 400), lambda t: request(t, body=BODY, headers=["X-Test: caf\xe9"]))
simple("header_value_control", "headers", (400,), lambda t: request(t, body=BODY, headers=["X-Test: a\x01b"]))


def _echoed_id(t: Target, r: Response) -> str | None:
    return None if r.headers.get("x-request-id") == "hostile-0123456789" else f"X-Request-ID came back as {r.headers.get('x-request-id')!r}"


def _fresh_id(t: Target, r: Response) -> str | None:
    given = r.headers.get("x-request-id", "")
    return None if given and len(given) <= 128 else f"X-Request-ID came back as {given[:40]!r}... ({len(given)} characters)"


simple("request_id_passed_through", "headers", (200,),
       lambda t: request(t, body=BODY, headers=["X-Request-ID: hostile-0123456789"]), check=_echoed_id)
simple("request_id_too_long_replaced", "headers", (200,),
       lambda t: request(t, body=BODY, headers=["X-Request-ID: " + "r" * 500]), check=_fresh_id)
simple("request_id_with_crlf_injection", "headers", (200, 400),
       lambda t: request(t, body=BODY, headers=["X-Request-ID: abc\r\nSet-Cookie: stolen=1"]), check=echoes_no("set-cookie"))
simple("content_type_pickle", "headers", (415,),
       lambda t: request(t, body=BODY, content_type=False, headers=["Content-Type: application/vnd.bentoml+pickle"]))
simple("connection_header_names_a_header", "headers", (200,),
       lambda t: request(t, body=BODY, headers=["Connection: keep-alive, X-Request-ID"]))

# --- Expect: 100-continue --------------------------------------------------------------------------------


def _expect_100(t: Target) -> Response:
    wire = Wire(t)
    try:
        head = request(t, headers=["Expect: 100-continue"], length=False)[:-2] + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        wire.send(head)
        if not wire.answered(wait=2.0):  # curl waits 1 s and then sends anyway: a server must not rely on that
            raise NoAnswer("no 100 Continue within 2 s of the head")
        first = wire._take_until(b"\r\n\r\n")
        if not first.startswith(b"HTTP/1.1 100"):
            wire.buffer = first + b"\r\n\r\n" + wire.buffer
            final = wire.response()
            raise NoAnswer(f"a final {final.status} before the body was sent, instead of 100 Continue")
        wire.send(BODY)
        response = wire.response()
        response.interim.insert(0, 100)
        return response
    finally:
        wire.close()


case("expect_100_continue_good_body", "expect", (200,))(_expect_100)


def _expect_too_large(t: Target) -> Response:
    wire = Wire(t)
    try:
        wire.send(request(t, length=False, headers=["Expect: 100-continue", f"Content-Length: {t.max_body_bytes + 1}"]))
        response = wire.response()
        if 100 in response.interim:
            raise NoAnswer(f"100 Continue for a body over the limit, then {response.status}")
        return response
    finally:
        wire.close()


case("expect_100_continue_too_large", "expect", (413,), mentions=("limit",))(_expect_too_large)
simple("expect_unknown", "expect", (200, 417), lambda t: request(t, body=BODY, headers=["Expect: teapot"]))

# --- methods ---------------------------------------------------------------------------------------------

simple("method_unknown", "methods", (405, 400), lambda t: request(t, "FOO", "/predict", BODY))
simple("method_trace", "methods", (405,), lambda t: request(t, "TRACE", "/predict"))
simple("method_connect", "methods", (4,), lambda t: request(t, "CONNECT", f"{t.host}:{t.port}"))
simple("method_propfind", "methods", (405,), lambda t: request(t, "PROPFIND", "/predict"))
simple("get_on_a_post_route", "methods", (405,), lambda t: request(t, "GET", "/predict"))
simple("delete_on_a_post_route", "methods", (405,), lambda t: request(t, "DELETE", "/predict"))
simple("options_on_predict", "methods", (2, 405), lambda t: request(t, "OPTIONS", "/predict"))
case("head_livez", "methods", (200,))(lambda t: exchange(t, request(t, "HEAD", "/livez"), head_request=True))

# --- paths -----------------------------------------------------------------------------------------------

simple("path_absolute_form", "paths", (4,), lambda t: request(t, "POST", "http://evil.example/predict", BODY),
       needs="gateway")
simple("path_asterisk_form", "paths", (4,), lambda t: request(t, "OPTIONS", "*"))
simple("path_traversal", "paths", (404,), lambda t: request(t, "GET", "/../../etc/passwd"))
simple("path_encoded_nul", "paths", (404,), lambda t: request(t, "GET", "/predict%00"))
simple("path_very_long", "paths", (400, 404, 414, 431), lambda t: request(t, "GET", "/" + "a" * 70_000))
simple("path_with_script_query", "paths", (200,), lambda t: request(t, "POST", "/predict?<script>=1", BODY))


def _cardinality(t: Target) -> list[Response]:
    """Sixty random 404 paths must not add sixty series to /metrics (a label per path would)."""
    before = exchange(t, request(t, "GET", "/metrics"))
    answers = []
    for _ in range(60):
        path = "/" + "".join(random.choices(string.ascii_lowercase, k=12))
        answers.append(exchange(t, request(t, "GET", path)))
    after = exchange(t, request(t, "GET", "/metrics"))
    grown = after.body.count(b"\n") - before.body.count(b"\n")
    if grown >= 60:
        raise _Failure(f"/metrics grew by {grown} lines after 60 random paths: one series per path")
    return answers


class _Failure(Exception):
    """A case's own check failed (with the reason)."""


case("path_cardinality", "paths", (404,), seconds=30, needs="hardening")(_cardinality)

# --- slow clients ----------------------------------------------------------------------------------------


@case("slowloris_head", "slow", (408, 400), needs="gateway")
def _slowloris(t: Target) -> Response:
    """A head trickled one byte every 0.2 s: never finished, it must be cut off."""
    wire = Wire(t)
    try:
        for byte in request(t, body=BODY)[:-4]:
            wire.send(bytes([byte]))
            if wire.answered(wait=0.2) or time.monotonic() > wire.deadline:
                break
        return wire.response()
    finally:
        wire.close()


@case("idle_connection_closed", "slow", (0,), needs="gateway", seconds=10)
def _idle(t: Target) -> Response:
    """A connection that never sends a byte is closed (no answer is due)."""
    wire = Wire(t, seconds=10)
    try:
        if not wire.closed():
            raise NoAnswer("still open after 10 s")
        return Response(0, {}, b"")
    finally:
        wire.close()


@case("slow_but_steady_body", "slow", (200,))
def _steady(t: Target) -> Response:
    """A body in ten pieces 0.2 s apart is a good request."""
    wire = Wire(t)
    try:
        data = request(t, body=BODY)
        step = len(data) // 10 + 1
        for start in range(0, len(data), step):
            wire.send(data[start:start + step])
            time.sleep(0.2)
        return wire.response()
    finally:
        wire.close()


# --- keep-alive ------------------------------------------------------------------------------------------


@case("pipelined_requests", "keepalive", (200,))
def _pipelined(t: Target) -> list[Response]:
    wire = Wire(t)
    try:
        wire.send(request(t, body=BODY) * 3)
        return [wire.response() for _ in range(3)]
    finally:
        wire.close()


@case("keep_alive_ten_requests", "keepalive", (200,))
def _keep_alive(t: Target) -> list[Response]:
    wire = Wire(t)
    try:
        answers = []
        for _ in range(10):
            wire.send(request(t, body=BODY))
            answers.append(wire.response())
        return answers
    finally:
        wire.close()


# --- bodies: JSON ----------------------------------------------------------------------------------------


def _names_in_body(*names: str):
    def check(t: Target, r: Response) -> str | None:
        text = r.body.decode("utf-8", "replace")
        missing = [n for n in names if n not in text]
        return f"the error does not name {', '.join(missing)}" if missing else None

    return check


def _raw_transaction(**raw: str) -> bytes:
    """A /predict body with some fields written as raw JSON text (numbers JSON libraries will not write)."""
    fields = [f'"{name}": {raw.get(name, json.dumps(value))}' for name, value in transaction().items()]
    return ('{"transaction": {' + ", ".join(fields) + "}}").encode()


post_json("good_predict", {"transaction": transaction()}, expect=(200,))
post_json("good_batch", {"transactions": [transaction(), transaction(Amount=99.0)]}, expect=(200,), path="/predict_batch")
post_json("good_columnar", {"columns": {k: [v, v, v] for k, v in transaction().items()}}, expect=(200,),
          path="/predict_columnar")
post_json("empty_body", b"", expect=(400,))
post_json("malformed_json", b'{"transaction": {"Time": 1,', expect=(400,))
post_json("not_utf8", b'{"transaction": "\xff\xfe"}', expect=(400,))
post_json("top_level_array", [transaction()], expect=(422,))
post_json("nan_literal", _raw_transaction(V3="NaN"), mentions=("V3",))
post_json("infinity_literal", _raw_transaction(V4="Infinity"), mentions=("V4",))
post_json("negative_infinity_literal", _raw_transaction(V5="-Infinity"), mentions=("V5",))
post_json("overflow_1e308", _raw_transaction(Amount="1e308"), mentions=("Amount",), needs="hardening")
post_json("overflow_minus_1e308", _raw_transaction(V1="-1e308"), mentions=("V1",), needs="hardening")
post_json("overflow_float32_3_5e38", _raw_transaction(V2="3.5e38"), mentions=("V2",), needs="hardening")
post_json("overflow_1e400", _raw_transaction(V6="1e400"), mentions=("V6",))
post_json("overflow_integer_400_digits", _raw_transaction(V7="1" + "0" * 400), mentions=("V7",))
post_json("duplicate_field_key", _raw_transaction(Amount='10.0, "Amount": 20.0'), expect=(400, 422),
          mentions=("Amount",), needs="hardening")
post_json("duplicate_top_level_key",
          b'{"transaction": ' + json.dumps(transaction()).encode() + b', "transaction": ' +
          json.dumps(transaction(Amount=20.0)).encode() + b"}",
          expect=(400, 422), mentions=("transaction",), needs="hardening")
post_json("deep_nesting", b"[" * 100_000 + b"]" * 100_000, expect=(400, 413, 422))
post_json("deep_nesting_in_a_field", _raw_transaction(V8="[" * 5000 + "1" + "]" * 5000), expect=(400, 422))
case("batch_too_many_rows", "body", (413,))(
    lambda t: exchange(t, request(t, "POST", "/predict_batch",
                                  json.dumps({"transactions": [transaction()] * (t.max_batch_size + 1)}).encode())))
case("columnar_too_many_rows", "body", (413,))(
    lambda t: exchange(t, request(t, "POST", "/predict_columnar", json.dumps(
        {"columns": {k: [v] * (t.max_columnar_rows + 1) for k, v in transaction().items()}}).encode())))


def _early_answer(t: Target, head: bytes, body_piece: bytes) -> Response:
    """Send a head announcing a big body and a first piece; the answer must come without the rest."""
    wire = Wire(t)
    try:
        wire.send(head + body_piece)
        return wire.response()
    finally:
        wire.close()


def _over_limit_chunked(t: Target) -> Response:
    """Chunks past the limit: the answer must come as soon as the limit is passed."""
    wire = Wire(t, seconds=15)
    try:
        wire.send(request(t, length=False, headers=["Transfer-Encoding: chunked"]))
        piece = b"%x\r\n%s\r\n" % (1 << 16, b"1" * (1 << 16))
        sent = 0
        while sent <= t.max_body_bytes + (1 << 16) and not wire.answered():
            wire.send(piece)
            sent += 1 << 16
        return wire.response()
    finally:
        wire.close()


case("body_over_limit", "body", (413,), mentions=("limit",))(
    lambda t: _early_answer(t, request(t, length=False, headers=[f"Content-Length: {t.max_body_bytes + 1}"]),
                            b"{" * 1024))
case("body_over_limit_chunked", "body", (413,), mentions=("limit",), seconds=15)(_over_limit_chunked)
post_json("wrong_type_string", {"transaction": transaction(V9="12.5")}, mentions=("V9",))
post_json("wrong_type_boolean", {"transaction": transaction(V10=True)}, mentions=("V10",))
post_json("wrong_type_null", {"transaction": transaction(V11=None)}, mentions=("V11",))
post_json("wrong_type_object", {"transaction": transaction(V12={"value": 1})}, mentions=("V12",))
post_json("wrong_type_array", {"transaction": transaction(V13=[1, 2])}, mentions=("V13",))
post_json("transaction_not_an_object", {"transaction": "all of it"}, mentions=("transaction",))
post_json("missing_field", {"transaction": {k: v for k, v in transaction().items() if k != "V14"}}, mentions=("V14",))
post_json("unknown_field", {"transaction": {**transaction(), "merchant": "x"}}, mentions=("merchant",))
post_json("unknown_top_level_field", {"transaction": transaction(), "debug": True}, mentions=("debug",))
post_json("negative_amount", {"transaction": transaction(Amount=-5.0)}, mentions=("Amount",))
post_json("empty_batch", {"transactions": []}, path="/predict_batch", mentions=("transactions",))
post_json("bad_row_in_batch", {"transactions": [transaction()] * 3 + [transaction(V15="x")]}, path="/predict_batch",
          mentions=("transactions[3]", "V15"))
post_json("columns_of_unequal_length", {"columns": {**{k: [v, v] for k, v in transaction().items()}, "V16": [1.0]}},
          path="/predict_columnar", mentions=("V16",))


def _not_html(t: Target, r: Response) -> str | None:
    kind = r.headers.get("content-type", "")
    return None if kind.startswith("application/json") else f"an error reflecting markup is served as {kind!r}"


post_json("reflected_script_field_name", {"transaction": {**transaction(), "<script>alert(1)</script>": 1}},
          check=_not_html)
post_json("long_field_name_bounded_error", {"transaction": {**transaction(), "x" * 100_000: 1}}, needs="hardening")


# ---------------------------------------------------------------------------------------- running


@dataclass
class Result:
    case: Case
    ok: bool
    statuses: list[int]
    seconds: float
    problem: str = ""


def _expected(expect: tuple[int, ...], status: int) -> bool:
    return any(status == e or (e < 10 and status // 100 == e) for e in expect)


def _judge(c: Case, target: Target, response: Response) -> str | None:
    status = response.status
    if status >= 500:
        return f"a server error ({status})"
    if c.expect == (0,):
        return None
    if not _expected(c.expect, status):
        return f"expected {'/'.join(str(e) if e >= 10 else f'{e}xx' for e in c.expect)}, got {status}"
    if 400 <= status < 500 and (c.group == "body" or c.mentions):  # errors about the content are JSON
        if response.headers.get("content-type", "").split(";")[0] != "application/json":
            return f"the {status} is not JSON ({response.headers.get('content-type')!r})"
    if 400 <= status < 500:
        if len(response.body) > MAX_ERROR_BODY:
            return f"the {status} error body is {len(response.body)} bytes (at most {MAX_ERROR_BODY})"
        text = response.body.decode("utf-8", "replace")
        for word in c.mentions:
            wanted = str(target.max_body_bytes) if word == "limit" else word
            if wanted not in text:
                return f"the error does not name {wanted!r}: {text[:120]}"
    if c.check is not None:
        return c.check(target, response)
    return None


def run_case(c: Case, target: Target) -> Result:
    started = time.monotonic()
    try:
        answer = c.send(target)
    except NoAnswer as error:
        return Result(c, False, [], time.monotonic() - started, str(error))
    except _Failure as error:
        return Result(c, False, [], time.monotonic() - started, str(error))
    except OSError as error:
        return Result(c, False, [], time.monotonic() - started, f"{type(error).__name__}: {error}")
    seconds = time.monotonic() - started
    responses = answer if isinstance(answer, list) else [answer]
    statuses = [r.status for r in responses]
    if seconds > c.seconds + 0.5:
        return Result(c, False, statuses, seconds, f"answered after {seconds:.1f} s (at most {c.seconds:g} s)")
    for response in responses:
        problem = _judge(c, target, response)
        if problem:
            return Result(c, False, statuses, seconds, problem)
    return Result(c, True, statuses, seconds)


def run(target: Target, names: list[str] | None = None, progress: Callable[[Result], None] | None = None) -> list[Result]:
    results = []
    for c in CASES:
        if names and c.name not in names and c.group not in names:
            continue
        result = run_case(c, target)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def case_named(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def target_from_url(url: str, **limits) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url!r}: give an http://host:port URL")
    return Target(parts.hostname, parts.port or 80, **limits)


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description="Send hostile requests to a scoring service; exit 1 on any failure.")
    parser.add_argument("url", help="http://host:port of the gateway or of a backend")
    parser.add_argument("--config", default=None, help="the deployment YAML whose service: limits apply")
    parser.add_argument("--only", nargs="*", help="case names or groups")
    parser.add_argument("--api-key", default=os.environ.get("FRAUD_API_KEY"))
    args = parser.parse_args(argv)
    from fraud_detection.serving.config import load_deployment_config

    service = load_deployment_config(args.config).service
    target = target_from_url(args.url, max_body_bytes=service.max_body_bytes, max_batch_size=service.max_batch_size,
                             max_columnar_rows=service.max_columnar_rows, api_key=args.api_key)

    def show(result: Result) -> None:
        c = result.case
        verdict = "ok" if result.ok else "FAIL"
        got = ",".join(sorted({str(s) for s in result.statuses})) or "-"
        print(f"{verdict:4}  {c.group:9}  {c.name:38} {got:>9}  {result.seconds:5.2f}s  "
              f"{result.problem}{'  [needs ' + c.needs + ']' if c.needs and not result.ok else ''}", flush=True)

    print(f"{'':4}  {'group':9}  {'case':38} {'status':>9}  {'time':>6}")
    results = run(target, args.only, show)
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} of {len(results)} cases passed against {args.url}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
