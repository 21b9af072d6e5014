/* ---
description: Customers with their first and latest order (PII columns keep their classes).
owner: crm-team
--- */
SELECT
    c.customer_id,
    c.first_name,
    c.last_name,
    c.email,
    c.phone,
    c.country,
    c.segment,
    c.marketing_opt_in,
    c.created_at,
    min(s.order_date) AS first_order_date,
    max(s.order_date) AS last_order_date,
    count(DISTINCT s.order_id) AS orders
FROM silver.customers AS c
LEFT JOIN gold.fact_sales AS s ON s.customer_id = c.customer_id
GROUP BY ALL
