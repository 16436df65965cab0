"""ASGI middleware in front of the endpoints: request id, API key, body size.

* Every response carries ``X-Request-ID``: the client's, if it sent a safe one (1-128 printable
  ASCII characters), else a fresh one. Endpoints read it from :data:`REQUEST_ID`.
* With an API key configured (``FRAUD_API_KEY``), the scoring endpoints and ``/model`` need it in
  ``X-API-Key`` or ``Authorization: Bearer``, else 401. Health, metrics and docs stay open.
* A scoring request's body is read here, up to ``max_body_bytes``: a larger ``Content-Length``
  is refused before a byte is read, and a longer chunked body as soon as it passes the limit
  (413). The endpoint then reads the buffered body. BentoML's internal pickle media type is
  refused (415); any other Content-Type is read as JSON.
"""

from __future__ import annotations

import contextvars
import hmac
import uuid
from collections.abc import Collection

from fraud_detection.serving.contract import (
    TOO_LARGE,
    UNAUTHORIZED,
    dumps,
    error_body,
    request_id_or_none,
)

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("fraud_request_id", default="")
REQUEST_ID_HEADER = b"x-request-id"
PICKLE_MEDIA_TYPE = b"application/vnd.bentoml+pickle"
UNSUPPORTED = 415


async def _respond(send, status: int, message: str, request_id: str, extra: list | None = None) -> None:
    body = dumps(error_body(message))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER, request_id.encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class GuardMiddleware:
    def __init__(
        self,
        app,
        *,
        protected_paths: Collection[str],
        body_paths: Collection[str],
        max_body_bytes: int,
        api_key: str | None,
    ) -> None:
        self.app = app
        self.protected_paths = frozenset(protected_paths)
        self.body_paths = frozenset(body_paths)
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])  # last value wins for repeated headers
        sent_id = headers.get(REQUEST_ID_HEADER)
        request_id = request_id_or_none(sent_id.decode("latin-1")) if sent_id else None
        request_id = request_id or uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        try:
            path = scope["path"]
            if self.api_key is not None and path in self.protected_paths and not self._authorised(headers):
                return await _respond(
                    send, UNAUTHORIZED, "missing or wrong API key: send it in X-API-Key or Authorization: Bearer",
                    request_id, [(b"www-authenticate", b"Bearer")],
                )
            if scope["method"] == "POST" and path in self.body_paths:
                media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
                if media_type == PICKLE_MEDIA_TYPE:
                    # BentoML refuses it too, but with a traceback in the log and another body layout.
                    return await _respond(send, UNSUPPORTED, "send the body as JSON, not as a pickle", request_id)
                body = await self._read_body(headers, receive)
                if body is None:
                    return await _respond(
                        send, TOO_LARGE, f"the request body is larger than {self.max_body_bytes} bytes", request_id,
                        [(b"connection", b"close")],
                    )
                receive = _replay(body, receive)

            async def send_with_id(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]}
                await send(message)

            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key")
        if given is None:
            authorization = headers.get(b"authorization", b"")
            scheme, _, credentials = authorization.partition(b" ")
            if scheme.lower() != b"bearer":
                return False
            given = credentials.strip()
        return hmac.compare_digest(given, self.api_key)

    async def _read_body(self, headers: dict[bytes, bytes], receive) -> bytes | None:
        """The whole body, or None as soon as it is known to exceed the limit."""
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                if int(declared) > self.max_body_bytes:
                    return None
            except ValueError:
                pass  # a malformed length is the server's (uvicorn's) business
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # afterwards: wait for the disconnect, as the server would say

    return replay
