/* ---
description: The delivery fleet with each vehicle's market value from the vehicle-valuation API (the vmv lookup); null until a vehicle is registered and looked up.
owner: logistics
--- */
SELECT
  a.asset_id,
  a.license_plate,
  a.state_code,
  a.make,
  a.model,
  a.model_year,
  a.depot,
  a.odometer_km,
  CAST(v.value_usd AS BIGINT) AS value_usd,
  v.fetched_at AS valued_at
FROM silver.assets AS a
LEFT JOIN _lakestack.lookup_vmv AS v
  ON a.license_plate = v.license_plate AND a.state_code = v.state_code
