/* ---
description: The product catalog as of the latest extract.
owner: merchandising
--- */
SELECT product_id, name, category, list_price, currency, active, weight_kg, updated_at
FROM silver.products
