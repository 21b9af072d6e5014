"""REST pull sources (`kind: rest`): pages of JSON records from an HTTP API into Bronze, exactly once.

Each resource (an endpoint) is read page by page (`cursor`, `page_number`, `offset`,
`header_link`, `json_link` or `single_page` pagination, as dlt's rest_api names them). The records
at `data_selector` are validated against the source's contract like stream records: valid ones
land in `bronze.<source>` with the exact bytes the API sent in `_raw`, the others in
`quarantine.<source>` with the page URL and index as their position.

The resource's cursor state is a `Cursors` checkpoint (`rest:<resource>`) in the same Bronze
commit as the rows it produced: the request to send next (`next`, None when the pull finished),
the incremental start the pull was sent with (`start`), the newest incremental value seen
(`high`: the next pull's start once this one finishes) and a page sequence number (`seq`). A run
resumes at `next`; a crash between fetching and committing fetches those pages again, and their
rows land once. Quarantine is committed first with its own `seq`, so a re-fetched page is not
quarantined twice. A spent request budget commits what was read and stops; the next run resumes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakestack.errors import RunError
from lakestack.failpoints import failpoint
from lakestack.ingest.base import FileOutcome, IngestObserver, Source, SourceReport
from lakestack.ingest.ratelimit import Budget
from lakestack.ingest.restclient import Answer, RestClient, RestError, Settings
from lakestack.ingest.rows import stamp
from lakestack.ingest.stream import RowBuilder, StreamRecord
from lakestack.storage.checkpoints import Cursors, read_checkpoint
from lakestack.storage.warehouse import append

if TYPE_CHECKING:
    from lakestack.config import RestConfig, RestPaginatorConfig, RestResourceConfig, SourceConfig
    from lakestack.contracts.model import Contract

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RestRecord(StreamRecord):
    """A record of a page: its resource, page sequence number and URL, and its index in the page."""

    where: str = ""

    @property
    def label(self) -> str:
        return self.where


@dataclass(slots=True)
class _Pull:
    """One resource's progress in this run."""

    resource: str
    state: dict[str, Any]  # as committed (or as this run will commit it)
    committed: dict[str, Any] | None  # the checkpoint value the table held when last read
    quarantined_seq: int = -1
    pages: int = 0
    rows_in: int = 0
    landed: int = 0
    quarantined: int = 0
    good: list[pa.Table] = field(default_factory=list)
    bad: list[pa.Table] = field(default_factory=list)
    buffered_pages: int = 0
    first_seq: int | None = None
    note: str | None = None
    pages_seq: int = -1  # the page table holds every page up to here
    raw_pages: list[dict[str, Any]] = field(default_factory=list)


class RestSource(Source):
    """The resources of one REST API, into one Bronze table."""

    kind = "rest"

    def __init__(self, name: str, contract: Contract, config: SourceConfig, project: str = "lakestack") -> None:
        assert config.rest is not None
        self.name = name
        self.contract = contract
        self.config = config
        self.rest: RestConfig = config.rest
        self.project = project
        self.rows = RowBuilder(name, contract, config.stream.max_record_bytes)

    def client(self, budget: Budget) -> RestClient:
        r = self.rest
        settings = Settings(
            r.rate_limit,
            r.burst,
            r.retries,
            r.timeout,
            r.backoff_seconds,
            r.max_backoff_seconds,
            r.max_retry_after_seconds,
            int(r.max_response_mb * 2**20),
        )
        return RestClient(self.name, r.base_url, settings, r.auth, dict(r.headers), budget)

    def pending(self, warehouse: Any) -> tuple[list[Any], int]:
        """For `lakestack status`: nothing is known to wait (the API is not asked), and the pages
        Bronze's commits hold (the resources' page sequence numbers)."""
        identifier = f"bronze.{self.name}"
        if not warehouse.exists(identifier):
            return [], 0
        cursors = read_checkpoint(warehouse.load(identifier), Cursors).values
        return [], sum(int(cursors.get(cursor_name(r), {}).get("seq", 0)) for r in self.rest.resources)

    def ingest(
        self, warehouse: Any, run_id: str, observer: IngestObserver, only: list[str] | None = None
    ) -> SourceReport:
        if only:
            raise RunError(f"source '{self.name}' pulls from a REST API: --file does not apply")
        started = time.perf_counter()
        observer.source_started(self.name, len(self.rest.resources), 0)
        bronze = warehouse.bronze_table(self.contract)
        quarantine = warehouse.quarantine_table(self.name)
        pages = warehouse.system_table(pages_table_name(self.name), PAGES_SCHEMA) if self.rest.keep_pages else None
        budget = Budget(self.rest.max_requests)
        outcomes: list[FileOutcome] = []
        snapshots: dict[str, int] = {}
        with self.client(budget) as client:
            for resource, spec in self.rest.resources.items():
                pull = self._start(resource, bronze, quarantine, pages)
                writer = _Writer(self, run_id, bronze, quarantine, snapshots, pages)
                try:
                    self._pull(client, spec, pull, writer)
                finally:
                    writer.flush(pull)  # what was read before a failure stays committed
                    bronze, quarantine, pages = writer.bronze, writer.quarantine, writer.pages
                outcome = FileOutcome(
                    resource,
                    "landed",
                    rows_in=pull.rows_in,
                    landed=pull.landed,
                    quarantined=pull.quarantined,
                    reason=pull.note,
                )
                outcomes.append(outcome)
                observer.file_finished(self.name, outcome)
                if budget.spent:
                    break
        return SourceReport(self.name, tuple(outcomes), time.perf_counter() - started, snapshots)

    # -- one resource --------------------------------------------------------------------------
    def _start(self, resource: str, bronze: Any, quarantine: Any, pages: Any) -> _Pull:
        key = cursor_name(resource)
        committed = read_checkpoint(bronze, Cursors).values.get(key)
        state = dict(committed) if isinstance(committed, Mapping) else {"seq": 0}
        q = read_checkpoint(quarantine, Cursors).values.get(key)
        q_seq = int(q.get("seq", -1)) if isinstance(q, Mapping) else -1
        pull = _Pull(resource, state, dict(committed) if isinstance(committed, Mapping) else None, q_seq)
        if pages is not None:
            held = read_checkpoint(pages, Cursors).values.get(key)
            pull.pages_seq = int(held.get("seq", -1)) if isinstance(held, Mapping) else -1
        return pull

    def _pull(self, client: RestClient, spec: RestResourceConfig, pull: _Pull, writer: _Writer) -> None:
        state = pull.state
        request = state.get("next")
        if request is None:  # a new pull: from the incremental cursor the last finished one reached
            start = state.get("high", state.get("start")) if state.get("finished") else state.get("start")
            if spec.incremental is not None and start is None:
                start = spec.incremental.initial_value
            state.update(start=start, high=start, finished=False)
            request = first_request(spec, start)
        seen = {_fingerprint(request)}
        while request is not None:
            if pull.pages >= self.rest.max_pages:
                raise RestError(
                    f"source '{self.name}' resource '{pull.resource}': more than max_pages "
                    f"({self.rest.max_pages}) pages in one run; stopped"
                )
            answer = client.get(request["url"], request.get("params"))
            if answer is None:
                pull.note = (
                    f"request budget ({client.budget.limit}) spent after {pull.pages} pages; "
                    f"the next run resumes at {_shown(client, request)}"
                )
                log.info("source %s resource %s: %s", self.name, pull.resource, pull.note)
                return
            body, raws = parse_page(answer, spec.data_selector, self.name, pull.resource)
            nxt = next_request(spec.paginator, request, answer, body, len(raws))
            if nxt is not None:  # checked before the page is taken: a bad next page is never committed
                self._check_next(client, pull, nxt, seen)
            self._take(pull, spec, answer, body, raws, nxt)
            failpoint("rest.after_fetch")
            writer.maybe_flush(pull)
            request = nxt
        if pull.note is None:
            pull.note = f"{pull.pages} pages, {client.requests} requests"

    def _check_next(self, client: RestClient, pull: _Pull, nxt: dict[str, Any], seen: set[str]) -> None:
        """Refuse a next page this run already asked for (endless pagination) or on another host."""
        client.url(nxt["url"])  # raises for another host
        fingerprint = _fingerprint(nxt)
        if fingerprint in seen:
            raise RestError(
                f"source '{self.name}' resource '{pull.resource}': endless pagination: the API sent a next page "
                f"this run already read ({_shown(client, nxt)}); stopped after {pull.pages} pages, the page that "
                "sent it not committed"
            )
        seen.add(fingerprint)

    def _take(
        self,
        pull: _Pull,
        spec: RestResourceConfig,
        answer: Answer,
        body: Any,
        raws: list[bytes],
        nxt: dict[str, Any] | None,
    ) -> None:
        state = pull.state
        seq = int(state.get("seq", 0)) + 1
        where = f"{pull.resource} page {seq} {answer.url}"
        records = [RestRecord(pull.resource, seq, raw, where=f"{where} #{i}") for i, raw in enumerate(raws)]
        prepared = self.rows.prepare(records, lambda r: r.position > pull.quarantined_seq)
        if prepared.good is not None:
            pull.good.append(prepared.good)
        if prepared.bad is not None:
            pull.bad.append(prepared.bad)
        pull.rows_in += len(records)
        pull.landed += prepared.good.num_rows if prepared.good is not None else 0
        pull.quarantined += len(prepared.outcome.invalid)
        if spec.incremental is not None:
            state["high"] = newest(state.get("high"), _cursor_values(body, spec, raws))
        state.update(seq=seq, next=nxt, finished=nxt is None)
        if self.rest.keep_pages and seq > pull.pages_seq:  # a page fetched again is kept once
            pull.raw_pages.append(_page_row(pull.resource, seq, answer))
        pull.pages += 1
        pull.buffered_pages += 1
        pull.first_seq = seq if pull.first_seq is None else pull.first_seq


class _Writer:
    """Commits a resource's buffered pages: quarantine (with its seq), then Bronze with the cursor."""

    def __init__(
        self, source: RestSource, run_id: str, bronze: Any, quarantine: Any, out: dict[str, int], pages: Any
    ) -> None:
        self.source = source
        self.pages = pages
        self.run_id = run_id
        self.bronze = bronze
        self.quarantine = quarantine
        self.out = out

    def maybe_flush(self, pull: _Pull) -> None:
        rows = sum(t.num_rows for t in pull.good)
        if pull.buffered_pages >= self.source.rest.commit_pages or rows >= self.source.config.stream.max_records:
            self.flush(pull)

    def flush(self, pull: _Pull) -> None:
        if not pull.buffered_pages and not (pull.state.get("finished") and pull.state != pull.committed):
            return
        name = self.source.name
        key = cursor_name(pull.resource)
        batch = f"{self.run_id}:rest:{pull.resource}:{pull.first_seq}-{pull.state.get('seq')}"
        now = datetime.now(UTC)
        if pull.raw_pages and self.pages is not None:  # first: each page once, whatever fails after
            rows = stamp(pa.Table.from_pylist(pull.raw_pages, schema=PAGES_SCHEMA), self.run_id, now)
            mark = Cursors({key: {"seq": pull.state["seq"]}})
            self.pages = append(self.pages, rows, run_id=self.run_id, batch_id=f"{batch}:p", checkpoint=mark)
            pull.pages_seq, pull.raw_pages = int(pull.state["seq"]), []
        if pull.bad:
            rows = stamp(pa.concat_tables(pull.bad), self.run_id, now)
            mark = Cursors({key: {"seq": pull.state["seq"]}})
            self.quarantine = append(self.quarantine, rows, run_id=self.run_id, batch_id=f"{batch}:q", checkpoint=mark)
            self.out[f"quarantine.{name}"] = self.quarantine.current_snapshot().snapshot_id
            pull.quarantined_seq = int(pull.state["seq"])
            failpoint("rest.after_quarantine_commit")
        data = (
            stamp(pa.concat_tables(pull.good), self.run_id, now)
            if pull.good
            else self.bronze.schema().as_arrow().empty_table()
        )
        state = dict(pull.state)
        expected = pull.committed

        def attempt(table: Any) -> tuple[pa.Table, Cursors]:
            held = read_checkpoint(table, Cursors).values.get(key)
            if (dict(held) if isinstance(held, Mapping) else None) != expected:
                raise RunError(
                    f"source '{name}' resource '{pull.resource}': another run committed to bronze.{name} while "
                    "this one pulled; its pages were not committed (run ingest again: it resumes after the other)"
                )
            return data, Cursors({key: state})

        self.bronze = append(self.bronze, None, run_id=self.run_id, batch_id=f"{batch}:b", attempt=attempt)
        self.out[f"bronze.{name}"] = self.bronze.current_snapshot().snapshot_id
        failpoint("rest.after_bronze_commit")
        pull.committed = state
        pull.good, pull.bad, pull.buffered_pages, pull.first_seq = [], [], 0, None


PAGES_SCHEMA = pa.schema(
    [
        ("resource", pa.string()),
        ("seq", pa.int64()),
        ("url", pa.string()),  # without credentials
        ("status", pa.int32()),
        ("content_type", pa.string()),
        ("body", pa.string()),
        ("_run_id", pa.string()),
        ("_ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def pages_table_name(source: str) -> str:
    return f"_lakestack.pages_{source}"


def _page_row(resource: str, seq: int, answer: Answer) -> dict[str, Any]:
    return {
        "resource": resource,
        "seq": seq,
        "url": answer.url,
        "status": answer.status,
        "content_type": answer.headers.get("content-type") or answer.headers.get("Content-Type"),
        "body": answer.content.decode("utf-8", "replace"),
        "_run_id": None,
        "_ingested_at": None,
    }


def _fingerprint(request: dict[str, Any]) -> str:
    return json.dumps(request, sort_keys=True, default=str)


def cursor_name(resource: str) -> str:
    return f"rest:{resource}"


# -- pages ---------------------------------------------------------------------------------------
def first_request(spec: RestResourceConfig, start: Any) -> dict[str, Any]:
    params: dict[str, Any] = dict(spec.params)
    p = spec.paginator
    if p.type == "page_number":
        params[p.page_param] = p.base_page
    elif p.type == "offset":
        params.update({p.offset_param: 0, p.limit_param: p.limit})
    if spec.incremental is not None and start is not None:
        params[spec.incremental.start_param] = start
    return {"url": spec.path, "params": params}


def next_request(
    p: RestPaginatorConfig, request: dict[str, Any], answer: Answer, body: Any, count: int
) -> dict[str, Any] | None:
    """The request for the page after this one, or None when this was the last."""
    params = dict(request.get("params") or {})
    if p.type == "single_page":
        return None
    if p.type == "cursor":
        cursor = get_path(body, p.cursor_path)
        if cursor in (None, ""):
            return None
        return {"url": request["url"], "params": {**params, p.cursor_param: cursor}}
    if p.type in ("page_number", "offset"):
        if count == 0:
            return None
        if p.type == "page_number":
            page = int(params.get(p.page_param, p.base_page)) + 1
            pages = _total(body, p.total_path) if p.total_path is not None else None  # total: the number of pages
            if pages is not None and page - p.base_page >= pages:
                return None
            return {"url": request["url"], "params": {**params, p.page_param: page}}
        offset = int(params.get(p.offset_param, 0)) + int(params.get(p.limit_param, p.limit))
        total = _total(body, p.total_path) if p.total_path else None
        if total is not None and offset >= total:
            return None
        return {"url": request["url"], "params": {**params, p.offset_param: offset}}
    if p.type == "header_link":
        link = _next_link(answer.headers.get("link") or answer.headers.get("Link") or "")
        return {"url": link, "params": None} if link else None
    link = get_path(body, p.next_url_path)  # json_link
    return {"url": str(link), "params": None} if link else None


def parse_page(answer: Answer, selector: str | None, source: str, resource: str) -> tuple[Any, list[bytes]]:
    """The decoded body and the exact bytes of each record at `selector` (a dotted path)."""
    import msgspec

    where = f"source '{source}' resource '{resource}': page {answer.url}"
    try:
        body = msgspec.json.decode(answer.content)
        node: Any = msgspec.Raw(answer.content)
        for part in [p for p in (selector or "").split(".") if p]:
            level = msgspec.json.decode(node, type=dict[str, msgspec.Raw])
            if part not in level:
                raise RestError(
                    f"{where} has no '{part}' (data_selector {selector}; the body's keys: "
                    f"{', '.join(sorted(level)[:10]) or 'none'}): did the API change?"
                )
            node = level[part]
        try:
            raws = [bytes(r) for r in msgspec.json.decode(node, type=list[msgspec.Raw] | None) or []]
        except msgspec.ValidationError:
            raws = [bytes(node)]  # one object: one record
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RestError(
            f"{where} is not JSON ({exc}; {len(answer.content)} bytes, {answer.headers.get('content-type', '?')}); "
            "pages before it are committed and the next run asks for it again"
        ) from None
    return body, raws


def get_path(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _total(body: Any, path: str | None) -> int | None:
    value = get_path(body, path) if path else None
    return int(value) if isinstance(value, int | float | str) and str(value).isdigit() else None


def _next_link(header: str) -> str | None:
    """The `rel="next"` URL of a `Link` header (RFC 8288)."""
    for part in header.split(","):
        url, _, rest = part.strip().partition(";")
        if any(p.strip().replace(" ", "") in ('rel="next"', "rel=next") for p in rest.split(";")):
            return url.strip().strip("<>")
    return None


def _cursor_values(body: Any, spec: RestResourceConfig, raws: list[bytes]) -> list[Any]:
    import msgspec

    assert spec.incremental is not None
    out = []
    for raw in raws:
        try:
            record = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            continue
        value = get_path(record, spec.incremental.cursor_path) if isinstance(record, dict) else None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            out.append(value)
    return out


def newest(current: Any, values: list[Any]) -> Any:
    """The greatest of the cursor values (strings compare as strings: ISO timestamps sort)."""
    best = current
    for value in values:
        same = type(value) is type(best)
        if best is None or (value > best if same else str(value) > str(best)):
            best = value
    return best


def _shown(client: RestClient, request: dict[str, Any]) -> str:
    from lakestack.ingest.restclient import display_url

    try:
        return display_url(client.url(request["url"]), request.get("params"))
    except RestError:
        return str(request["url"])
