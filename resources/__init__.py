"""warmth's Dagster resources and the I/O they are built from: the DuckDB warehouse and its Parquet IO manager,
every model call (the `llm` caller, its cache, journal, remote-job ledger, backends, in-process models), the model
registry, the study's settings, toxicity scoring and model listings. Pure logic lives in `warmth_assets.lib`,
which this package may import and which never imports it (pyproject's import-linter layers)."""
