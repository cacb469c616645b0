"""Batches out of the outbox: sealed, anchored by Merkle root on the chain, sent to road-health.

Each step is idempotent so a crash anywhere repeats it harmlessly: a sealed batch keeps its
messages and root; the anchors contract refuses a second anchor of one root, and the gateway
looks the first one up; road-health ingests idempotently by (device, seq).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import orjson

from chain.auth import mint_token
from chain.errors import ChainError
from chain.suites import SuiteKey
from iot_gateway.errors import ForwardError
from iot_gateway.metrics import Metrics
from iot_gateway.outbox import Batch, Outbox, OutboxError
from services.common.ledger import LedgerPort, call

log = logging.getLogger(__name__)

INGEST_PATH = "/v1/ingest"
ROADHEALTH_AUDIENCE = "roadhealth"
ANCHOR_LABEL = "iot-gateway"  # as docs/roadhealth-ingest.md suggests
# Answers worth retrying (docs/roadhealth-ingest.md section 5); any other 4xx refuses the batch
RETRY_CODES = frozenset(
    {
        "unauthorized",
        "forbidden",
        "anchor_not_committed",
        "batch_in_progress",
        "chain_unavailable",
        "upstream_unavailable",
    }
)
TOKEN_TTL_S = 300
JSON = "application/json"


@dataclass(frozen=True)
class ForwardSettings:
    roadhealth_url: str  # e.g. http://127.0.0.1:8000/roadhealth
    operator_org: str
    operator_key: SuiteKey
    # The anchoring window: a batch is sealed (one anchor transaction) when it holds batch_max
    # messages or its oldest is batch_wait_s old, so the chain grows with records, not messages
    batch_max: int = 1000
    batch_wait_s: float = 1.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    http_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {self.batch_max}")
        if not self.batch_wait_s >= 0:
            raise ValueError(f"batch_wait_s must be 0 or more seconds, got {self.batch_wait_s}")

    idle_wait_s: float = 0.05  # pause of an idle loop before it asks the outbox again


class Forwarder:
    """Seals, anchors and forwards this gateway instance's batches, in order, until stopped."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        ledger: LedgerPort,
        settings: ForwardSettings,
        metrics: Metrics,
        http: httpx.Client | None = None,
    ) -> None:
        self.outbox = outbox
        self.ledger = ledger
        self.settings = settings
        self.metrics = metrics
        self.http = http or httpx.Client(timeout=settings.http_timeout_s)
        self._token: tuple[float, str] | None = None
        self.stop_event = threading.Event()
        # What spares the idle loops their queries (each costs far more in SQLAlchemy than
        # in the database): open batches exist only after a seal, a failed anchor or a
        # restart; anchored ones only after an anchor; a young batch is not due before
        # `_due_at` unless the intake has stored batch_max messages since the last seal.
        self._may_have_open = True
        self._anchored = 0  # batches this process anchored (a restart starts by looking)
        self._forward_checked: int | None = None  # _anchored when none was left to forward
        self._due_at: float | None = None
        self._nothing_pending = False  # the last look found no pending message
        self._stored_since_seal = 0
        self._stored_lock = threading.Lock()
        # Messages this process stored and forwarded (or saw refused) since it started: what
        # they add to and take from the outbox's unforwarded count (Gateway.backlog)
        self.stored_total = 0
        self.settled_total = 0

    def note_stored(self, count: int) -> None:
        """The intake stored `count` new messages (called after its outbox commit)."""
        with self._stored_lock:
            self._stored_since_seal += count
            self.stored_total += count

    def run(self) -> None:
        """Anchor in this thread and forward in another, so a slow road-health never delays
        anchoring; each loop backs off and retries its batch on transient failures."""
        forwarding = threading.Thread(
            target=self._loop, args=(self.step_forward,), name="gateway-forward", daemon=True
        )
        forwarding.start()
        self._loop(self.step_anchor)
        forwarding.join(timeout=10)

    def _loop(self, step: Callable[[], bool]) -> None:
        delay = self.settings.backoff_initial_s
        while not self.stop_event.is_set():
            try:
                worked = step()
                delay = self.settings.backoff_initial_s
            except (ForwardError, OutboxError) as exc:
                self.metrics.inc("forward_errors_total")
                log.warning("%s paused %.1fs: %s", step.__name__, delay, exc)
                self.stop_event.wait(delay)
                delay = min(delay * 2, self.settings.backoff_max_s)
                continue
            if not worked:
                self.stop_event.wait(min(self.settings.idle_wait_s, self.settings.batch_wait_s))

    def step(self) -> bool:
        """One anchoring step and one forwarding step (tests drive the pipeline with this)."""
        anchored = self.step_anchor()
        return self.step_forward() or anchored

    def step_anchor(self) -> bool:
        """Anchor the oldest sealed batch, or seal a new one when due; False if idle."""
        batch = None
        if self._may_have_open:
            batch = self.outbox.next_open_batch("open", with_messages=False)
            self._may_have_open = batch is not None
        # One sealed just now cannot be anchored yet (an open batch left by a killed run or a
        # failed attempt is found above first): its root is not looked up before the anchor
        sealed_now = batch is None
        batch = batch or self._seal_if_due()
        if batch is None:
            return False
        self._may_have_open = True  # until a pass finds none: this one, or one left earlier
        tx = self.anchor(batch, look_first=not sealed_now)
        self.outbox.mark_anchored(batch.id, tx)
        self._anchored += 1
        self.metrics.inc("batches_anchored_total")
        self.metrics.inc("messages_anchored_total", batch.count)
        return True

    def step_forward(self) -> bool:
        """Forward the oldest anchored batch to road-health; False if there is none."""
        anchored = self._anchored  # read before the query: an anchor after it is seen next pass
        if self._forward_checked == anchored:
            return False
        batch = self.outbox.next_open_batch("anchored")
        if batch is None:
            self._forward_checked = anchored
            return False
        try:
            self.forward(batch)
        except ForwardError as exc:
            if exc.retry:
                raise
            log.error("road-health refused batch %s for good: %s", batch.id, exc)
            reason = str(exc)
            self._settle(batch, lambda: self.outbox.mark_refused(batch.id, reason))
            self.metrics.inc("batches_refused_total")
            return True
        self._settle(batch, lambda: self.outbox.mark_forwarded(batch.id))
        self.metrics.inc("batches_forwarded_total")
        self.metrics.inc("messages_forwarded_total", batch.count)
        self.metrics.observe("forward_latency_seconds", time.time() - batch.first_stored_at)
        return True

    def _settle(self, batch: Batch, mark: Callable[[], None]) -> None:
        """Mark a batch settled in the outbox, counting it in `settled_total` (only this thread
        writes it) before the commit: a backlog recount between the two then counts the batch
        twice, erring on the side of pausing, and never subtracts it twice (review R1)."""
        self.settled_total += batch.count
        try:
            mark()
        except BaseException:
            self.settled_total -= batch.count
            raise

    def _seal_if_due(self) -> Batch | None:
        now = time.time()
        with self._stored_lock:
            stored = self._stored_since_seal
        if self._nothing_pending and stored == 0:
            return None  # nothing was pending and the intake stored nothing since
        if self._due_at is not None and now < self._due_at and stored < self.settings.batch_max:
            return None  # the oldest pending message is young and the intake stored too few
        oldest = self.outbox.oldest_pending_at()
        self._nothing_pending = oldest is None
        if oldest is None:
            self._due_at = None
            return None
        young = now - oldest < self.settings.batch_wait_s
        if young and not self.outbox.pending_at_least(self.settings.batch_max):
            self._due_at = oldest + self.settings.batch_wait_s
            return None
        self._due_at = None
        with self._stored_lock:
            self._stored_since_seal = 0  # what stays pending is found by the next look
        return self.outbox.seal_batch(max_count=self.settings.batch_max)

    def anchor(self, batch: Batch, *, look_first: bool = True) -> str:
        """The hash of the transaction anchoring the batch's root, anchoring it if needed.
        Without `look_first` the root is submitted at once (a state read with its proof less a
        batch); a root anchored before is refused as already_anchored and looked up then."""
        key = f"root:{self.settings.operator_org}:{batch.root}"
        try:
            existing = self.ledger.read("anchors", key) if look_first else None
            if isinstance(existing, str):
                return existing
            receipt = call(
                self.ledger,
                self.settings.operator_key,
                "anchors",
                "anchor",
                {
                    "root": batch.root,
                    "count": batch.count,
                    "label": ANCHOR_LABEL,
                    "metadata": {"source": "iot_gateway", "gateway": self.outbox.owner},
                },
            )
            if receipt.get("status") == "ok":
                return str(receipt["tx"])
            if receipt.get("code") == "already_anchored":
                existing = self.ledger.read("anchors", key)
                if isinstance(existing, str):
                    return existing
            raise ForwardError(f"anchoring failed: {receipt.get('error')}", retry=True)
        except ChainError as exc:
            raise ForwardError(f"chain unavailable for anchoring: {exc}", retry=True) from exc
        except httpx.HTTPError as exc:
            raise ForwardError(f"chain unreachable: {exc}", retry=True) from exc

    def forward(self, batch: Batch) -> None:
        """POST the batch to road-health; 5xx, 401 and transport errors are worth a retry."""
        url = self.settings.roadhealth_url.rstrip("/") + INGEST_PATH
        started = time.perf_counter()
        headers = {"authorization": f"Bearer {self._bearer()}", "content-type": JSON}
        try:
            response = self.http.post(url, content=ingest_body(batch), headers=headers)
        except httpx.HTTPError as exc:
            raise ForwardError(f"road-health unreachable at {url}: {exc}", retry=True) from exc
        self.metrics.observe("forward_request_seconds", time.perf_counter() - started)
        if response.status_code < 300:
            self._count_results(response)
            return
        code = _error_code(response)
        if response.status_code == 401:
            self._token = None
        retry = (
            response.status_code >= 500
            or response.status_code in (401, 403, 408, 429)
            or code in RETRY_CODES
        )
        raise ForwardError(
            f"road-health answered {response.status_code} {code}: {response.text[:500]}",
            retry=retry,
        )

    def _count_results(self, response: httpx.Response) -> None:
        """Count what road-health did with each message (disagreements reported, not retried):
        tallied first, so the metrics' lock is taken once per status, not once per message."""
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return
        results = answer.get("results") if isinstance(answer, dict) else None
        tally = Counter(
            (str(result.get("status")), str(result.get("code")))
            for result in (results if isinstance(results, list) else ())
            if isinstance(result, dict)
        )
        for (status, code), n in tally.items():
            if status == "rejected":
                self.metrics.inc("forward_rejected_total", n, reason=str(code))
            elif status in ("stored", "duplicate"):
                self.metrics.inc(f"forward_{status}_total", n)

    def _bearer(self) -> str:
        now = time.time()
        if self._token is None or now > self._token[0] - 60:
            token = mint_token(
                self.settings.operator_key,
                org=self.settings.operator_org,
                audience=ROADHEALTH_AUDIENCE,
                ttl_s=TOKEN_TTL_S,
            )
            self._token = (now + TOKEN_TTL_S, token)
        return self._token[1]


def ingest_body(batch: Batch) -> bytes:
    """The ingest request (docs/roadhealth-ingest.md section 4), with each payload spliced in
    as the canonical JSON the outbox holds: parsing and re-encoding them would cost more than
    everything else the gateway does to a message."""
    if batch.anchor_tx is None:
        raise ForwardError(f"batch {batch.id} is not anchored", retry=False)
    head = json.dumps(
        {"root": batch.root, "anchor_tx": batch.anchor_tx, "count": batch.count},
        separators=(",", ":"),
    )
    items = ",".join(
        f'{{"topic":{orjson.dumps(m.topic).decode()},"payload":{m.payload_json},'
        f'"leaf_index":{int(m.leaf_index)},"hash":"{m.hash}"}}'
        for m in batch.messages
    )
    return f'{{"batch":{head},"messages":[{items}]}}'.encode()


def _error_code(response: httpx.Response) -> str:
    """The `error.code` of a services.common error body, or "" if there is none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""
