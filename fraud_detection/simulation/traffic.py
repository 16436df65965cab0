"""Traffic and labels: send generator transactions to the live service, and their labels to the store.

:func:`simulate` draws one day of ``rows`` transactions of a scenario (``synthetic.daily_batches``),
sends them in time order to ``POST {url}/predict`` (one per request) or ``POST {url}/predict_batch``
(``batch_size`` per request), at an optional ``rate`` of requests per second, and for every request
the service acknowledges writes the rows' true labels to the label store, with the moment each
label becomes known: the generator's delay (``synthetic.label_arrival_seconds``: legitimate
payments mature after two days, chargebacks arrive after about four) times
``LabelDelay.scale``, counted from the acknowledgement -- as chargebacks reach a card issuer.
``scale`` 1 keeps real delays; ``1 / 1440`` turns a day into a minute; ``0`` makes every label known
at once; ``LabelDelay.fixed_seconds`` gives every label the same delay.

Labels are recorded by ``transaction_id`` with source ``simulator`` and the ``model_version`` the
service answered with. Every drawn transaction gets an id of its own, ``sim-<run>-<row>`` (``<run>``
fresh for each call, so runs never share ids). With ``send_transaction_ids`` each transaction object
of the request carries it as ``"transaction_id"``, as a card issuer's payments would. The label goes
under the id the service answers with for that row (``transaction_id`` of a ``/predict`` answer or
of each of ``predictions``), else the id sent, else -- a service that neither takes nor returns
transaction ids -- the id the prediction log knows the row by, ``<request id>:<item>``
(:func:`fraud_detection.serving.transaction_id.derived_id`). Each request carries a client-side
``X-Request-ID``; the service's own request id (``request_id`` in the body, or the ``X-Request-ID``
response header) wins when it differs.

``labels_out``: instead of the label store, write the labels as a chargeback file
(:func:`fraud_detection.serving.label_import.write_label_file`: ``transaction_id,Class,label_time``)
for ``python run.py --labels`` to import -- the path a card issuer's own file takes. A file holds
what is known when it is written, so it needs labels known on acknowledgement (``LabelDelay``
``scale`` 0 or ``fixed_seconds`` 0).

Failed requests (HTTP errors, transport errors) are counted by kind and get no label.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np
import orjson
from pydantic import ConfigDict, Field

from fraud_detection.config import Section
from fraud_detection.data.schema import LABEL, TIME, TRANSACTION_FIELDS
from fraud_detection.serving.append_log import LogSettings
from fraud_detection.serving.label_import import write_label_file
from fraud_detection.serving.label_store import SOURCE_SIMULATOR, LabelStore
from fraud_detection.serving.transaction_id import TRANSACTION_ID, derived_id
from fraud_detection.simulation import synthetic

__all__ = [
    "API_KEY_HEADER",
    "REQUEST_ID_HEADER",
    "LabelDelay",
    "Progress",
    "SimulationResult",
    "draw_transactions",
    "print_progress",
    "simulate",
]

REQUEST_ID_HEADER = "X-Request-ID"
SERVICE_REQUEST_ID_HEADER = "X-Service-Request-ID"
API_KEY_HEADER = "X-API-Key"
_MAX_ERROR_SAMPLES = 5


class LabelDelay(Section):
    """When a label becomes known after its transaction is acknowledged, in wall-clock seconds.

    ``scale`` multiplies the generator's delays (1 = days, as at a card issuer); ``fixed_seconds``
    replaces them with one delay for every label.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    scale: float = Field(1.0, ge=0)
    fixed_seconds: float | None = Field(None, ge=0)

    def seconds(self, generator_delays: np.ndarray) -> np.ndarray:
        delays = np.asarray(generator_delays, dtype=float)
        if self.fixed_seconds is not None:
            return np.full(delays.shape, float(self.fixed_seconds))
        return delays * float(self.scale)


@dataclass(frozen=True)
class Progress:
    requests_done: int
    requests_total: int
    rows_done: int
    failed_requests: int
    elapsed_seconds: float


@dataclass
class SimulationResult:
    url: str
    scenario: str
    rows: int
    frauds: int
    requests: int = 0
    ok_requests: int = 0
    failed_requests: int = 0
    scored_rows: int = 0
    failed_rows: int = 0
    labels_written: int = 0
    id_mismatches: int = 0  # the service answered with another request id (labels follow it)
    labels_file: str | None = None  # labels_out: the chargeback file written
    errors: dict[str, int] = field(default_factory=dict)  # kind ("HTTP 503", "ConnectError") -> count
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.scored_rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        errors = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.errors.items())) or "none"
        where = f" to {self.labels_file}" if self.labels_file else ""
        return (
            f"{self.scenario}: {self.scored_rows:,} of {self.rows:,} rows scored in {self.requests:,} requests "
            f"({self.seconds:.1f} s, {self.rows_per_second:,.0f} rows/s); {self.labels_written:,} labels "
            f"written{where} ({self.frauds:,} frauds drawn); failed requests: {self.failed_requests:,} ({errors})"
        )


def print_progress(progress: Progress) -> None:
    """A progress line on stderr (the default for the command line)."""
    print(
        f"  {progress.requests_done:,}/{progress.requests_total:,} requests, {progress.rows_done:,} rows, "
        f"{progress.failed_requests:,} failed, {progress.elapsed_seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )


def draw_transactions(
    scenario: str, rows: int, seed: int = 0, strength: float | None = None, day: int = 0
) -> synthetic.DailyBatch:
    """One day (``day``) of ``rows`` transactions of a scenario, with when each label is known."""
    if scenario not in synthetic.SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(synthetic.SCENARIOS)}")
    return next(iter(synthetic.daily_batches(1, rows_per_day=rows, seed=seed, scenario=scenario,
                                             strength=strength, first_day=day)))


def _check_arguments(url: str, rows: int, rate: float | None, batch_size: int | None, concurrency: int) -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    if not isinstance(rows, int) or rows < 2:
        raise ValueError(f"rows must be an integer >= 2, got {rows!r}")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")


def simulate(
    url: str,
    scenario: str = "none",
    rows: int = 1000,
    rate: float | None = None,
    seed: int = 0,
    label_delay: LabelDelay | None = None,
    api_key: str | None = None,
    batch_size: int | None = None,
    label_store: LabelStore | str | None = None,
    *,
    strength: float | None = None,
    day: int = 0,
    concurrency: int = 1,
    timeout: float = 10.0,
    progress: Callable[[Progress], None] | None = None,
    progress_every_seconds: float = 2.0,
    label_settings: LogSettings | None = None,
    send_transaction_ids: bool = False,
    labels_out: str | os.PathLike | None = None,
) -> SimulationResult:
    """Send ``rows`` transactions of ``scenario`` to the service at ``url``; record their labels.

    ``rate``: requests per second (None = as fast as the service answers). ``batch_size``: rows per
    ``/predict_batch`` request (None = one row per ``/predict`` request). ``label_store``: a
    :class:`LabelStore`, a directory, or None for the default store. ``concurrency``: requests in
    flight at once. ``progress`` is called about every ``progress_every_seconds`` and at the end.
    ``send_transaction_ids``: each transaction carries its ``transaction_id``. ``labels_out``: write a
    chargeback file there instead of recording in the label store (see the module doc).
    """
    _check_arguments(url, rows, rate, batch_size, concurrency)
    label_delay = label_delay or LabelDelay()
    batch = draw_transactions(scenario, rows, seed, strength, day)
    frame = batch.frame
    values = frame[list(TRANSACTION_FIELDS)].to_numpy(dtype=float).tolist()
    classes = frame[LABEL].to_numpy()
    delays = label_delay.seconds(batch.label_available_at - frame[TIME].to_numpy(dtype=float))
    if labels_out is not None and np.any(delays > 0):
        raise ValueError(
            "labels_out writes a chargeback file of labels known when it is written: use a label delay of 0 "
            "(label_delay scale 0), or the label store for labels that arrive later"
        )
    run = uuid.uuid4().hex[:10]
    ids = [f"sim-{run}-{row}" for row in range(rows)]
    size = batch_size or 1
    chunks = [(start, min(start + size, rows)) for start in range(0, rows, size)]
    endpoint = url.rstrip("/") + ("/predict_batch" if batch_size else "/predict")

    def body(start: int, stop: int) -> bytes:
        records = [dict(zip(TRANSACTION_FIELDS, row, strict=False)) for row in values[start:stop]]
        if send_transaction_ids:
            for record, transaction in zip(records, ids[start:stop], strict=True):
                record[TRANSACTION_ID] = transaction
        # Traffic wants scores, not explanations: a batch asks for no reasons (a TreeSHAP pass per row).
        return orjson.dumps({"transactions": records, "reasons": False} if batch_size else {"transaction": records[0]})

    owns_store = labels_out is None and not isinstance(label_store, LabelStore)
    store = None
    if labels_out is None:
        store = label_store if isinstance(label_store, LabelStore) else LabelStore(label_store, label_settings)
    collected: list[tuple[list[str], np.ndarray, np.ndarray]] = []  # labels_out: (ids, classes, times) per request
    result = SimulationResult(url=url, scenario=scenario, rows=rows, frauds=int(classes.sum()))
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    next_index = [0]
    crashed: list[BaseException] = []
    started, last_report = 0.0, [0.0]
    headers = {"content-type": "application/json"}
    if api_key:
        headers[API_KEY_HEADER] = api_key

    def report(force: bool = False) -> None:
        now = time.monotonic()
        if progress is None or (not force and now - last_report[0] < progress_every_seconds):
            return
        last_report[0] = now
        done = Progress(result.requests, len(chunks), result.scored_rows, result.failed_requests, now - started)
        progress(done)

    def record_failure(kind: str, detail: str, rows_in_request: int) -> None:
        with lock:
            result.failed_requests += 1
            result.failed_rows += rows_in_request
            errors[kind] += 1
            if len(result.error_samples) < _MAX_ERROR_SAMPLES:
                result.error_samples.append(f"{kind}: {detail[:300]}")

    def send(client: httpx.Client, index: int) -> None:
        start, stop = chunks[index]
        if rate is not None:  # request k leaves at started + k / rate
            wait = started + index / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        request_id = uuid.uuid4().hex
        try:
            response = client.post(
                endpoint, content=body(start, stop), headers={**headers, REQUEST_ID_HEADER: request_id}
            )
        except httpx.HTTPError as error:
            record_failure(type(error).__name__, str(error), stop - start)
            return
        if not response.is_success:
            record_failure(f"HTTP {response.status_code}", response.text, stop - start)
            return
        acknowledged = time.time()
        payload = _json_object(response)
        service_id = _service_request_id(payload, response) or request_id
        label_ids = _returned_transaction_ids(payload, stop - start)
        if label_ids is None:
            label_ids = ids[start:stop] if send_transaction_ids else [
                derived_id(service_id, item) for item in range(stop - start)]
        version = payload.get("model_version") if isinstance(payload.get("model_version"), str) else None
        times = acknowledged + delays[start:stop]
        if store is None:
            with lock:
                collected.append((label_ids, classes[start:stop], times))
        else:
            store.append(label_ids, classes[start:stop], times, source=SOURCE_SIMULATOR, model_version=version)
        with lock:
            result.ok_requests += 1
            result.scored_rows += stop - start
            result.labels_written += stop - start
            result.id_mismatches += service_id != request_id

    def worker(client: httpx.Client) -> None:
        while True:
            with lock:
                index = next_index[0]
                if index >= len(chunks) or crashed:
                    return
                next_index[0] += 1
            try:
                send(client, index)
            except BaseException as error:  # e.g. the label store cannot write: stop everyone
                with lock:
                    crashed.append(error)
                return
            with lock:
                result.requests += 1
                report()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    try:
        with httpx.Client(timeout=timeout, limits=limits) as client:
            # The clock (and the pace) starts once the client is ready, not while it is built.
            started = last_report[0] = time.monotonic()
            threads = [
                threading.Thread(target=worker, args=(client,), daemon=True) for _ in range(concurrency - 1)
            ]
            for thread in threads:
                thread.start()
            worker(client)
            for thread in threads:
                thread.join()
    finally:
        if owns_store:
            store.close()
        result.seconds = time.monotonic() - started if started else 0.0
        result.errors = dict(errors)
    if crashed:
        raise crashed[0]
    if labels_out is not None:
        result.labels_file = str(write_label_file(
            [t for chunk in collected for t in chunk[0]],
            np.concatenate([chunk[1] for chunk in collected]) if collected else [],
            np.concatenate([chunk[2] for chunk in collected]) if collected else [],
            labels_out,
        ))
    report(force=True)
    return result


def _json_object(response: httpx.Response) -> dict:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _service_request_id(payload: dict, response: httpx.Response) -> str | None:
    """The id the service logged the request under: ``request_id`` in the body, else the header."""
    value = payload.get("request_id")
    if isinstance(value, str) and value:
        return value
    return response.headers.get(REQUEST_ID_HEADER) or None


def _returned_transaction_ids(payload: dict, rows: int) -> list[str] | None:
    """The transaction id the service answered with for each row, or None if it names none."""
    if TRANSACTION_ID in payload:
        found = [payload[TRANSACTION_ID]]
    elif isinstance(payload.get("predictions"), list):
        found = [p.get(TRANSACTION_ID) if isinstance(p, dict) else None for p in payload["predictions"]]
    else:
        return None
    if len(found) != rows or not all(isinstance(t, str) and t for t in found):
        return None
    return found
