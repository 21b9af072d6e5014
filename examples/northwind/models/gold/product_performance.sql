/* ---
description: Units, revenue and rank per product, within its category.
owner: merchandising
--- */
WITH sales AS (
    SELECT
        product_id,
        count(DISTINCT order_id) AS orders,
        CAST(sum(quantity) AS BIGINT) AS units,
        sum(amount_usd) AS revenue_usd,
        min(order_date) AS first_sale_date,
        max(order_date) AS last_sale_date
    FROM gold.fact_sales
    WHERE is_revenue
    GROUP BY product_id
)
SELECT
    p.product_id,
    p.name,
    p.category,
    p.active,
    coalesce(s.orders, 0) AS orders,
    coalesce(s.units, 0) AS units,
    coalesce(s.revenue_usd, 0) AS revenue_usd,
    s.first_sale_date,
    s.last_sale_date,
    rank() OVER (PARTITION BY p.category ORDER BY coalesce(s.revenue_usd, 0) DESC, p.product_id) AS category_rank
FROM gold.dim_products AS p
LEFT JOIN sales AS s USING (product_id)
