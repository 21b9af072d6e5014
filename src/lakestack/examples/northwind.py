"""Deterministic landing data for the Northwind Trading example, with deliberate defects.

The same arguments always write byte-identical files: everything comes from one seeded
`random.Random`, never from the clock. The report lists every defect injected, so tests can check
that ingestion quarantines exactly the invalid rows and keeps counts that reconcile.

Every invalid row breaks the example's contracts (examples/northwind/contracts) for certain, and
every other row satisfies all of their rules; the defects are listed in `_ORDER_DEFECTS`,
`_CUSTOMER_DEFECTS` and `_CLICK_DEFECTS`.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import itertools
import random
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

Row = dict[str, Any]
Spoiler = Callable[[Any], Any]

SOURCES = ("customers", "products", "orders", "fx_rates", "clickstream")
DEFECT_KINDS = ("invalid_rows", "duplicate_rows", "late_rows", "orphan_rows", "malformed_files", "malformed_rows")
CURRENCIES = ("USD", "EUR", "GBP", "JPY")
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "returned")
CATEGORIES = ("beverages", "condiments", "confections", "dairy", "grains", "meat", "produce", "seafood")
EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "checkout", "purchase")

INVALID_RATE = 0.01  # share of rows broken on purpose (orders, customers, clickstream), spread over the files
TWO_PROBLEMS_RATE = 0.2  # share of the invalid rows that carry two problems instead of one
ORPHAN_RATE = 0.005  # orders placed by a customer the CRM does not know
LATE_RATE = 0.02  # orders delivered 2-5 days after they were placed
EXACT_DUPLICATE_RATE = 0.005  # order lines sent twice in the same file
STATUS_CHANGE_RATE = 0.3  # orders re-delivered per day with a newer status, relative to new orders
CUSTOMER_CHANGE_RATE = 0.05  # contacts re-delivered in each weekly CRM file
CRM_EVERY_DAYS = 7
EVENTS_PER_ORDER = 3
MAX_CUSTOMERS = 799_999  # ids C100000.. stay below C900000, where the orphan ids live

BASE_FX = {"USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "JPY": Decimal("148.5")}
CENTS = Decimal("0.01")
RATE_PLACES = Decimal("0.00000001")
COUNTRY_CURRENCY = {"US": "USD", "GB": "GBP", "JP": "JPY"}
CALLING_CODES = {"US": "1", "GB": "44", "DE": "49", "FR": "33", "ES": "34", "IT": "39", "NL": "31", "JP": "81"}
FIRST = (
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "John", "Radia",
    "Tim", "Anita", "Linus", "Guido", "Sophie", "Katherine", "Dennis", "Hedy", "Claude", "Mary", "Niklaus",
    "José", "Zoë", 'Robert "Bob"',
)  # fmt: skip
LAST = (
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Backus",
    "Perlman", "Berners-Lee", "Borg", "Torvalds", "van Rossum", "Wilson", "Johnson", "Ritchie", "Lamarr",
    "Shannon", "Keller", "Wirth", "O'Neil", "García", "Müller", "King, Jr.",
)  # fmt: skip
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
PRODUCT_STYLES = ("Classic", "Reserve", "Organic", "Select", "Family Pack", "Gift Box")
OPERATING_SYSTEMS = {
    "desktop": ("Windows", "macOS", "Linux"),
    "mobile": ("iOS", "Android"),
    "tablet": ("iPadOS", "Android"),
}
REFERRERS = (None, None, "https://search.example/?q=northwind", "https://ads.example/c/42", "https://social.example/")
SHOP = "https://shop.northwind.example"
ORDER_HEADER = (
    "order_id", "order_line", "customer_id", "product_id", "quantity", "unit_price", "currency", "status",
    "order_ts", "updated_at", "channel", "ship_country",
)  # fmt: skip
CUSTOMER_HEADER = (
    "customer_id", "first_name", "last_name", "email", "phone", "country", "segment", "marketing_opt_in",
    "created_at", "updated_at",
)  # fmt: skip
FX_HEADER = ("rate_date", "base_currency", "quote_currency", "rate", "published_at")
FINAL_STATUSES = frozenset({"cancelled", "returned"})


@dataclass(frozen=True, slots=True)
class _Weighted:
    """Values drawn with fixed weights (cumulative, so each draw is one bisect)."""

    values: tuple[Any, ...]
    cum_weights: tuple[float, ...]

    @classmethod
    def of(cls, *pairs: tuple[Any, float]) -> _Weighted:
        return cls(tuple(p[0] for p in pairs), tuple(itertools.accumulate(p[1] for p in pairs)))

    def pick(self, rnd: random.Random) -> Any:
        return self.values[_draw(rnd, self.cum_weights)]


def _draw(rnd: random.Random, cum_weights: Sequence[float]) -> int:
    """The position drawn with these cumulative weights (what `random.choices` does, without its overhead)."""
    return bisect.bisect(cum_weights, rnd.random() * cum_weights[-1], 0, len(cum_weights) - 1)


COUNTRY = _Weighted.of(("US", 30), ("GB", 20), ("DE", 14), ("FR", 12), ("ES", 7), ("IT", 6), ("NL", 6), ("JP", 5))
SEGMENT = _Weighted.of(("consumer", 70), ("small_business", 22), ("enterprise", 8))
CHANNEL = _Weighted.of(("web", 50), ("mobile", 30), ("store", 15), ("partner", 5))
LINES_PER_ORDER = _Weighted.of((1, 55), (2, 25), (3, 12), (4, 8))
QUANTITY = _Weighted.of((1, 50), (2, 20), (3, 12), (5, 9), (10, 6), (24, 3))
DEVICE = _Weighted.of(("mobile", 55), ("desktop", 38), ("tablet", 7))
EVENTS_PER_SESSION = _Weighted.of((1, 20), (2, 25), (3, 20), (4, 15), (5, 12), (6, 8))
# the next status of an order that changes; None: this order does not change after all
NEXT_STATUS = {
    "placed": _Weighted.of(("paid", 80), ("cancelled", 20)),
    "paid": _Weighted.of(("shipped", 92), ("cancelled", 8)),
    "shipped": _Weighted.of(("delivered", 100)),
    "delivered": _Weighted.of(("returned", 10), (None, 90)),
}


@dataclass(frozen=True, slots=True)
class NorthwindReport:
    """What the generator wrote.

    - `files`: every file written, relative to the project folder (POSIX separators), in order.
    - `rows`: records per source in readable files (what ingestion reads), including the invalid,
      duplicate and late rows; records in deliberately malformed files are not counted here.
    - `defects`: per source, counts by kind: `invalid_rows` (rows that break the contract),
      `duplicate_rows` (order lines re-delivered with a newer status, or sent twice verbatim),
      `late_rows` (order lines first delivered 2-5 days after their `order_ts`), `orphan_rows`
      (order lines placed by a customer id that has no valid CRM record), `malformed_files`
      (files to be rejected whole) and `malformed_rows` (the records inside them).
    - `problems`: per source, how many invalid rows carry each kind of problem (a row carries one
      or two, so these add up to at least `invalid_rows`).
    - `customers`, `products`: how many distinct customers and products were generated.
    """

    files: tuple[str, ...]
    rows: dict[str, int]
    defects: dict[str, dict[str, int]]
    problems: dict[str, dict[str, int]]
    customers: int
    products: int


@dataclass(slots=True)
class _Out:
    """Writes landing files and keeps the tally for the report."""

    root: Path
    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    defects: dict[str, dict[str, int]] = field(
        default_factory=lambda: {s: dict.fromkeys(DEFECT_KINDS, 0) for s in SOURCES}
    )
    problems: dict[str, dict[str, int]] = field(default_factory=lambda: {s: {} for s in SOURCES})
    quota: dict[str, tuple[int, int]] = field(default_factory=dict)  # rows seen, rows chosen to break

    def to_break(self, rnd: random.Random, source: str, n: int) -> set[int]:
        """Which of the next `n` rows to break: the running total stays round(rows * INVALID_RATE)."""
        seen, chosen = self.quota.get(source, (0, 0))
        k = round((seen + n) * INVALID_RATE) - chosen
        self.quota[source] = (seen + n, chosen + k)
        return set(rnd.sample(range(n), k))

    def path(self, source: str, name: str) -> Path:
        folder = self.root / "landing" / source
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def count(self, source: str, kind: str, n: int = 1) -> None:
        self.defects[source][kind] += n

    def wrote(self, source: str, path: Path, rows: int) -> None:
        self.files.append(path.relative_to(self.root).as_posix())
        self.rows[source] += rows

    def malformed(self, source: str, path: Path, rows: int) -> None:
        self.files.append(path.relative_to(self.root).as_posix())
        self.count(source, "malformed_files")
        self.count(source, "malformed_rows", rows)

    def spoil(self, rnd: random.Random, source: str, row: Row, defects: dict[str, tuple[str, Spoiler]]) -> Row:
        """A copy of `row` with one or two problems (on different columns) of the kinds in `defects`."""
        kinds = rnd.sample(sorted(defects), 2 if rnd.random() < TWO_PROBLEMS_RATE else 1)
        broken = dict(row)
        for kind in kinds:
            column, spoil = defects[kind]
            broken[column] = spoil(row[column])
            self.problem(source, kind)
        self.count(source, "invalid_rows")
        return broken

    def problem(self, source: str, kind: str) -> None:
        self.problems[source][kind] = self.problems[source].get(kind, 0) + 1

    def report(self, customers: int, products: int) -> NorthwindReport:
        problems = {s: dict(sorted(p.items())) for s, p in self.problems.items()}
        return NorthwindReport(tuple(self.files), dict(self.rows), self.defects, problems, customers, products)


def generate_northwind(
    project_dir: Path,
    *,
    orders: int = 100_000,
    seed: int = 42,
    days: int = 14,
    start: date = date(2026, 1, 1),
    break_gold: bool = False,
    fleet: bool = False,
) -> NorthwindReport:
    """Write Northwind landing files under `project_dir/landing/<source>/`; return what was written.

    The project files (lakestack.yaml, contracts) are not written here: copy examples/northwind.

    - `orders`: the number of order lines placed over the period; status re-deliveries, exact
      duplicates and the deliberately invalid rows come on top.
    - `seed`: the same seed (and other arguments) writes byte-identical files.
    - `days`: daily files from `start` on (at least 2; late orders need 3 or more).
    - `break_gold`: every order line in the last day's file is EUR at 0.00. That is valid by the
      contract, so it reaches Gold, where the "revenue is positive every day" check must fail.

    Defects (recorded in the report): about 1% invalid rows in orders, customers and clickstream,
    each with one or two problems; re-delivered and exactly duplicated order lines; late order lines
    (delivered 2-5 days after `order_ts`); about 0.5% orders of a customer id the CRM does not know;
    a truncated `orders_<day after the period>.csv.gz`; one FX file delimited by "," instead of ";".

    - `fleet`: also the fleet register (`landing/assets/fleet_<date>.csv`, source `assets`), for the
      example with its APIs (`northwind_apis.py`): a full extract on the first day and one a week
      with new odometer readings; one vehicle is not registered yet (no plate, no valuation).
      Drawn from its own seeded generator, so the other files stay the same with or without it.
    """
    rnd = random.Random(seed)
    out = _Out(project_dir)
    days = max(days, 2)
    customers = _customers(rnd, min(MAX_CUSTOMERS, max(200, orders // 20)), start)
    known = _write_customers(rnd, out, customers, start, days)
    catalog = _write_products(rnd, out, _products(rnd, max(50, orders // 200), start), start, days)
    placed_per_day = _write_orders(rnd, out, known, catalog, orders, start, days, break_gold)
    _write_fx(rnd, out, start, days)
    _write_clicks(rnd, out, known, catalog, placed_per_day, start)
    if fleet:
        _write_fleet(random.Random(f"northwind-fleet:{seed}"), out, max(12, min(120, orders // 2000)), start, days)
    return out.report(len(customers), len(catalog.products))


# -- helpers --------------------------------------------------------------------------------------
def _day_start(start: date, day: int) -> datetime:
    return datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=day)


def _ts(value: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second (values here are always UTC already)."""
    return f"{value:%Y-%m-%dT%H:%M:%S}Z"


def _crm_ts(value: datetime) -> str:
    """The CRM exports timestamps without an offset (`2026-01-03 10:15:00`), meaning UTC."""
    return f"{value:%Y-%m-%d %H:%M:%S}"


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Row], delimiter: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([row[h] for h in header] for row in rows)


# -- customers ------------------------------------------------------------------------------------
def _email_local(first: str, last: str) -> str:
    """`José "Bob" King, Jr.` -> `jose.king`: ASCII letters and one dot."""
    first, last = first.split(' "')[0], last.split(",")[0]
    text = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in text if ch.isalnum() or ch == ".")


def _phone(rnd: random.Random, country: str) -> str | None:
    if rnd.random() < 0.08:
        return None  # not every contact left a phone number
    return f"+{CALLING_CODES[country]} {rnd.randrange(100, 1000)} {rnd.randrange(1_000_000, 10_000_000)}"


def _customers(rnd: random.Random, n: int, start: date) -> list[Row]:
    out = []
    for i in range(n):
        first, last, country = rnd.choice(FIRST), rnd.choice(LAST), COUNTRY.pick(rnd)
        created = _crm_ts(_day_start(start, -rnd.randrange(30, 900)) + timedelta(seconds=rnd.randrange(86_400)))
        out.append(
            {
                "customer_id": f"C{100_000 + i:06d}",
                "first_name": first,
                "last_name": last,
                "email": f"{_email_local(first, last)}{i}@{rnd.choice(DOMAINS)}",
                "phone": _phone(rnd, country),
                "country": country,
                "segment": SEGMENT.pick(rnd),
                "marketing_opt_in": "true" if rnd.random() < 0.4 else "false",
                "created_at": created,
                "updated_at": created,
            }
        )
    return out


# defect kind -> (column, how the value is broken); each one breaks the contract for certain
_CUSTOMER_DEFECTS: dict[str, tuple[str, Spoiler]] = {
    "missing_customer_id": ("customer_id", lambda v: ""),
    "bad_email": ("email", lambda v: v.replace("@", " at ")),
    "long_country": ("country", lambda v: {"US": "USA", "GB": "GBR", "DE": "DEU"}.get(v, "FRA")),
    "bad_segment": ("segment", lambda v: "vip"),
    "bad_timestamp": ("updated_at", lambda v: "2026-02-30T25:61:00"),
}


def _changed_customers(rnd: random.Random, customers: list[Row], stamp: datetime) -> list[Row]:
    """The contacts that changed since the last CRM file, as they are now (mutated in place)."""
    changed = []
    for c in rnd.sample(customers, max(1, round(len(customers) * CUSTOMER_CHANGE_RATE))):
        what = rnd.randrange(3)
        if what == 0:
            c["segment"] = SEGMENT.pick(rnd)
        elif what == 1:
            c["phone"] = _phone(rnd, c["country"])
        else:
            c["marketing_opt_in"] = "false" if c["marketing_opt_in"] == "true" else "true"
        c["updated_at"] = _crm_ts(stamp - timedelta(minutes=rnd.randrange(1, 600)))
        changed.append(dict(c))
    return changed


def _write_customers(rnd: random.Random, out: _Out, customers: list[Row], start: date, days: int) -> list[Row]:
    """A full snapshot on the first day, then weekly files with the contacts that changed.

    Returns the customers whose snapshot row is valid: the only ones orders and events refer to,
    so that the orphan orders are exactly the ones the report counts.
    """
    known: list[Row] = []
    for day in range(0, days, CRM_EVERY_DAYS):
        stamp = _day_start(start, day) + timedelta(hours=1)
        batch = [dict(c) for c in customers] if day == 0 else _changed_customers(rnd, customers, stamp)
        broken = out.to_break(rnd, "customers", len(batch))
        rows = [out.spoil(rnd, "customers", r, _CUSTOMER_DEFECTS) if i in broken else r for i, r in enumerate(batch)]
        if day == 0:
            known = [c for i, c in enumerate(customers) if i not in broken]
        path = out.path("customers", f"crm_contacts_{stamp:%Y%m%d}.csv")
        _write_csv(path, CUSTOMER_HEADER, rows, ",")
        out.wrote("customers", path, len(rows))
    return known


# -- products -------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Catalog:
    """Products, their popularity (a long tail), and the prices before the mid-period update."""

    products: list[Row]
    cum_weights: list[float]
    updated_on: int  # the day of the second catalog file
    old_prices: dict[str, Decimal]

    def pick(self, rnd: random.Random) -> Row:
        return self.products[_draw(rnd, self.cum_weights)]

    def price(self, product: Row, day: int) -> Decimal:
        price: Decimal = product["list_price"] if day >= self.updated_on else self.old_prices[product["product_id"]]
        return price


def _products(rnd: random.Random, n: int, start: date) -> list[Row]:
    out = []
    for i in range(n):
        category = CATEGORIES[i % len(CATEGORIES)]
        name = f"{rnd.choice(PRODUCT_WORDS[category])} {rnd.choice(PRODUCT_STYLES)} {rnd.choice((6, 12, 24, 48))}x"
        out.append(
            {
                "product_id": f"P{10_000 + i:05d}",
                "name": name,
                "category": category,
                "list_price": Decimal(rnd.randrange(150, 25_000)) / 100,
                "currency": "USD",
                "active": True,
                "weight_kg": round(rnd.uniform(0.1, 12.0), 3),
                "updated_at": _day_start(start, -rnd.randrange(10, 400)) + timedelta(seconds=rnd.randrange(86_400)),
            }
        )
    return out


def _write_products(rnd: random.Random, out: _Out, products: list[Row], start: date, days: int) -> _Catalog:
    """The catalog on the first day, and again mid-period with new prices and some products retired."""
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
    old_prices = {p["product_id"]: p["list_price"] for p in products}
    updated_on = days // 2
    for day in (0, updated_on):
        stamp = _day_start(start, day) + timedelta(hours=2)
        if day:
            for p in rnd.sample(products, max(1, len(products) // 10)):
                p["list_price"] = (p["list_price"] * Decimal(rnd.choice(("0.9", "1.05", "1.1")))).quantize(CENTS)
                p["active"] = rnd.random() > 0.2
                p["updated_at"] = stamp - timedelta(minutes=rnd.randrange(1, 300))
        path = out.path("products", f"catalog_{stamp:%Y%m%d}.parquet")
        pq.write_table(pa.Table.from_pylist(products, schema=schema), path)
        out.wrote("products", path, len(products))
    ranks = list(range(len(products)))
    rnd.shuffle(ranks)  # popularity is not in id order
    weights = [1.0 / (1 + r) ** 0.8 for r in ranks]
    return _Catalog(products, list(itertools.accumulate(weights)), updated_on, old_prices)


# -- orders ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Order:
    lines: list[Row]
    status: str
    last_day: int  # the file day of its latest version


_ORDER_DEFECTS: dict[str, tuple[str, Spoiler]] = {
    "missing_customer_id": ("customer_id", lambda v: ""),
    "missing_product_id": ("product_id", lambda v: ""),
    "bad_quantity": ("quantity", lambda v: "two"),
    "negative_price": ("unit_price", lambda v: f"-{v}" if Decimal(v) > 0 else "-1.00"),
    "bad_currency": ("currency", lambda v: "XXX"),
    "bad_status": ("status", lambda v: "lost"),
    "bad_timestamp": ("order_ts", lambda v: "2026-13-45T99:00:00"),
    "bad_order_id": ("order_id", lambda v: "ORD-12AB"),
    "long_country": ("ship_country", lambda v: "GBR"),
}


def _order(
    rnd: random.Random, day: int, placed: datetime, customer: Row | None, catalog: _Catalog, lines: int
) -> _Order:
    """One order, as first delivered (numbered later); customer None: an id the CRM does not know (an orphan)."""
    if customer is None:
        customer_id, country = f"C{900_000 + rnd.randrange(100_000):06d}", rnd.choice(("US", "GB", "DE"))
    else:
        customer_id, country = customer["customer_id"], customer["country"]
    currency = COUNTRY_CURRENCY.get(country, "EUR")
    channel = CHANNEL.pick(rnd)
    ship_country = None if channel == "store" and rnd.random() < 0.1 else country  # picked up in store
    status = "paid" if channel == "store" else "placed"
    stamp = _ts(placed)
    rows = []
    for line in range(1, lines + 1):
        product = catalog.pick(rnd)
        discount = Decimal("0.9") if rnd.random() < 0.1 else Decimal(1)
        price = (catalog.price(product, day) * BASE_FX[currency] * discount).quantize(CENTS)
        rows.append(
            {
                "order_id": "",
                "order_line": line,
                "customer_id": customer_id,
                "product_id": product["product_id"],
                "quantity": QUANTITY.pick(rnd),
                "unit_price": str(price),
                "currency": currency,
                "status": status,
                "order_ts": stamp,
                "updated_at": stamp,
                "channel": channel,
                "ship_country": ship_country,
            }
        )
    return _Order(rows, status, day)


def _place_orders(
    rnd: random.Random, out: _Out, customers: list[Row], catalog: _Catalog, n_lines: int, start: date, days: int
) -> tuple[list[list[_Order]], list[int]]:
    """Orders by the day of their first delivery, and how many orders were placed each day."""
    day_weights = _Weighted.of(*((d, 0.7 if _day_start(start, d).weekday() >= 5 else 1.0) for d in range(days)))
    bases = [_day_start(start, d) for d in range(days)]
    delivered: list[list[_Order]] = [[] for _ in range(days)]
    placed_per_day = [0] * days
    orders: list[_Order] = []
    written = 0
    while written < n_lines:
        day = day_weights.pick(rnd)
        placed = bases[day] + timedelta(seconds=int(rnd.random() * 86_400))
        orphan = rnd.random() < ORPHAN_RATE
        lines = min(LINES_PER_ORDER.pick(rnd), n_lines - written)
        customer = None if orphan else customers[int(rnd.random() * len(customers))]
        order = _order(rnd, day, placed, customer, catalog, lines)
        if orphan:
            out.count("orders", "orphan_rows", lines)
        if day + 2 <= days - 1 and rnd.random() < LATE_RATE:  # the extract missed it for a few days
            order.last_day = min(days - 1, day + 2 + int(rnd.random() * 4))
            out.count("orders", "late_rows", lines)
        delivered[order.last_day].append(order)
        orders.append(order)
        placed_per_day[day] += 1
        written += lines
    orders.sort(key=lambda o: str(o.lines[0]["order_ts"]))  # order numbers go up with time
    for number, order in enumerate(orders, 1):
        for line in order.lines:
            line["order_id"] = f"ORD-{number:08d}"
    return delivered, placed_per_day


def _status_changes(rnd: random.Random, out: _Out, delivered: list[list[_Order]], day: int, start: date) -> list[Row]:
    """Orders of the last three files that moved on: all their lines again, newer status and updated_at."""
    pool = [
        o
        for d in range(max(0, day - 3), day)
        for o in delivered[d]
        if o.last_day == d and o.status not in FINAL_STATUSES
    ]
    rows: list[Row] = []
    for order in rnd.sample(pool, min(len(pool), round(len(delivered[day]) * STATUS_CHANGE_RATE))):
        status = NEXT_STATUS[order.status].pick(rnd)
        if status is None:
            continue
        updated = _ts(_day_start(start, day) + timedelta(seconds=rnd.randrange(86_400)))
        rows.extend(dict(line, status=status, updated_at=updated) for line in order.lines)
        order.status, order.last_day = status, day
        delivered[day].append(order)
    out.count("orders", "duplicate_rows", len(rows))
    return rows


def _write_orders(
    rnd: random.Random,
    out: _Out,
    customers: list[Row],
    catalog: _Catalog,
    n_lines: int,
    start: date,
    days: int,
    break_gold: bool,
) -> list[int]:
    """One CSV per day; returns how many orders were placed each day."""
    delivered, placed_per_day = _place_orders(rnd, out, customers, catalog, n_lines, start, days)
    written: list[tuple[Path, int]] = []
    for day in range(days):
        rows = [line for order in delivered[day] for line in order.lines]
        rows += _status_changes(rnd, out, delivered, day, start)
        rows.sort(key=lambda r: r["updated_at"])  # the extract is ordered by last change
        for row in rnd.sample(rows, max(1, round(len(rows) * EXACT_DUPLICATE_RATE)) if rows else 0):
            rows.append(dict(row))  # the extract job retried and appended a line again
            out.count("orders", "duplicate_rows")
        if break_gold and day == days - 1:
            rows = [dict(r, currency="EUR", unit_price="0.00") for r in rows]
        broken = out.to_break(rnd, "orders", len(rows))
        rows = [out.spoil(rnd, "orders", r, _ORDER_DEFECTS) if i in broken else r for i, r in enumerate(rows)]
        path = out.path("orders", f"orders_{_day_start(start, day):%Y%m%d}.csv")
        _write_csv(path, ORDER_HEADER, rows, ",")
        out.wrote("orders", path, len(rows))
        written.append((path, len(rows)))
    resent, resent_rows = written[days // 3]
    _write_truncated_resend(out, resent.read_bytes(), resent_rows, _day_start(start, days))
    return placed_per_day


def _write_truncated_resend(out: _Out, content: bytes, rows: int, when: datetime) -> None:
    """The order system re-sent one day's file gzip-compressed, and the transfer was cut off mid-way."""
    packed = gzip.compress(content, mtime=0)
    path = out.path("orders", f"orders_{when:%Y%m%d}.csv.gz")
    path.write_bytes(packed[: max(20, len(packed) // 2)])
    out.malformed("orders", path, rows)


# -- FX rates -------------------------------------------------------------------------------------
def _write_fx(rnd: random.Random, out: _Out, start: date, days: int) -> None:
    """Rates for every ordered currency pair, one `;`-delimited file per day; one day uses `,`."""
    drift = dict.fromkeys(CURRENCIES, Decimal(1))
    broken_day = days - 2
    for day in range(days):
        for c in ("EUR", "GBP", "JPY"):
            drift[c] *= Decimal(str(round(1 + rnd.uniform(-0.004, 0.004), 6)))
        stamp = _day_start(start, day) + timedelta(hours=16, seconds=rnd.randrange(600))
        rows = [
            {
                "rate_date": stamp.date().isoformat(),
                "base_currency": base,
                "quote_currency": quote,
                "rate": str(((BASE_FX[quote] * drift[quote]) / (BASE_FX[base] * drift[base])).quantize(RATE_PLACES)),
                "published_at": _ts(stamp),
            }
            for base, quote in itertools.permutations(CURRENCIES, 2)
        ]
        path = out.path("fx_rates", f"fx_{stamp:%Y%m%d}.csv")
        if day == broken_day:  # the vendor sent this day with the wrong delimiter
            _write_csv(path, FX_HEADER, rows, ",")
            out.malformed("fx_rates", path, len(rows))
        else:
            _write_csv(path, FX_HEADER, rows, ";")
            out.wrote("fx_rates", path, len(rows))


# -- clickstream ----------------------------------------------------------------------------------
def _ts_as_number(event: Row) -> None:
    event["event_ts"] = 1767225600


def _missing_session(event: Row) -> None:
    del event["session_id"]


def _unknown_field(event: Row) -> None:
    event["experiment"] = "checkout-b"


def _bad_event_type(event: Row) -> None:
    event["event_type"] = "hover"


def _too_many_products(event: Row) -> None:
    event["product_ids"] = [f"P{10_000 + i:05d}" for i in range(51)]


def _truncated_json(event: Row) -> None:
    """Marker only: the encoded line is cut in half (see `_click_line`)."""


_CLICK_DEFECTS: dict[str, Callable[[Row], None]] = {
    "ts_as_number": _ts_as_number,
    "missing_session_id": _missing_session,
    "unknown_field": _unknown_field,
    "bad_event_type": _bad_event_type,
    "too_many_product_ids": _too_many_products,
    "truncated_json": _truncated_json,
}


def _click_line(rnd: random.Random, out: _Out, event: Row, broken: bool) -> str:
    """The event as one NDJSON line; `broken`: with one or two problems."""
    if not broken:
        return msgspec.json.encode(event).decode()
    bad = dict(event)
    kinds = rnd.sample(sorted(_CLICK_DEFECTS), 2 if rnd.random() < TWO_PROBLEMS_RATE else 1)
    for kind in kinds:
        _CLICK_DEFECTS[kind](bad)
        out.problem("clickstream", kind)
    out.count("clickstream", "invalid_rows")
    text = msgspec.json.encode(bad).decode()
    return text[: len(text) // 2] if "truncated_json" in kinds else text


def _uuid4(rnd: random.Random) -> str:
    h = f"{rnd.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _ip(rnd: random.Random) -> str:
    """Addresses from the documentation ranges (RFC 5737, RFC 3849)."""
    if rnd.random() < 0.2:
        return f"2001:db8:{rnd.randrange(65_536):x}::{rnd.randrange(1, 65_536):x}"
    return f"{rnd.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rnd.randrange(1, 255)}"


def _session(rnd: random.Random, base: datetime, customers: list[Row], catalog: _Catalog) -> list[Row]:
    """One visit: a walk down the funnel page_view -> product_view -> ... -> purchase."""
    rand = rnd.random
    customer = customers[int(rand() * len(customers))]["customer_id"] if rand() < 0.6 else None
    session, device = f"{rnd.getrandbits(128):032x}", DEVICE.pick(rnd)
    os_name, ip = rnd.choice(OPERATING_SYSTEMS[device]), _ip(rnd)
    day, ms = f"{base:%Y-%m-%d}", int(rand() * (86_400 - 3_600) * 1_000)  # a visit ends before midnight
    referrer, stage = rnd.choice(REFERRERS), 0
    cart: list[str] = []
    events = []
    for step in range(EVENTS_PER_SESSION.pick(rnd)):
        if step:
            stage = max(1, min(4, stage + (rand() < 0.45)))
            ms += 5_000 + int(rand() * 235_000)
        event_type = EVENT_TYPES[stage]
        url, products = _page(rnd, event_type, catalog, cart)
        events.append(
            {
                "event_id": _uuid4(rnd),
                "event_ts": _clock(day, ms),
                "session_id": session,
                "customer_id": customer,
                "event_type": event_type,
                "page": {"url": url, "referrer": referrer},
                "device": {"type": device, "os": os_name},
                "product_ids": products,
                "ip_address": ip,
            }
        )
        referrer = url
        if event_type == "purchase":
            break
    return events


def _clock(day: str, ms: int) -> str:
    """`2026-01-05T10:15:00.123Z` from the day and milliseconds since its midnight."""
    seconds, ms = divmod(ms, 1_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{day}T{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"


def _page(rnd: random.Random, event_type: str, catalog: _Catalog, cart: list[str]) -> tuple[str, list[str]]:
    """The page an event happened on and the products it shows; add_to_cart adds one to `cart`."""
    if event_type == "page_view":
        return f"{SHOP}/c/{CATEGORIES[int(rnd.random() * len(CATEGORIES))]}", []
    if event_type == "product_view":
        product = catalog.pick(rnd)["product_id"]
        return f"{SHOP}/p/{product}", [product]
    if event_type == "add_to_cart":
        if len(cart) < 5:
            cart.append(catalog.pick(rnd)["product_id"])
        return f"{SHOP}/cart", list(cart)
    return (f"{SHOP}/checkout/complete" if event_type == "purchase" else f"{SHOP}/checkout"), list(cart)


def _write_clicks(
    rnd: random.Random, out: _Out, customers: list[Row], catalog: _Catalog, placed_per_day: list[int], start: date
) -> None:
    """About three events per order; two files a day (before and after noon), one at weekends."""
    for day, n_orders in enumerate(placed_per_day):
        base = _day_start(start, day)
        events: list[Row] = []
        while len(events) < max(10, EVENTS_PER_ORDER * n_orders):
            events.extend(_session(rnd, base, customers, catalog))
        events.sort(key=lambda e: str(e["event_ts"]))
        broken = out.to_break(rnd, "clickstream", len(events))
        noon = f"{base:%Y-%m-%d}T12"
        split = sum(1 for e in events if e["event_ts"] < noon) if base.weekday() < 5 else len(events)
        lines = [_click_line(rnd, out, e, i in broken) + "\n" for i, e in enumerate(events)]
        parts = [p for p in (lines[:split], lines[split:]) if p]
        for number, part in enumerate(parts, 1):
            path = out.path("clickstream", f"clicks_{base:%Y%m%d}_{number:02d}.ndjson")
            path.write_text("".join(part), encoding="utf-8")
            out.wrote("clickstream", path, len(part))


# -- fleet register (with the APIs: northwind_apis.py) ----------------------------------------------
FLEET_HEADER = (
    "asset_id", "license_plate", "state_code", "make", "model", "model_year", "depot", "odometer_km",
    "acquired_on", "updated_at",
)  # fmt: skip
DEPOTS = {"CA": "Oakland", "TX": "Dallas", "NY": "Newark", "WA": "Tacoma", "IL": "Joliet", "FL": "Orlando"}
VEHICLES = (
    ("Ford", "Transit 250"), ("Ford", "E-Transit"), ("Mercedes-Benz", "Sprinter 2500"), ("Ram", "ProMaster 2500"),
    ("Isuzu", "NPR-HD"), ("Chevrolet", "Express 2500"), ("Freightliner", "M2 106"),
)  # fmt: skip


def _plate(rnd: random.Random, state: str) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    abc = "".join(rnd.choice(letters) for _ in range(3))
    if state == "CA":
        return f"{rnd.randrange(1, 10)}{abc}{rnd.randrange(1000):03d}"
    if state == "NY":
        return f"{abc}-{rnd.randrange(10_000):04d}"
    return f"{abc}{rnd.randrange(10_000):04d}"


def _write_fleet(rnd: random.Random, out: _Out, n: int, start: date, days: int) -> None:
    """The fleet register: every vehicle on the first day, again every 7 days with more kilometres."""
    out.rows.setdefault("assets", 0)
    out.defects.setdefault("assets", dict.fromkeys(DEFECT_KINDS, 0))
    out.problems.setdefault("assets", {})
    vehicles: list[Row] = []
    for i in range(n):
        state = rnd.choice(sorted(DEPOTS))
        make, model = rnd.choice(VEHICLES)
        year = rnd.randrange(2015, 2026)
        vehicles.append(
            {
                "asset_id": f"V{i + 1:04d}",
                "license_plate": "" if i == n - 1 else _plate(rnd, state),  # the newest van is not registered yet
                "state_code": state,
                "make": make,
                "model": model,
                "model_year": year,
                "depot": DEPOTS[state],
                "odometer_km": rnd.randrange(2_000, 40_000) * (2026 - year),
                "acquired_on": date(year, rnd.randrange(1, 13), rnd.randrange(1, 29)).isoformat(),
                "updated_at": "",
            }
        )
    for day in range(0, days, 7):
        stamp = _day_start(start, day) + timedelta(hours=5)
        for v in vehicles:
            if day:
                v["odometer_km"] += rnd.randrange(300, 2_500)
            v["updated_at"] = _ts(stamp + timedelta(seconds=rnd.randrange(3_600)))
        path = out.path("assets", f"fleet_{stamp:%Y%m%d}.csv")
        _write_csv(path, FLEET_HEADER, vehicles, ",")
        out.wrote("assets", path, len(vehicles))
