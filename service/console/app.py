"""The analyst console: a server-rendered Starlette app (Jinja2 templates, no JavaScript, no CDN).

Pages (``docs/console.md``): sign-in, Score, Review queue and item, Reconciliation, Model
(``/champion``: ``/model`` is the API's), Monitoring (and its Evidently reports), Account, and for
admins Users and Audit log. Every asset is served from ``static/``; plots are PNGs drawn on the
server (:mod:`service.console.plots`).

**Mounting.** :func:`create_app` returns an ASGI app meant to sit at ``/`` of the front door on
:3000, next to the API: it defines no route under :data:`API_PATHS` (``/predict*``, ``/labels``,
``/model``, ``/livez``, ``/readyz``, ``/metrics``, ``/docs*``), which the gateway sends to the
scoring service. Until then it runs on its own: ``python -m service.console serve --port 3100``.

**Security.** Signed-out visitors get the sign-in page and nothing else (a page request redirects
there). The session cookie (Starlette's ``SessionMiddleware``, signed with the console's secret)
is HttpOnly and SameSite=Lax and holds only a session id and the CSRF token; the session itself
lives in the console's state, so signing out, disabling a user or changing a role ends it. Every
form carries the CSRF token and a POST without the right one is refused (403). Request bodies are
bounded, responses carry a strict Content-Security-Policy, and a client's mistake gets a 4xx page
naming the field. Sign-in failures are rate-limited (:mod:`service.console.auth`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.names import MODEL_NAME
from fraud_detection.serving import label_store as ls
from fraud_detection.serving import prediction_log
from fraud_detection.serving import transaction_id as tid
from service.console import monitoring, plots, review
from service.console.auth import API_KEY_ENV, Accounts, SignInRefused, User, ensure_first_admin
from service.console.config import ROLES, ConsoleConfig, load_console_config
from service.console.model_card import ModelCardError, read_card
from service.console.scoring import InputProblem, ScoringError, ServiceClient, from_form, parse_pasted
from service.console.state import ConsoleState

log = logging.getLogger("fraud.console")

HERE = Path(__file__).resolve().parent
API_PATHS: tuple[str, ...] = (
    "/predict", "/predict_batch", "/predict_columnar", "/labels", "/model", "/livez", "/readyz", "/healthz",
    "/metrics", "/docs", "/docs.json",
)
SESSION_COOKIE = "fraud_console"
CSRF_FIELD = "csrf_token"
MAX_BODY_BYTES = 64 * 1024
MAX_NOTE_CHARS = 500
RECENT_TRANSACTIONS = 20
# How far back the prediction log goes (its retention): reconciliation and item pages look that far.
RETENTION_DAYS = float(prediction_log.DEFAULT_SETTINGS.retention_max_age_days or 35)
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# Evidently's report is one self-contained page of inline scripts: it runs sandboxed (an opaque
# origin, no access to the console's cookies) and may not connect anywhere.
REPORT_CSP = ("sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
              "style-src 'unsafe-inline'; img-src data:; font-src data:")


# --------------------------------------------------------------------------------------------
# ASGI middleware: security headers and a bounded body
# --------------------------------------------------------------------------------------------


class Guard:
    """Refuses bodies over ``max_body`` bytes (413) and adds the security headers to every response."""

    def __init__(self, app, max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await _plain(send, 413, f"the request body is larger than {self.max_body} bytes")
        seen = 0

        async def bounded_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise HTTPException(413, f"the request body is larger than {self.max_body} bytes")
            return message

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store"),
                ]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": [*message.get("headers", []), *[h for h in extra if h[0] not in present]]}
            await send(message)

        await self.app(scope, bounded_receive, send_with_headers)


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------------------------
# The console's parts
# --------------------------------------------------------------------------------------------


class Console:
    """Everything a request handler needs: settings, state, users, stores, the service client."""

    def __init__(self, config: ConsoleConfig):
        self.config = config
        self.state = ConsoleState(config.state_dir())
        self.secret = self.state.secret()
        self.accounts = Accounts(config, self.state)
        self.client = ServiceClient(config.service_url, os.environ.get(API_KEY_ENV) or None, config.request_timeout_seconds)
        self.prediction_log = Path(config.prediction_log) if config.prediction_log else None
        self.label_dir = Path(config.label_store) if config.label_store else ls.default_directory()
        self._labels: ls.LabelStore | None = None
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(fmt_time=fmt_time, fmt_money=fmt_money, fmt_prob=fmt_prob, roles=ROLES)
        self.first_admin = ensure_first_admin(config, self.state)

    @property
    def labels(self) -> ls.LabelStore:
        if self._labels is None:
            self._labels = ls.LabelStore(self.label_dir)
        return self._labels

    def close(self) -> None:
        if self._labels is not None:
            self._labels.close()

    def banner(self) -> monitoring.MonitoringDecision | None:
        """The latest monitoring decision if it needs attention (read each time: a few file stats)."""
        return monitoring.latest_attention(self.config.monitoring_reports())

    def scored(self, days: float | None = None) -> pd.DataFrame:
        since = time.time() - (days or self.config.queue.days) * review.DAY_SECONDS
        return review.read_scored(self.prediction_log, since=since)

    def history(self) -> pd.DataFrame:
        return ls.read_labels(self.label_dir, known_by=time.time())


def fmt_time(seconds: Any) -> str:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return ""
    if math.isnan(value):
        return ""
    return pd.Timestamp(value, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")


def fmt_money(value: Any) -> str:
    return f"{float(value):,.2f}"


def fmt_prob(value: Any) -> str:
    value = float(value)
    return f"{value:.4f}" if value >= 0.0001 else f"{value:.1e}"


# --------------------------------------------------------------------------------------------
# Sessions, roles, CSRF
# --------------------------------------------------------------------------------------------


def console_of(request: Request) -> Console:
    return request.app.state.console


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def signed_in(request: Request) -> User | None:
    session_id = request.session.get("sid")
    if not session_id:
        return None
    console = console_of(request)
    session = console.state.session(session_id)
    if session is None:
        return None
    return console.accounts.current(session["user"], session["role"])


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its CSRF token matches the session's (403 otherwise)."""
    try:
        form = await request.form(max_files=0, max_fields=100, max_part_size=MAX_BODY_BYTES)
    except HTTPException:
        raise
    except Exception as error:  # a malformed body is the client's mistake
        raise HTTPException(400, f"the form could not be read: {type(error).__name__}") from None
    sent = form.get(CSRF_FIELD)
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not expected or not secrets.compare_digest(sent, expected):
        raise HTTPException(403, "the form's security token is missing or stale: reload the page and try again")
    return form


def safe_next(target: str | None) -> str:
    """A local path to go back to after sign-in (anything else goes to the start page)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


Handler = Callable[[Request, User], Awaitable[Response]]


def page(role: str = "analyst"):
    """A page for signed-in users of ``role`` (admins may do what analysts do)."""

    def wrap(handler: Handler):
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            user = signed_in(request)
            if user is None:
                if request.method != "GET":
                    raise HTTPException(401, "sign in first")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/signin?" + urlencode({"next": target}), 303)
            if role == "admin" and not user.is_admin:
                raise HTTPException(403, "this page is for admins")
            if user.must_change and request.url.path != "/account":
                return RedirectResponse("/account", 303)
            request.state.user = user
            return await handler(request, user)

        return endpoint

    return wrap


def render(request: Request, template: str, status: int = 200, headers: dict[str, str] | None = None, **context) -> Response:
    console = console_of(request)
    user = getattr(request.state, "user", None)
    flashes = request.session.pop("flash", []) if "session" in request.scope else []
    return console.templates.TemplateResponse(
        request, template,
        {"user": user, "csrf": csrf_token(request), "banner": console.banner() if user else None,
         "flashes": flashes, "service_url": console.config.service_url, **context},
        status_code=status, headers=headers,
    )


def flash(request: Request, message: str, kind: str = "info") -> None:
    request.session["flash"] = [*request.session.get("flash", []), {"kind": kind, "text": message}]


# --------------------------------------------------------------------------------------------
# Sign-in
# --------------------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    return RedirectResponse("/queue" if signed_in(request) else "/signin", 303)


async def signin_page(request: Request) -> Response:
    if signed_in(request):
        return RedirectResponse(safe_next(request.query_params.get("next")), 303)
    return render(request, "signin.html", next=safe_next(request.query_params.get("next")),
                  first_admin=console_of(request).first_admin)


async def signin(request: Request) -> Response:
    form = await checked_form(request)
    console = console_of(request)
    name = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "")))
    client = request.client.host if request.client else "unknown"
    try:
        user = console.accounts.authenticate(name, password, client)
    except SignInRefused as refused:
        status = 429 if refused.retry_after else 401
        headers = {"Retry-After": str(math.ceil(refused.retry_after))} if refused.retry_after else None
        return render(request, "signin.html", status=status, headers=headers, error=str(refused), next=target,
                      username=name, first_admin=console.first_admin)
    session_id = console.state.create_session(user.name, user.role, console.config.session_hours * 3600)
    request.session.clear()  # a new session id and CSRF token: nothing of the signed-out session survives
    request.session["sid"] = session_id
    request.session["csrf"] = secrets.token_urlsafe(32)
    log.info("%s signed in (%s)", user.name, user.role)
    return RedirectResponse("/account" if user.must_change else target, 303)


async def signout(request: Request) -> Response:
    await checked_form(request)
    session_id = request.session.get("sid")
    if session_id:
        console_of(request).state.end_session(session_id)
    request.session.clear()
    return RedirectResponse("/signin", 303)


# --------------------------------------------------------------------------------------------
# Score
# --------------------------------------------------------------------------------------------


def _recent(console: Console) -> pd.DataFrame:
    scored = console.scored(days=1)
    return scored.sort_values("logged_at", ascending=False).head(RECENT_TRANSACTIONS)


@page()
async def score_page(request: Request, user: User) -> Response:
    return render(request, "score.html", values={}, recent=_recent(console_of(request)), fields=TRANSACTION_FIELDS)


@page()
async def score(request: Request, user: User) -> Response:
    form = await checked_form(request)
    console = console_of(request)
    action = form.get("action", "score")
    recent = _recent(console)
    values: dict[str, Any] = {name: form.get(name, "") for name in TRANSACTION_FIELDS}
    context: dict[str, Any] = {"recent": recent, "fields": TRANSACTION_FIELDS, "values": values}
    try:
        if action == "paste":
            context["pasted"] = str(form.get("pasted", ""))[:20_000]
            transaction = parse_pasted(context["pasted"])
        elif action == "load":
            wanted = str(form.get("transaction_id", ""))
            match = recent.loc[recent[tid.TRANSACTION_ID] == wanted]
            if match.empty:
                raise InputProblem("choose one of the recent transactions listed", "transaction_id")
            transaction = review.transaction_fields(match.iloc[0])
            context["loaded"] = match.iloc[0].to_dict()
        elif action == "score":
            transaction = from_form(values)
        else:
            raise InputProblem("unknown action")
    except InputProblem as problem:
        return render(request, "score.html", status=422, error=str(problem), error_field=problem.field, **context)
    context["values"] = transaction
    try:
        result = console.client.score(transaction)
    except ScoringError as error:
        status = error.status if error.status and 400 <= error.status < 500 else 502
        return render(request, "score.html", status=status, error=f"the service refused: {error}", **context)
    chart = plots.data_uri(plots.reasons_png(result.reasons)) if result.reasons else None
    return render(request, "score.html", result=result, chart=chart, **context)


# --------------------------------------------------------------------------------------------
# Review queue
# --------------------------------------------------------------------------------------------


def _queue(console: Console) -> pd.DataFrame:
    now = time.time()
    return review.build_queue(
        console.scored(), console.history(), console.state.claims(now), console.config.queue.audit_sample_rate,
        console.secret,
    )


def _reasons_for(console: Console, rows: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """The reasons each row's scoring model gave: the prediction log's when it records them, else the
    console's copy, else asked of the service when it still serves that model version."""
    out: dict[str, list[dict[str, Any]]] = {}
    if rows.empty:
        return out
    if "reasons" in rows.columns:
        for transaction, text in zip(rows[tid.TRANSACTION_ID], rows["reasons"], strict=True):
            try:
                parsed = json.loads(text) if isinstance(text, str) and text else None
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                out[transaction] = parsed
    missing = rows.loc[~rows[tid.TRANSACTION_ID].isin(out)]
    keys = list(zip(missing[tid.TRANSACTION_ID], missing["model_version"].astype(str), strict=True))
    cached = console.state.reasons(keys)
    out.update({t: r for (t, _), r in cached.items()})
    ask = missing.loc[~missing[tid.TRANSACTION_ID].isin(out)]
    if ask.empty:
        return out
    try:
        version, found = console.client.reasons([review.transaction_fields(r) for _, r in ask.iterrows()])
    except ScoringError as error:
        log.warning("reasons for %d queue item(s) not available: %s", len(ask), error)
        return out
    fresh = {}
    for (_, row), reasons in zip(ask.iterrows(), found, strict=True):
        if str(row["model_version"]) == version:  # only the model that scored it speaks for it
            fresh[(row[tid.TRANSACTION_ID], version)] = reasons
            out[row[tid.TRANSACTION_ID]] = reasons
    console.state.keep_reasons(fresh)
    return out


def _filter(request: Request, params) -> review.QueueFilter:
    try:
        return review.QueueFilter.parse({k: str(v) for k, v in params.items()})
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


@page()
async def queue_page(request: Request, user: User) -> Response:
    console = console_of(request)
    chosen = _filter(request, request.query_params)
    try:
        number = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        raise HTTPException(422, "page must be a whole number") from None
    everything = _queue(console)
    shown = chosen.apply(everything)
    size = console.config.queue.page_size
    pages = max(1, math.ceil(len(shown) / size))
    number = min(number, pages)
    rows = shown.iloc[(number - 1) * size: number * size]
    reasons = _reasons_for(console, rows)
    days = sorted(pd.to_datetime(everything["logged_at"], unit="s", utc=True).dt.strftime("%Y-%m-%d").unique(),
                  reverse=True) if len(everything) else []
    return render(
        request, "queue.html", rows=rows.to_dict("records"), reasons=reasons, counts=review.counts(everything),
        shown=len(shown), chosen=chosen, kinds=review.KINDS, statuses=review.STATUSES, days=days,
        versions=sorted(everything["model_version"].astype(str).unique()) if len(everything) else [],
        page=number, pages=pages, query=chosen.query(), audit_rate=console.config.queue.audit_sample_rate,
        queue_days=console.config.queue.days, now=time.time(),
    )


def _next(console: Console, user: User, chosen: review.QueueFilter) -> str | None:
    now = time.time()
    candidates = chosen.apply(_queue(console))
    return review.claim_next(console.state, candidates, user.name, now, console.config.queue.claim_minutes * 60)


@page()
async def queue_next(request: Request, user: User) -> Response:
    form = await checked_form(request)
    chosen = _filter(request, {k: form.get(k, "") for k in ("day", "version", "kind", "status")})
    chosen = review.QueueFilter(chosen.day, chosen.version, chosen.kind, "unreviewed")
    found = _next(console_of(request), user, chosen)
    if found is None:
        flash(request, "Nothing left to review with these filters.")
        return RedirectResponse("/queue?" + urlencode(chosen.query()), 303)
    return RedirectResponse(f"/review/{found}?" + urlencode(chosen.query()), 303)


def _item(console: Console, transaction: str) -> pd.Series:
    """The scored transaction: looked for in the queue's days, then in the whole log (reconciliation links)."""
    if not tid.is_valid(transaction):
        raise HTTPException(404, "no such transaction")
    for days in (console.config.queue.days, RETENTION_DAYS):
        scored = console.scored(days=days)
        match = scored.loc[scored[tid.TRANSACTION_ID] == transaction]
        if len(match):
            return match.iloc[0]
    raise HTTPException(404, f"{transaction} is not among the transactions scored in the last {RETENTION_DAYS:g} days")


@page()
async def review_page(request: Request, user: User) -> Response:
    console = console_of(request)
    transaction = request.path_params["transaction_id"]
    row = _item(console, transaction)
    history = ls.transaction_history(console.history(), transaction)
    reasons = _reasons_for(console, row.to_frame().T).get(transaction)
    chart = plots.data_uri(plots.reasons_png(reasons, "Reasons the model gave when it scored this")) if reasons else None
    claims = console.state.claims(time.time())
    chosen = _filter(request, request.query_params)
    return render(
        request, "review.html", row=row.to_dict(), fields=TRANSACTION_FIELDS, chart=chart, reasons=reasons,
        history=history.to_dict("records"), claim=claims.get(transaction), query=chosen.query(),
        kind=review.FLAGGED if bool(row["is_fraud"]) else review.AUDIT, class_name=review.class_name,
    )


@page()
async def decide(request: Request, user: User) -> Response:
    form = await checked_form(request)
    console = console_of(request)
    transaction = request.path_params["transaction_id"]
    decision = form.get("decision")
    if decision not in ("fraud", "legitimate"):
        raise HTTPException(422, "decision must be fraud or legitimate")
    note = str(form.get("note", "")).strip()
    if len(note) > MAX_NOTE_CHARS:
        raise HTTPException(422, f"note: at most {MAX_NOTE_CHARS} characters")
    row = _item(console, transaction)
    try:
        change = review.record_decision(console.state, console.labels, transaction, decision == "fraud", user.name,
                                         str(row["model_version"]), time.time(), note)
    except review.Conflict as conflict:
        raise HTTPException(409, str(conflict)) from None
    flash(request, f"{transaction}: {change['after']} (was {change['before']}).")
    chosen = _filter(request, {k: form.get(k, "") for k in ("day", "version", "kind")})
    if form.get("then") == "next":
        found = _next(console, user, review.QueueFilter(chosen.day, chosen.version, chosen.kind, "unreviewed"))
        if found:
            return RedirectResponse(f"/review/{found}?" + urlencode(chosen.query()), 303)
        flash(request, "Nothing left to review with these filters.")
    return RedirectResponse("/queue?" + urlencode(chosen.query()), 303)


@page()
async def release(request: Request, user: User) -> Response:
    await checked_form(request)
    console = console_of(request)
    transaction = request.path_params["transaction_id"]
    with console.state.transaction() as db:
        if console.state.holder(db, transaction, time.time()) == user.name:
            console.state.release(db, transaction)
    return RedirectResponse("/queue", 303)


# --------------------------------------------------------------------------------------------
# Reconciliation, model, monitoring
# --------------------------------------------------------------------------------------------


@page()
async def reconciliation_page(request: Request, user: User) -> Response:
    console = console_of(request)
    result = review.reconcile(console.scored(days=RETENTION_DAYS), console.history())
    return render(request, "reconciliation.html", result=result, days=RETENTION_DAYS)


@page()
async def champion_page(request: Request, user: User) -> Response:
    console = console_of(request)
    problem, card, images = None, None, {}
    try:
        card = read_card(console.config.model_card_path())
    except ModelCardError as error:
        problem = str(error)
    if card is not None and card.evaluation:
        try:
            images = {name: plots.data_uri(png) for name, png in plots.evaluation_pngs(card.evaluation).items()}
        except (TypeError, KeyError, ValueError) as error:
            problem = f"the champion's evaluation report cannot be drawn: {error}"
    served = console.client.model()
    return render(request, "champion.html", card=card, images=images, problem=problem, served=served,
                  model_name=MODEL_NAME, card_path=str(console.config.model_card_path()))


@page()
async def monitoring_page(request: Request, user: User) -> Response:
    console = console_of(request)
    decisions = monitoring.read_decisions(console.config.monitoring_reports())
    scored = console.scored()
    rates = monitoring.rates_over_time(scored, console.history())
    chart = plots.data_uri(plots.rates_png(rates))
    recent = scored.sort_values("logged_at", ascending=False).head(RECENT_TRANSACTIONS)
    latest = _reasons_for(console, recent)
    return render(request, "monitoring.html", decisions=decisions, chart=chart, rates=rates.tail(48),
                  recent=recent.to_dict("records"), reasons=latest, queue_days=console.config.queue.days)


@page()
async def monitoring_report(request: Request, user: User) -> Response:
    console = console_of(request)
    path = monitoring.report_path(console.config.monitoring_reports(), request.path_params["run"])
    if path is None:
        raise HTTPException(404, "no such monitoring report")
    return HTMLResponse(path.read_text(errors="replace"), headers={"content-security-policy": REPORT_CSP})


# --------------------------------------------------------------------------------------------
# Account, users, audit log
# --------------------------------------------------------------------------------------------


@page()
async def account_page(request: Request, user: User) -> Response:
    return render(request, "account.html")


@page()
async def change_password(request: Request, user: User) -> Response:
    form = await checked_form(request)
    console = console_of(request)
    new = str(form.get("new_password", ""))
    if new != str(form.get("confirm_password", "")):
        return render(request, "account.html", status=422, error="the two new passwords differ")
    try:
        console.accounts.change_password(user.name, user.name, new, current=str(form.get("current_password", "")))
    except ValueError as error:
        return render(request, "account.html", status=422, error=str(error))
    console.first_admin = ensure_first_admin(console.config, console.state)
    flash(request, "Password changed.")
    return RedirectResponse("/queue", 303)


@page("admin")
async def users_page(request: Request, user: User) -> Response:
    return render(request, "users.html", users=console_of(request).accounts.all_users())


@page("admin")
async def users_change(request: Request, user: User) -> Response:
    form = await checked_form(request)
    accounts = console_of(request).accounts
    action = form.get("action")
    name = str(form.get("name", "")).strip()
    try:
        if action == "add":
            accounts.add_user(user.name, name, str(form.get("role", "analyst")), str(form.get("password", "")))
            message = f"{name} added; they choose their own password at first sign-in."
        elif action == "role":
            accounts.set_role(user.name, name, str(form.get("role", "")))
            message = f"{name} is now {form.get('role')}."
        elif action in ("disable", "enable"):
            accounts.set_disabled(user.name, name, action == "disable")
            message = f"{name} {action}d."
        elif action == "reset":
            accounts.change_password(user.name, name, str(form.get("password", "")))
            message = f"{name}'s password reset; they choose a new one at next sign-in."
        else:
            raise ValueError("unknown action")
    except ValueError as error:
        return render(request, "users.html", status=422, error=str(error), users=accounts.all_users())
    flash(request, message)
    return RedirectResponse("/users", 303)


@page("admin")
async def audit_page(request: Request, user: User) -> Response:
    console = console_of(request)
    actor = request.query_params.get("actor", "")[:64] or None
    action = request.query_params.get("action", "")[:32] or None
    return render(request, "audit.html", rows=console.state.audit_log(500, actor, action), actor=actor or "",
                  action=action or "")


# --------------------------------------------------------------------------------------------
# Errors and the app
# --------------------------------------------------------------------------------------------


async def http_error(request: Request, error: HTTPException) -> Response:
    if "session" not in request.scope:  # refused before the session middleware ran
        return Response(str(error.detail), status_code=error.status_code, media_type="text/plain")
    request.state.user = signed_in(request)
    message = "no such page" if error.status_code == 404 and error.detail == "Not Found" else error.detail
    return render(request, "error.html", status=error.status_code, message=message, status_code=error.status_code,
                  headers=getattr(error, "headers", None))


async def server_error(request: Request, error: Exception) -> Response:
    log.exception("console error on %s %s", request.method, request.url.path)
    return HTMLResponse("<h1>Something went wrong</h1><p>The console logged the error.</p>", status_code=500)


def routes() -> list:
    return [
        Route("/", home),
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/score", score_page, methods=["GET"]),
        Route("/score", score, methods=["POST"]),
        Route("/queue", queue_page, methods=["GET"]),
        Route("/queue/next", queue_next, methods=["POST"]),
        Route("/review/{transaction_id}", review_page, methods=["GET"]),
        Route("/review/{transaction_id}", decide, methods=["POST"]),
        Route("/review/{transaction_id}/release", release, methods=["POST"]),
        Route("/reconciliation", reconciliation_page),
        Route("/champion", champion_page),
        Route("/monitoring", monitoring_page),
        Route("/monitoring/report/{run}", monitoring_report),
        Route("/account", account_page, methods=["GET"]),
        Route("/account", change_password, methods=["POST"]),
        Route("/users", users_page, methods=["GET"]),
        Route("/users", users_change, methods=["POST"]),
        Route("/audit", audit_page),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]


def create_app(config: ConsoleConfig | None = None) -> Starlette:
    """The console as an ASGI app (see the module doc); ``config`` defaults to ``configs/console.yaml``."""
    config = config or load_console_config()
    console = Console(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        console.close()

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(Guard),
            Middleware(SessionMiddleware, secret_key=console.secret, session_cookie=SESSION_COOKIE,
                       max_age=int(config.session_hours * 3600), same_site="lax", https_only=config.secure_cookies),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.console = console
    if console.first_admin is not None:
        log.warning("first sign-in: user 'admin', password in %s (change it at first sign-in)", console.first_admin)
    return app

