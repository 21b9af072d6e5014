"""Contract texts shared by tests (a module, so fixtures of several files can import it)."""

ORDERS = """\
source: orders
version: 1
file: {pattern: "orders_{date:%Y%m%d}.csv", format: csv}
columns:
  - {name: order_id, type: string, nullable: false, regex: "^ORD-[0-9]{4}$"}
  - {name: qty, type: integer, nullable: false, min: 1, max: 100}
  - {name: price, type: "decimal(8,2)", min: 0}
  - {name: currency, type: string, enum: [USD, EUR]}
  - {name: order_ts, type: timestamp}
  - {name: paid, type: boolean}
  - {name: ship_date, type: date}
  - {name: weight, type: double}
  - {name: note, type: string, min_length: 2, max_length: 10}
"""
