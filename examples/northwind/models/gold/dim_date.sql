/* ---
description: One row per calendar day from the first to the last order.
--- */
SELECT
    CAST(d AS DATE) AS date_day,
    year(d) AS year,
    quarter(d) AS quarter,
    month(d) AS month,
    day(d) AS day_of_month,
    isodow(d) AS iso_day_of_week,
    strftime(d, '%A') AS day_name,
    strftime(d, '%Y-%m') AS year_month,
    isodow(d) IN (6, 7) AS is_weekend
FROM range(
    (SELECT CAST(min(order_ts) AS DATE) FROM silver.orders),
    (SELECT CAST(max(order_ts) AS DATE) + 1 FROM silver.orders),
    INTERVAL 1 DAY
) AS days(d)
