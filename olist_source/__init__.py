"""The Olist source system simulator: generated or real Kaggle files, their history replayed into a
PostgreSQL database that changes as the business moves on. Used by the CLI, the tests and the
benchmark; the asset graph (medallion_assets) never imports it: it reads the source through
`medallion_assets.sources.olist_db`, as it would read any production database."""
