"""Deterministic landing data for the Northwind Trading example, with deliberate defects.

The same arguments always write byte-identical files: everything comes from one seeded
`random.Random`, never from the clock. The report lists every defect injected, so tests can check
that ingestion quarantines exactly the invalid rows and keeps counts that reconcile.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

CURRENCIES = ("USD", "EUR", "GBP", "JPY")
COUNTRIES = (("US", 30), ("GB", 20), ("DE", 14), ("FR", 12), ("ES", 7), ("IT", 6), ("NL", 6), ("JP", 5))
COUNTRY_CURRENCY = {"US": "USD", "GB": "GBP", "JP": "JPY"}
CATEGORIES = ("beverages", "condiments", "confections", "dairy", "grains", "meat", "produce", "seafood")
FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Frances",
    "John",
    "Radia",
    "Tim",
    "Anita",
    "Linus",
    "Guido",
    "Sophie",
    "Katherine",
    "Dennis",
    "Hedy",
    "Claude",
    "Mary",
    "Niklaus",
)
LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Allen",
    "Backus",
    "Perlman",
    "Berners-Lee",
    "Borg",
    "Torvalds",
    "van Rossum",
    "Wilson",
    "Johnson",
    "Ritchie",
    "Lamarr",
    "Shannon",
    "Keller",
    "Wirth",
    "O'Neil",
    "García",
    "Müller",
)
DOMAINS = ("example.com", "mail.example.org", "northwind.test", "corp.example.net")
PRODUCT_WORDS = {
    "beverages": ("Chai", "Chang", "Lager", "Espresso", "Green Tea", "Lemonade"),
    "condiments": ("Aniseed Syrup", "Cajun Seasoning", "Gumbo Mix", "Mustard", "Relish"),
    "confections": ("Chocolate", "Scones", "Toffee", "Marzipan", "Licorice"),
    "dairy": ("Gorgonzola", "Mascarpone", "Camembert", "Feta", "Gouda"),
    "grains": ("Gnocchi", "Ravioli", "Crispbread", "Focaccia", "Couscous"),
    "meat": ("Pâté", "Tourtière", "Salami", "Biltong", "Chorizo"),
    "produce": ("Dried Apples", "Tofu", "Dried Pears", "Rössle Sauerkraut", "Manjimup Apples"),
    "seafood": ("Ikura", "Konbu", "Carnarvon Tigers", "Escargots", "Gravad Lax"),
}
STATUS_FLOW = ("placed", "paid", "shipped", "delivered")
ORDER_HEADER = (
    "order_id",
    "order_line",
    "customer_id",
    "product_id",
    "quantity",
    "unit_price",
    "currency",
    "status",
    "order_ts",
    "updated_at",
    "channel",
    "ship_country",
)
CUSTOMER_HEADER = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "country",
    "segment",
    "marketing_opt_in",
    "created_at",
    "updated_at",
)
INVALID_RATE = 0.01
BASE_FX = {"USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "JPY": Decimal("148.5")}


@dataclass(frozen=True, slots=True)
class NorthwindReport:
    """What the generator wrote.

    `rows` counts the records in readable files per source (what ingestion reads); records in
    deliberately malformed files are counted in `defects[source]["malformed_rows"]` instead.
    """

    files: tuple[str, ...]
    rows: dict[str, int]
    defects: dict[str, dict[str, int]]
    customers: int
    products: int


@dataclass(slots=True)
class _Tally:
    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    defects: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, source: str, kind: str, n: int = 1) -> None:
        bucket = self.defects.setdefault(
            source,
            {
                "invalid_rows": 0,
                "duplicate_rows": 0,
                "late_rows": 0,
                "orphan_rows": 0,
                "malformed_files": 0,
                "malformed_rows": 0,
            },
        )
        bucket[kind] += n

    def wrote(self, source: str, path: Path, root: Path, rows: int) -> None:
        self.files.append(path.relative_to(root).as_posix())
        self.rows[source] = self.rows.get(source, 0) + rows
        self.count(source, "invalid_rows", 0)


def generate_northwind(
    project_dir: Path,
    *,
    orders: int = 100_000,
    seed: int = 42,
    days: int = 14,
    start: date = date(2026, 1, 1),
    break_gold: bool = False,
) -> NorthwindReport:
    """Write Northwind landing files under `project_dir/landing/<source>/`.

    `orders` is the number of order lines placed; re-deliveries, duplicates and defects come on
    top. `break_gold` makes every order line of the last day EUR at 0.00 (still contract-valid),
    for a Gold-layer check to catch.
    """
    rnd = random.Random(seed)
    tally = _Tally()
    landing = project_dir / "landing"
    days = max(days, 2)
    customers = _customers(rnd, max(200, orders // 20), start)
    products = _products(rnd, max(50, orders // 200), start)
    _write_customers(rnd, landing, tally, project_dir, customers, start, days)
    _write_products(rnd, landing, tally, project_dir, products, start, days)
    lines_by_day = _write_orders(rnd, landing, tally, project_dir, customers, products, orders, start, days, break_gold)
    _write_fx(rnd, landing, tally, project_dir, start, days)
    _write_clicks(rnd, landing, tally, project_dir, customers, products, lines_by_day, start)
    return NorthwindReport(tuple(tally.files), dict(tally.rows), tally.defects, len(customers), len(products))


def _ts(value: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second (values here are always UTC already)."""
    return value.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _day_start(start: date, day: int) -> datetime:
    return datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=day)


def _weighted(rnd: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rnd.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


# -- customers ------------------------------------------------------------------------------------
def _customers(rnd: random.Random, n: int, start: date) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        country = _weighted(rnd, COUNTRIES)
        created = _day_start(start, -rnd.randrange(30, 900)) + timedelta(seconds=rnd.randrange(86_400))
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "").replace("í", "i").replace("ü", "u")
        out.append(
            {
                "customer_id": f"C{100_000 + i:06d}",
                "first_name": first,
                "last_name": last,
                "email": f"{local}{i}@{rnd.choice(DOMAINS)}",
                "phone": f"+{rnd.randrange(1, 90)} {rnd.randrange(100, 999)} {rnd.randrange(100_000, 999_999)}",
                "country": country,
                "segment": rnd.choices(("consumer", "small_business", "enterprise"), (70, 22, 8))[0],
                "marketing_opt_in": "true" if rnd.random() < 0.4 else "false",
                "created_at": _ts(created),
                "updated_at": _ts(created),
            }
        )
    return out


# defect kind → (column, how the value is broken); each one breaks the contract for certain
_CUSTOMER_DEFECTS: dict[str, tuple[str, Any]] = {
    "missing_id": ("customer_id", lambda v: ""),
    "bad_email": ("email", lambda v: v.replace("@", " at ")),
    "long_country": ("country", lambda v: {"US": "USA", "GB": "GBR", "DE": "DEU"}.get(v, "FRA")),
    "bad_segment": ("segment", lambda v: "vip"),
    "bad_timestamp": ("updated_at", lambda v: "2026-02-30T25:61:00"),
}
_ORDER_DEFECTS: dict[str, tuple[str, Any]] = {
    "missing_customer": ("customer_id", lambda v: ""),
    "bad_quantity": ("quantity", lambda v: "two"),
    "negative_price": ("unit_price", lambda v: f"-{v}"),
    "bad_currency": ("currency", lambda v: "XXX"),
    "bad_status": ("status", lambda v: "lost"),
    "bad_timestamp": ("order_ts", lambda v: "2026-13-45T99:00:00"),
    "bad_order_id": ("order_id", lambda v: "ORD-12AB"),
    "long_country": ("ship_country", lambda v: "GBR"),
}


def _break(rnd: random.Random, row: dict[str, Any], defects: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """A copy of `row` with one defect of a randomly chosen kind."""
    column, spoil = defects[rnd.choice(sorted(defects))]
    return {**row, column: spoil(row[column])}


def _write_customers(
    rnd: random.Random,
    landing: Path,
    tally: _Tally,
    root: Path,
    customers: list[dict[str, Any]],
    start: date,
    days: int,
) -> None:
    folder = landing / "customers"
    for day in range(0, days, 7):
        stamp = _day_start(start, day) + timedelta(hours=1)
        if day == 0:
            batch = [dict(c, updated_at=c["updated_at"]) for c in customers]
        else:
            batch = []
            for c in rnd.sample(customers, max(1, len(customers) // 20)):
                c["segment"] = rnd.choice(("consumer", "small_business", "enterprise"))
                c["phone"] = f"+{rnd.randrange(1, 90)} {rnd.randrange(100, 999)} {rnd.randrange(100_000, 999_999)}"
                c["updated_at"] = _ts(stamp - timedelta(minutes=rnd.randrange(1, 600)))
                batch.append(dict(c))
        rows = []
        for row in batch:
            if rnd.random() < INVALID_RATE:
                rows.append(_break(rnd, row, _CUSTOMER_DEFECTS))
                tally.count("customers", "invalid_rows")
            else:
                rows.append(row)
        path = folder / f"crm_contacts_{stamp:%Y%m%d}.csv"
        _write_csv(path, CUSTOMER_HEADER, rows, ",")
        tally.wrote("customers", path, root, len(rows))


# -- products -------------------------------------------------------------------------------------
def _products(rnd: random.Random, n: int, start: date) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        category = CATEGORIES[i % len(CATEGORIES)]
        name = f"{rnd.choice(PRODUCT_WORDS[category])} {rnd.choice(('Classic', 'Reserve', 'Organic', 'Select'))}"
        price = Decimal(rnd.randrange(150, 25_000)) / 100
        out.append(
            {
                "product_id": f"P{10_000 + i:05d}",
                "name": f"{name} #{i}",
                "category": category,
                "list_price": price,
                "currency": "USD",
                "active": True,
                "weight_kg": round(rnd.uniform(0.1, 12.0), 3),
                "updated_at": _day_start(start, -rnd.randrange(10, 400)),
            }
        )
    return out


def _write_products(
    rnd: random.Random, landing: Path, tally: _Tally, root: Path, products: list[dict[str, Any]], start: date, days: int
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("product_id", pa.string()),
            ("name", pa.string()),
            ("category", pa.string()),
            ("list_price", pa.decimal128(12, 2)),
            ("currency", pa.string()),
            ("active", pa.bool_()),
            ("weight_kg", pa.float64()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    for day in (0, days // 2):
        stamp = _day_start(start, day) + timedelta(hours=2)
        if day:
            for p in rnd.sample(products, max(1, len(products) // 10)):
                p["list_price"] = (p["list_price"] * Decimal(rnd.choice(("0.9", "1.05", "1.1")))).quantize(
                    Decimal("0.01")
                )
                p["active"] = rnd.random() > 0.2
                p["updated_at"] = stamp - timedelta(minutes=rnd.randrange(1, 300))
        path = landing / "products" / f"catalog_{stamp:%Y%m%d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(products, schema=schema), path)
        tally.wrote("products", path, root, len(products))


# -- orders ---------------------------------------------------------------------------------------
def _order_lines(
    rnd: random.Random,
    number: int,
    placed: datetime,
    customer: dict[str, Any] | None,
    products: list[dict[str, Any]],
    cum_weights: list[float],
    lines: int,
) -> list[dict[str, Any]]:
    country = customer["country"] if customer else rnd.choice(("US", "GB", "DE"))
    currency = COUNTRY_CURRENCY.get(country, "EUR")
    customer_id = customer["customer_id"] if customer else f"C{900_000 + rnd.randrange(99_999):06d}"
    channel = rnd.choices(("web", "mobile", "store", "partner"), (50, 30, 15, 5))[0]
    out = []
    stamp = _ts(placed)
    for line, product in enumerate(rnd.choices(products, cum_weights=cum_weights, k=lines), start=1):
        price = product["list_price"] * BASE_FX[currency]
        out.append(
            {
                "order_id": f"ORD-{number:08d}",
                "order_line": line,
                "customer_id": customer_id,
                "product_id": product["product_id"],
                "quantity": rnd.choices((1, 2, 3, 5, 10, 24), (50, 20, 12, 9, 6, 3))[0],
                "unit_price": f"{price.quantize(Decimal('0.01'))}",
                "currency": currency,
                "status": "placed",
                "order_ts": stamp,
                "updated_at": stamp,
                "channel": channel,
                "ship_country": country,
            }
        )
    return out


def _write_orders(
    rnd: random.Random,
    landing: Path,
    tally: _Tally,
    root: Path,
    customers: list[dict[str, Any]],
    products: list[dict[str, Any]],
    n_lines: int,
    start: date,
    days: int,
    break_gold: bool,
) -> dict[int, list[dict[str, Any]]]:
    weights = [1.0 / (1 + i) ** 0.8 for i in range(len(products))]  # a long tail of popularity
    cum_weights = list(itertools.accumulate(weights))
    by_day: dict[int, list[dict[str, Any]]] = {d: [] for d in range(days)}
    number, written = 1, 0
    while written < n_lines:
        day = rnd.randrange(days)
        placed = _day_start(start, day) + timedelta(seconds=rnd.randrange(86_400))
        orphan = rnd.random() < 0.005
        lines = min(rnd.choices((1, 2, 3, 4), (55, 25, 12, 8))[0], n_lines - written)
        order = _order_lines(
            rnd, number, placed, None if orphan else rnd.choice(customers), products, cum_weights, lines
        )
        if orphan:
            tally.count("orders", "orphan_rows", len(order))
        late = day + 2 <= days - 1 and rnd.random() < 0.02
        file_day = day if not late else min(days - 1, day + rnd.randrange(2, 6))
        if late:
            tally.count("orders", "late_rows", len(order))
        by_day[file_day].extend(order)
        number += 1
        written += lines
    placed_lines = {d: list(rows) for d, rows in by_day.items()}
    for day in range(1, days):  # re-deliveries: earlier orders move on in their status
        previous = [r for d in range(max(0, day - 3), day) for r in placed_lines[d]]
        for row in rnd.sample(previous, min(len(previous), len(placed_lines[day]) // 10)):
            moved = dict(row)
            status = rnd.choices((*STATUS_FLOW[1:], "cancelled", "returned"), (40, 30, 20, 7, 3))[0]
            moved["status"] = status
            moved["updated_at"] = _ts(_day_start(start, day) + timedelta(seconds=rnd.randrange(86_400)))
            by_day[day].append(moved)
            tally.count("orders", "duplicate_rows")
    for day in range(days):
        rows = by_day[day]
        for row in rnd.sample(rows, len(rows) // 200):  # exact re-sends of a line
            rows.append(dict(row))
            tally.count("orders", "duplicate_rows")
        if break_gold and day == days - 1:
            rows = [dict(r, currency="EUR", unit_price="0.00") for r in rows]
        final = []
        for row in rows:
            if rnd.random() < INVALID_RATE:
                final.append(_break(rnd, row, _ORDER_DEFECTS))
                tally.count("orders", "invalid_rows")
            else:
                final.append(row)
        path = landing / "orders" / f"orders_{_day_start(start, day):%Y%m%d}.csv"
        _write_csv(path, ORDER_HEADER, final, ",")
        tally.wrote("orders", path, root, len(final))
    _write_truncated_resend(landing, tally, root, start, days, by_day)
    return placed_lines


def _write_truncated_resend(
    landing: Path, tally: _Tally, root: Path, start: date, days: int, by_day: dict[int, list[dict[str, Any]]]
) -> None:
    """The source system re-sent one day gzip-compressed, and the transfer was cut off."""
    day = days // 3
    text = io.StringIO()
    _csv_rows(text, ORDER_HEADER, by_day[day], ",")
    packed = gzip.compress(text.getvalue().encode(), mtime=0)
    path = landing / "orders" / f"orders_{_day_start(start, days):%Y%m%d}.csv.gz"
    path.write_bytes(packed[: max(20, len(packed) // 2)])
    tally.files.append(path.relative_to(root).as_posix())
    tally.count("orders", "malformed_files")
    tally.count("orders", "malformed_rows", len(by_day[day]))


# -- FX rates -------------------------------------------------------------------------------------
def _write_fx(rnd: random.Random, landing: Path, tally: _Tally, root: Path, start: date, days: int) -> None:
    header = ("rate_date", "base_currency", "quote_currency", "rate", "published_at")
    drift = {c: Decimal(1) for c in CURRENCIES}
    broken_day = days - 2
    for day in range(days):
        for c in ("EUR", "GBP", "JPY"):
            drift[c] *= Decimal(str(round(1 + rnd.uniform(-0.004, 0.004), 6)))
        stamp = _day_start(start, day) + timedelta(hours=16)
        rows = []
        for base in CURRENCIES:
            for quote in CURRENCIES:
                if base == quote:
                    continue
                rate = (BASE_FX[quote] * drift[quote]) / (BASE_FX[base] * drift[base])
                rows.append(
                    {
                        "rate_date": stamp.date().isoformat(),
                        "base_currency": base,
                        "quote_currency": quote,
                        "rate": f"{rate.quantize(Decimal('0.00000001'))}",
                        "published_at": _ts(stamp),
                    }
                )
        path = landing / "fx_rates" / f"fx_{stamp:%Y%m%d}.csv"
        if day == broken_day:  # the vendor sent this day with the wrong delimiter
            _write_csv(path, header, rows, ",")
            tally.files.append(path.relative_to(root).as_posix())
            tally.count("fx_rates", "malformed_files")
            tally.count("fx_rates", "malformed_rows", len(rows))
        else:
            _write_csv(path, header, rows, ";")
            tally.wrote("fx_rates", path, root, len(rows))


# -- clickstream ----------------------------------------------------------------------------------
_CLICK_DEFECTS = (
    "ts_as_number",
    "missing_session",
    "unknown_field",
    "truncated_json",
    "bad_event_type",
    "too_many_products",
)


def _click_line(rnd: random.Random, event: dict[str, Any]) -> tuple[str, bool]:
    """The event as an NDJSON line, broken about 1% of the time; and whether it was broken."""
    if rnd.random() >= INVALID_RATE:
        return msgspec.json.encode(event).decode(), False
    bad = dict(event)
    kind = rnd.choice(_CLICK_DEFECTS)
    if kind == "ts_as_number":
        bad["event_ts"] = 1767225600
    elif kind == "missing_session":
        del bad["session_id"]
    elif kind == "unknown_field":
        bad["experiment"] = "b"
    elif kind == "bad_event_type":
        bad["event_type"] = "hover"
    elif kind == "too_many_products":
        bad["product_ids"] = [f"P{10_000 + i:05d}" for i in range(51)]
    text = json.dumps(bad, ensure_ascii=False, separators=(",", ":"))
    return (text[: len(text) // 2] if kind == "truncated_json" else text), True


def _uuid(rnd: random.Random) -> str:
    h = f"{rnd.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _write_clicks(
    rnd: random.Random,
    landing: Path,
    tally: _Tally,
    root: Path,
    customers: list[dict[str, Any]],
    products: list[dict[str, Any]],
    lines_by_day: dict[int, list[dict[str, Any]]],
    start: date,
) -> None:
    event_types = ("page_view", "product_view", "add_to_cart", "checkout", "purchase")
    devices = ("desktop", "mobile", "tablet")
    systems = ("iOS", "Android", "Windows", "macOS", "Linux")
    referrers = (None, "https://search.example/q", "https://ads.example")
    n_products, n_customers = len(products), len(customers)
    rand = rnd.random
    for day, lines in sorted(lines_by_day.items()):
        events: list[str] = []
        broken_count = 0
        base = _day_start(start, day)
        for _ in range(max(10, len(lines) * 3 // 2)):
            customer = customers[int(rand() * n_customers)]["customer_id"] if rand() < 0.6 else None
            session = f"{rnd.getrandbits(128):032x}"
            first = int(rand() * 86_000)
            for step in range(2):
                viewed = [products[int(rand() * n_products)]["product_id"] for _ in range(int(rand() * 4))]
                event = {
                    "event_id": _uuid(rnd),
                    "event_ts": _ts(base + timedelta(seconds=first + step * 60)),
                    "session_id": session,
                    "customer_id": customer,
                    "event_type": event_types[int(rand() * 5)],
                    "page": {
                        "url": f"https://shop.northwind.example/p/{int(rand() * 500)}",
                        "referrer": referrers[int(rand() * 3)],
                    },
                    "device": {"type": devices[int(rand() * 3)], "os": systems[int(rand() * 5)]},
                    "product_ids": viewed,
                    "ip_address": f"198.51.{int(rand() * 256)}.{1 + int(rand() * 254)}",
                }
                line, broken = _click_line(rnd, event)
                broken_count += broken
                events.append(line)
        tally.count("clickstream", "invalid_rows", broken_count)
        half = len(events) // 2
        for part, chunk in ((1, events[:half]), (2, events[half:])):
            path = landing / "clickstream" / f"clicks_{base:%Y%m%d}_{part:02d}.ndjson"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(e + "\n" for e in chunk), encoding="utf-8")
            tally.wrote("clickstream", path, root, len(chunk))


# -- CSV writing ----------------------------------------------------------------------------------
def _csv_rows(out: Any, header: tuple[str, ...], rows: list[dict[str, Any]], delimiter: str) -> None:
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([row[h] for h in header] for row in rows)


def _write_csv(path: Path, header: tuple[str, ...], rows: list[dict[str, Any]], delimiter: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        _csv_rows(f, header, rows, delimiter)
