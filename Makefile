# The two commands of the README, and the steps they share.
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# The BigQuery emulator the tests sync to: a virtualenv of its own (its pins and its pytest plugin
# must not meet ours); its DuckDB finds the spatial extension under the HOME it runs with.
EMULATOR_VENV ?= .venv-bqemulator
EMULATOR_STAMP := $(EMULATOR_VENV)/.installed-bqemulator-1.4.0
EXTENSIONS := $(EMULATOR_VENV)/home/.duckdb/extensions/v1.5.5/linux_amd64

# Spark's extra jars (Delta Lake, S3A, the PostgreSQL JDBC driver), pinned in jars/pom.xml, copied
# into jars/lib/ by Maven (cached in ~/.m2; a mirror in ~/.m2/settings.xml is used if you have one).
JARS_STAMP := jars/lib/.installed-$(shell cksum jars/pom.xml | cut -d' ' -f1)
# The embedded Kafka broker's jars (Apache Kafka, pinned in kafka/pom.xml with what it needs at run
# time), copied into kafka/lib/ the same way.
KAFKA_STAMP := kafka/lib/.installed-$(shell cksum kafka/pom.xml | cut -d' ' -f1)

.PHONY: install jars kafka emulator quickstart test test-unit lint bench

# uv installs what pip resolves (the same versions), in under a third of the time: 63 s against
# 209 s from PyPI without a cache on these machines.
UV := uv==0.13.9

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(UV)
	$(VENV)/bin/uv pip install --quiet --python $(VENV)/bin/python -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

$(JARS_STAMP): jars/pom.xml
	rm -rf jars/lib
	mvn -q -B -f jars/pom.xml dependency:copy-dependencies -DexcludeTransitive=true -DoutputDirectory=lib
	touch $@

jars: $(JARS_STAMP)

# The class data sharing archive every Spark JVM of ours maps at start (medallion_assets/resources/
# class_archive.py): recorded once from a local session on the jars above, ~1 minute; made again when
# the jars or the virtualenv change. Without it Spark runs the same, its JVMs start slower.
CLASS_ARCHIVE := jars/lib/spark-classes.jsa

$(CLASS_ARCHIVE): $(STAMP) $(JARS_STAMP)
	$(VENV)/bin/medallion spark archive

$(KAFKA_STAMP): kafka/pom.xml
	rm -rf kafka/lib
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=lib
	touch $@

kafka: $(KAFKA_STAMP)

$(EMULATOR_STAMP):
	test -x $(EMULATOR_VENV)/bin/python || python3 -m venv $(EMULATOR_VENV)
	$(EMULATOR_VENV)/bin/pip install --quiet --disable-pip-version-check $(UV)
	$(EMULATOR_VENV)/bin/uv pip install --quiet --python $(EMULATOR_VENV)/bin/python \
		bqemulator==1.4.0 duckdb==1.5.5 duckdb-extension-spatial==1.5.5 numpy==2.4.6
	mkdir -p $(EXTENSIONS)
	ln -sf $$(realpath $(EMULATOR_VENV)/lib/python3*/site-packages/duckdb_extension_spatial/extensions/v1.5.5/spatial.duckdb_extension) $(EXTENSIONS)/
	touch $@

emulator: $(EMULATOR_STAMP)

install: $(STAMP) $(JARS_STAMP) $(CLASS_ARCHIVE) $(KAFKA_STAMP) $(EMULATOR_STAMP)

# The main job on embedded defaults: Olist data, a live PostgreSQL source, every layer; prints where to look.
quickstart: $(STAMP) $(JARS_STAMP) $(CLASS_ARCHIVE)
	$(VENV)/bin/medallion quickstart

# Lint, then every test (real PostgreSQL, real files; nothing mocked), on two workers: most of a
# test's time is latency (a JVM, a run, a sensor tick), so two workers on two cores finish sooner.
# TEST_WORKERS=0 runs them in this process, one after the other. The 30 slowest are listed at the
# end: where the suite's time goes, in every CI log.
TEST_WORKERS ?= 2
test: $(STAMP) $(JARS_STAMP) $(CLASS_ARCHIVE) $(KAFKA_STAMP) $(EMULATOR_STAMP) lint
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=30

# The unit tier alone (medallion_assets_tests/unit/): pure functions, specs, the asset graph, the CSV
# reader and writer, the generator; no PostgreSQL, no JVM, no emulator: well under a minute.
test-unit: $(STAMP)
	$(VENV)/bin/pytest medallion_assets_tests/unit -q -p no:xdist

lint: $(STAMP)
	$(VENV)/bin/ruff check medallion_assets olist_source medallion_assets_tests bench
	$(VENV)/bin/ruff format --check medallion_assets olist_source medallion_assets_tests bench

bench: $(STAMP) $(JARS_STAMP) $(CLASS_ARCHIVE)
	$(VENV)/bin/python bench/benchmark.py --scale $(or $(SCALE),1)
