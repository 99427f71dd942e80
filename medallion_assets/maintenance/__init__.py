"""Lake operations a Delta user expects, on every table of the lake:

- operations.py: time travel (history, rows at a version or time, restore) and maintenance
  (OPTIMIZE with Z-ordering, VACUUM with a retention never below Delta's safety minimum), each a
  function of a `Lake` and a Spark session;
- runs.py: which in-progress Dagster runs write a table (a restore waits for them; maintenance
  skips the table);
- jobs.py: the `lake_maintenance` job (one op per table, in the pool of the step that writes it)
  and its weekly schedule, built from the table specs.

`medallion lake history|show|restore` (cli.py) are the time-travel commands.
"""
