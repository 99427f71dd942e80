"""The source system as the pipeline sees it: the Olist PostgreSQL database, read only."""
