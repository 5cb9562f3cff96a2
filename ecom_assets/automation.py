"""Which named job refreshes an asset, declared on the asset as a tag.

Operational assets (clean tables, features, churn scores, the risk list, segments) carry
`REFRESH_PER_DROP`: `drop_refresh_job` rebuilds them after every drop (requested by
`drop_refresh_sensor`). The analytical and monitoring reports carry `REFRESH_DAILY`:
`daily_refresh_job` rebuilds them once a day (06:00 UTC) when new data arrived since its last run,
so a drop becomes a fresh churn list without also recomputing eight reports over the whole history.

Tags rather than AutomationConditions: declarative automation launches its runs as
`__ASSET_JOB`, and the Runs page could not tell a drop's refresh from the daily one; the jobs
(wiring, `ecom_assets/jobs.py`) select their assets by this tag, so a domain declares membership
without importing the wiring.
"""

REFRESH_TAG = "ecom/refresh"
REFRESH_PER_DROP = {REFRESH_TAG: "per_drop"}
REFRESH_DAILY = {REFRESH_TAG: "daily"}
# the training set and the model: in the first drop refresh while no model exists (trigger `initial`),
# afterwards only on purpose (`churn_retrain_job`: retrain_sensor, `ecom-assets run --retrain`, the UI) or
# while the latest version could not be trained (trigger `more_history`: retrain_sensor, `ecom-assets run`)
REFRESH_FIRST_MODEL = {REFRESH_TAG: "first_model"}
DAILY_CRON = "0 6 * * *"
