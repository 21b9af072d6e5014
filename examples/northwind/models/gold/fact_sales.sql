/* ---
materialized: incremental
partition_by: order_date
incremental_on: [silver.orders, silver.fx_rates]
description: One row per order line with its amount in the order currency and in USD at the day's FX rate.
owner: analytics-engineering
--- */
WITH usd_rates AS (
    SELECT rate_date, base_currency, rate
    FROM silver.fx_rates
    WHERE quote_currency = 'USD'
),
lines AS (
    SELECT
        CAST(order_ts AS DATE) AS order_date,
        order_id,
        order_line,
        customer_id,
        product_id,
        status,
        channel,
        ship_country,
        currency,
        quantity,
        unit_price,
        CAST(quantity * unit_price AS DECIMAL(18, 2)) AS amount,
        order_ts,
        updated_at
    FROM silver.orders
)
SELECT
    lines.*,
    CASE WHEN lines.currency = 'USD' THEN CAST(1 AS DECIMAL(18, 8)) ELSE usd_rates.rate END AS usd_rate,
    CAST(lines.amount * CASE WHEN lines.currency = 'USD' THEN 1 ELSE usd_rates.rate END AS DECIMAL(18, 2))
        AS amount_usd,
    lines.status NOT IN ('cancelled', 'returned') AS is_revenue
FROM lines
ASOF LEFT JOIN usd_rates
    ON lines.currency = usd_rates.base_currency AND lines.order_date >= usd_rates.rate_date
