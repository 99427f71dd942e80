"""Run tags every layer shares: a ground-floor module (it imports nothing of the project), so the
build, the automation and the audit can all read them without importing each other."""

# Dagster's own tags for a run over a range of partitions, or one partition (their documented
# names; test_structure.py checks them against Dagster's).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"

# Runs of `medallion build` (value: "cli", or the gold refresh run that started them).
BUILD_TAG = "medallion/build"
# The change dates "start..end" a chain of runs carries from bronze to gold.
CHANGES_TAG = "medallion/changes"
# What started a run: "source_changes", "daily_catch_up", "after <run id>".
TRIGGER_TAG = "medallion/trigger"

# Asset tag of the stream lane (the Kafka event tables): landed by the stream sensor's runs, left
# out of `medallion build`'s default selection (select them to build them: tag:medallion/lane=stream).
LANE_TAG = "medallion/lane"
STREAM_LANE = "stream"

# How many times a step of a run started by the automation is retried when a source or store is
# unreachable (resources/retries.py); runs without it (a person's, `medallion build`) fail at once.
TRANSIENT_RETRIES_TAG = "medallion/transient_retries"
