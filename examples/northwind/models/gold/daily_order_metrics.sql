/* ---
materialized: incremental
partition_by: order_date
incremental_on: [gold.fact_sales]
description: Orders, units and revenue per day and currency, also converted to USD at the day's rate.
owner: analytics-engineering
--- */
SELECT
    order_date,
    currency,
    count(DISTINCT order_id) AS orders,
    count(*) AS order_lines,
    CAST(sum(quantity) AS BIGINT) AS units,
    sum(amount) FILTER (WHERE is_revenue) AS revenue,
    sum(amount_usd) FILTER (WHERE is_revenue) AS revenue_usd,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled_lines,
    max(usd_rate) AS usd_rate
FROM gold.fact_sales
GROUP BY order_date, currency
