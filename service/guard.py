"""ASGI middleware in front of the endpoints: request identity, API key, synthetic credential, body size.

* **Identity.** Every request gets the service's own id (:class:`RequestIdentity`, read by the
  endpoints from :data:`IDENTITY`): a fresh uuid4, the key of the prediction log and of the labels
  joined to it. A client's ``X-Request-ID`` is never that key; if it is safe (1-128 printable ASCII
  characters) it is kept beside it and echoed. Every response carries ``X-Request-ID`` (the client's
  id if it sent a safe one, else the service's) and ``X-Service-Request-ID`` (always the service's).
* **API key.** With a key configured (``FRAUD_API_KEY``), the scoring endpoints and ``/model`` need
  it in ``X-API-Key`` or ``Authorization: Bearer``, else 401. Health, metrics and docs stay open.
  A configured key must pass :func:`check_secret` or the service does not start: set but empty or
  short is a mistake, not "no auth" (unset is no auth, for local use).
* **Synthetic credential.** A scoring request with ``X-Synthetic-Key`` equal to the service's
  synthetic key is logged as the system's own traffic (``synthetic``); a wrong one is a 401. Without
  the header a request is ordinary traffic, whatever its ``X-Request-ID`` says.
* **Body.** A scoring request's body is read here, up to ``max_body_bytes``: a larger
  ``Content-Length`` is refused before a byte is read, and a longer chunked body as soon as it passes
  the limit (413). The endpoint then reads the buffered body. BentoML's internal pickle media type is
  refused (415); any other Content-Type is read as JSON.
"""

from __future__ import annotations

import contextvars
import hmac
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from fraud_detection.serving.contract import (
    TOO_LARGE,
    UNAUTHORIZED,
    dumps,
    error_body,
    request_id_or_none,
)
from fraud_detection.serving.prediction_log import SYNTHETIC_KEY_HEADER

REQUEST_ID_HEADER = b"x-request-id"
SERVICE_REQUEST_ID_HEADER = b"x-service-request-id"
_SYNTHETIC_HEADER = SYNTHETIC_KEY_HEADER.lower().encode()
PICKLE_MEDIA_TYPE = b"application/vnd.bentoml+pickle"
UNSUPPORTED = 415
# A secret (API key, synthetic key): long enough not to be guessed, and a valid header value as sent.
MIN_SECRET_CHARS = 16
_SECRET = re.compile(r"[!-~]+")


class SecretError(ValueError):
    """A configured secret that must not be used; the message says which and why."""


def check_secret(name: str, value: str | None) -> str | None:
    """``value`` if it is a usable secret, None if unset; :class:`SecretError` if set but unusable."""
    if value is None:
        return None
    if len(value) < MIN_SECRET_CHARS:
        state = "empty" if not value else f"{len(value)} characters long"
        raise SecretError(
            f"{name} is set but {state}: a key needs at least {MIN_SECRET_CHARS} characters "
            f"(unset {name} to run without one, for local use only)"
        )
    if not _SECRET.fullmatch(value):
        raise SecretError(f"{name} holds spaces or non-printable characters: use printable ASCII only")
    return value


@dataclass(frozen=True)
class RequestIdentity:
    request_id: str  # the service's own id: the prediction log's and the label store's key
    client_request_id: str = ""  # the client's X-Request-ID if it sent a safe one
    synthetic: bool = False  # the request presented the synthetic credential

    @property
    def echoed(self) -> str:
        return self.client_request_id or self.request_id


IDENTITY: contextvars.ContextVar[RequestIdentity] = contextvars.ContextVar("fraud_request_identity")


async def _respond(send, status: int, message: str, identity: RequestIdentity, extra: list | None = None) -> None:
    body = dumps(error_body(message))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_identity_headers(identity),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _identity_headers(identity: RequestIdentity) -> list[tuple[bytes, bytes]]:
    return [(REQUEST_ID_HEADER, identity.echoed.encode()), (SERVICE_REQUEST_ID_HEADER, identity.request_id.encode())]


class GuardMiddleware:
    def __init__(
        self,
        app,
        *,
        protected_paths: Collection[str],
        body_paths: Collection[str],
        max_body_bytes: int,
        api_key: str | None,
        synthetic_key: str | None = None,
    ) -> None:
        self.app = app
        self.protected_paths = frozenset(protected_paths)
        self.body_paths = frozenset(body_paths)
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key.encode() if api_key else None
        self.synthetic_key = synthetic_key.encode() if synthetic_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])  # last value wins for repeated headers
        sent_id = headers.get(REQUEST_ID_HEADER)
        client_id = (request_id_or_none(sent_id.decode("latin-1")) if sent_id else None) or ""
        identity = RequestIdentity(uuid.uuid4().hex, client_id)
        path = scope["path"]
        if self.api_key is not None and path in self.protected_paths and not self._authorised(headers):
            return await _respond(
                send, UNAUTHORIZED, "missing or wrong API key: send it in X-API-Key or Authorization: Bearer",
                identity, [(b"www-authenticate", b"Bearer")],
            )
        if path in self.body_paths and _SYNTHETIC_HEADER in headers:
            given = headers[_SYNTHETIC_HEADER]
            if self.synthetic_key is None or not hmac.compare_digest(given, self.synthetic_key):
                return await _respond(
                    send, UNAUTHORIZED,
                    f"wrong {SYNTHETIC_KEY_HEADER}: only the system's own clients mark requests as synthetic; "
                    "send payments without it",
                    identity,
                )
            identity = RequestIdentity(identity.request_id, client_id, synthetic=True)
        token = IDENTITY.set(identity)
        try:
            if scope["method"] == "POST" and path in self.body_paths:
                media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
                if media_type == PICKLE_MEDIA_TYPE:
                    # BentoML refuses it too, but with a traceback in the log and another body layout.
                    return await _respond(send, UNSUPPORTED, "send the body as JSON, not as a pickle", identity)
                body = await self._read_body(headers, receive)
                if body is None:
                    return await _respond(
                        send, TOO_LARGE, f"the request body is larger than {self.max_body_bytes} bytes", identity,
                        [(b"connection", b"close")],
                    )
                receive = _replay(body, receive)

            async def send_with_identity(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), *_identity_headers(identity)]}
                await send(message)

            await self.app(scope, receive, send_with_identity)
        finally:
            IDENTITY.reset(token)

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
