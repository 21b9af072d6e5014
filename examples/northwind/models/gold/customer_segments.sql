/* ---
description: Recency, frequency and monetary value per customer, and the segment they put the customer in.
owner: marketing-analytics
--- */
WITH rfm AS (
    SELECT
        customer_id,
        max(order_date) AS last_order_date,
        count(DISTINCT order_id) AS frequency,
        sum(amount_usd) AS monetary_usd
    FROM gold.fact_sales
    WHERE is_revenue
    GROUP BY customer_id
),
scored AS (
    SELECT
        *,
        (SELECT max(order_date) FROM gold.fact_sales) - last_order_date AS recency_days,
        ntile(4) OVER (ORDER BY monetary_usd, customer_id) AS monetary_quartile
    FROM rfm
)
SELECT
    customer_id,
    last_order_date,
    recency_days,
    frequency,
    monetary_usd,
    monetary_quartile,
    CASE
        WHEN frequency >= 3 AND monetary_quartile = 4 THEN 'champion'
        WHEN frequency >= 2 THEN 'loyal'
        WHEN recency_days > 7 THEN 'at_risk'
        ELSE 'new'
    END AS segment
FROM scored
