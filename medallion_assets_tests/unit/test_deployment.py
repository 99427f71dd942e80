"""The deployment files (docker-compose.yml, .env.example, deployment/) hold together, checked
without a Docker engine: the file validates, the project's services get the environment settings.py
reads and reach services that exist, every dependency waits for a health check, host ports do not
collide, images are pinned, the image installs pyproject.toml's pins and jars/pom.xml's jars, and
dagster.yaml is a valid instance configuration."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from medallion_assets.resources.instance import WRITTEN_BY_US, instance_yaml
from medallion_assets.settings import Settings, get_settings
from medallion_assets_tests.compose import COMPOSE, ENV_EXAMPLE, VARIABLE, env_file, environment, services
from medallion_assets_tests.helpers import REPO

DEPLOYMENT = REPO / "deployment"
DOCKERFILE = DEPLOYMENT / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
POM = "{http://maven.apache.org/POM/4.0.0}"

DAGSTER_SERVICES = ("dagster-code", "dagster-webserver", "dagster-daemon")
S3 = {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
# What a project service must be given to reach the stack (the rest of settings.py has defaults).
INSTANCE = S3 | {"DAGSTER_PG_URL"}  # the Dagster instance and its compute logs on MinIO
NEEDS = {
    "dagster-code": INSTANCE
    | {"MEDALLION_LAKE_URI", "SPARK_REMOTE", "MEDALLION_SOURCE_URL", "MEDALLION_AUDIT_URL"}
    | {"MEDALLION_KAFKA_BOOTSTRAP", "MEDALLION_WAREHOUSE"},
    "dagster-webserver": INSTANCE,
    "dagster-daemon": INSTANCE,
    "spark-connect": S3,
    "spark-worker": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
}
BROWSER_URLS = {"MEDALLION_UI_URL"}  # where a person opens the UI: the host, not a service
SPARK_DAEMON_VARIABLES = {"SPARK_WORKER_CORES", "SPARK_WORKER_MEMORY"}  # read by Spark's own scripts


def referenced_variables() -> dict[str, set[str]]:
    """Every variable the compose file interpolates -> its operators ('', ':-', ':?', ...)."""
    found: dict[str, set[str]] = {}
    for match in VARIABLE.finditer(COMPOSE.read_text()):
        if match[0] != "$$":
            found.setdefault(match["braced"] or match["named"], set()).add(match["op"] or "")
    return found


def project_services() -> list[str]:
    """The services running the project image (deployment/Dockerfile, target `project`)."""
    return [
        name
        for name, service in services().items()
        if (build := service.get("build")) and build.get("target") == "project"
    ]


def dagster_yaml() -> dict[str, Any]:
    return yaml.safe_load((DEPLOYMENT / "dagster.yaml").read_text())


def env_references(config: Any) -> set[str]:
    """The variables a Dagster config names (`{env: NAME}`)."""
    if isinstance(config, dict):
        own = {config["env"]} if set(config) == {"env"} else set()
        return own.union(*(env_references(value) for value in config.values()))
    if isinstance(config, list):
        return set().union(*(env_references(value) for value in config))
    return set()


def pins() -> dict[str, str]:
    """pyproject.toml's dependencies, name -> version (each must be pinned with ==)."""
    found = {}
    for requirement in PYPROJECT["project"]["dependencies"]:
        name, _, version = re.sub(r"\[.*?\]", "", requirement).partition("==")
        assert version, f"{requirement}: not pinned with =="
        found[name.strip().lower()] = version.strip()
    return found


def pom_versions(path: Path) -> dict[str, str]:
    """A pom's dependencies, artifactId -> version, with its properties resolved."""
    root = ET.parse(path).getroot()
    found = root.find(f"{POM}properties")
    properties = {p.tag.removeprefix(POM): p.text or "" for p in ([] if found is None else found)}
    return {
        d.findtext(f"{POM}artifactId", ""): re.sub(
            r"\$\{([\w.]+)\}", lambda m: properties[m[1]], d.findtext(f"{POM}version", "")
        )
        for d in root.iter(f"{POM}dependency")
    }


def test_compose_file_validates(tmp_path: Path) -> None:
    """Debian's docker-compose (1.29, no daemon needed) validates the file against the Compose
    schema with .env.example's values; without them, the required secrets stop it."""
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed: .ci/run installs Debian's docker-compose")
        pytest.skip(
            "docker-compose is not installed (apt-get install --no-install-recommends docker-compose)"
        )
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    command = [binary, "--project-directory", str(REPO), "-f", str(COMPOSE), "--profile", "bigquery"]
    ok = subprocess.run(
        [*command, "--env-file", str(ENV_EXAMPLE), "config", "-q"], env=env, capture_output=True
    )
    assert ok.returncode == 0, ok.stderr.decode()
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = subprocess.run(
        [*command, "--env-file", str(empty), "config", "-q"], env=env, capture_output=True
    )
    assert missing.returncode != 0 and b"PASSWORD" in missing.stderr, missing.stderr.decode()


def test_every_variable_is_in_env_example_and_no_secret_has_a_default() -> None:
    referenced = referenced_variables()
    listed = env_file(ENV_EXAMPLE)
    assert set(referenced) - set(listed) == set(), ".env.example lacks variables the compose file uses"
    pass_through = {key for name in services() for key, value in environment(name).items() if value is None}
    assert pass_through <= set(env_file(ENV_EXAMPLE, commented=True)), ".env.example lacks optional variables"
    secrets = {name for name in referenced if re.search("PASSWORD|SECRET", name)}
    assert secrets, "no secret found: the pattern no longer matches the file"
    for name in secrets:
        assert referenced[name] == {":?"}, f"{name}: required (${{{name}:?...}}), never a default in the file"
        assert listed[name].startswith("change-me"), f"{name}: .env.example holds a placeholder only"


def test_project_services_get_the_settings_environment() -> None:
    """Each project service gets only variables settings.py declares (or dagster.yaml, or Spark's
    scripts read), every one it needs, and addresses naming services of the file."""
    declared = {field.validation_alias for field in Settings.model_fields.values()}
    known = declared | env_references(dagster_yaml()) | SPARK_DAEMON_VARIABLES
    assert set(NEEDS) <= set(project_services())
    for name in project_services():
        env = environment(name)
        assert set(env) - known == set(), f"{name}: variables nothing reads"
        assert NEEDS.get(name, set()) - {key for key, value in env.items() if value} == set(), name
        for key, value in env.items():
            if key == "MEDALLION_KAFKA_BOOTSTRAP":
                hosts = [server.rpartition(":")[0] for server in (value or "").split(",")]
            elif value and "://" in value and not value.startswith("s3://") and key not in BROWSER_URLS:
                hosts = [urlsplit(value).hostname]
            else:
                continue
            assert set(hosts) <= set(services()), f"{name}: {key} names no service ({hosts})"


def test_settings_read_from_the_compose_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment("dagster-code")
    for key, value in env.items():
        if value is not None:
            monkeypatch.setenv(key, value)
    settings = get_settings()
    assert settings.lake_uri.startswith("s3://")
    assert settings.spark_remote == "sc://spark-connect:15002"
    instance_yaml(settings, Path("/opt/dagster/home"))  # DAGSTER_PG_URL names the psycopg2 driver
    # Each URL's database, user and password are the ones the init script creates.
    postgres = environment("postgres")
    for key, prefix in {
        "MEDALLION_SOURCE_URL": "SOURCE",
        "DAGSTER_PG_URL": "DAGSTER",
        "MEDALLION_AUDIT_URL": "AUDIT",
    }.items():
        url = urlsplit(env[key] or "")
        assert (url.path.lstrip("/"), url.username, url.password) == (
            postgres[f"{prefix}_DB_NAME"],
            postgres[f"{prefix}_DB_USER"],
            postgres[f"{prefix}_DB_PASSWORD"],
        ), key
    init = (DEPLOYMENT / "postgres-init" / "10-databases.sh").read_text()
    for prefix in ("SOURCE", "DAGSTER", "AUDIT"):
        assert f'create "${prefix}_DB_NAME" "${prefix}_DB_USER" "${prefix}_DB_PASSWORD"' in init
    # The lake's and the compute logs' buckets are made by the mc job, for the project's key.
    job = environment("minio-init")
    script = " ".join(services()["minio-init"]["command"])
    for bucket in (urlsplit(settings.lake_uri).hostname, env["DAGSTER_COMPUTE_LOGS_BUCKET"]):
        assert f"mc mb --ignore-existing stack/{bucket}\n" in script
    assert job["LAKE_ACCESS_KEY"] == env["AWS_ACCESS_KEY_ID"]
    assert job["LAKE_SECRET_KEY"] == env["AWS_SECRET_ACCESS_KEY"]


def test_workspace_loads_the_code_service() -> None:
    workspace = yaml.safe_load((DEPLOYMENT / "workspace.yaml").read_text())
    [location] = workspace["load_from"]
    server = location["grpc_server"]
    command = services()[server["host"]]["command"]
    assert command[:3] == ["dagster", "api", "grpc"]
    assert command[command.index("--port") + 1] == str(server["port"])
    assert command[command.index("--module-name") + 1] == PYPROJECT["tool"]["dagster"]["module_name"]
    assert server["location_name"] == PYPROJECT["tool"]["dagster"]["code_location_name"]


def test_every_dependency_waits_for_a_health_check() -> None:
    jobs = set()
    for name, service in services().items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on with conditions"
        for target, condition in depends_on.items():
            assert target in services(), f"{name} depends on {target}, not a service"
            if condition.get("condition") == "service_completed_successfully":
                jobs.add(target)
            else:
                assert condition.get("condition") == "service_healthy", f"{name} -> {target}"
    for name, service in services().items():
        if name in jobs:
            assert service.get("restart") == "no", f"{name}: a one-shot job is not restarted"
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no health check"


def test_published_ports_do_not_collide() -> None:
    published: list[str] = []
    for name, service in services().items():
        for port in service.get("ports", []):
            host, _, _container = str(port).rpartition(":")
            address, _, host_port = host.rpartition(":")
            assert address == "127.0.0.1" and host_port.isdigit(), f"{name}: {port} on loopback, a fixed port"
            published.append(host_port)
    assert [port for port, count in Counter(published).items() if count > 1] == []
    worker = services()["spark-worker"]  # scales with --scale: no fixed name, no host port
    assert "ports" not in worker and "container_name" not in worker


def external_images() -> dict[str, str]:
    """Where -> image, for the compose file's pulled images and the Dockerfile's bases."""
    images = {name: s["image"] for name, s in services().items() if "build" not in s}
    stages: set[str] = set()
    for line in DOCKERFILE.read_text().splitlines():
        if m := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            if m[1] not in stages:
                images[f"Dockerfile: {line}"] = m[1]
            stages.add(m[2] or "")
    return images


def test_images_are_pinned_by_tag() -> None:
    images = external_images()
    assert any(where.startswith("Dockerfile") for where in images) and "kafka" in images
    for where, image in images.items():
        name, _, tag = image.rpartition("/")[2].partition(":")
        assert tag and tag != "latest" and not tag.startswith("$"), f"{where}: {image} is not pinned"
    kafka = pom_versions(REPO / "kafka" / "pom.xml")["kafka_2.13"]
    assert images["kafka"] == f"apache/kafka:{kafka}", "the broker of the embedded lane's version"
    for name in project_services():
        assert services()[name]["image"] == f"medallion_assets:{PYPROJECT['project']['version']}"


def test_the_image_installs_pyprojects_pins_and_poms_jars() -> None:
    dockerfile = DOCKERFILE.read_text()
    project_stage = dockerfile.split(" AS project")[1].split("\nFROM ")[0]
    install = re.search(r"RUN pip install \.(.*)", project_stage)
    assert install, "the project stage installs the project itself (pip install .)"
    assert "COPY pyproject.toml" in project_stage
    pinned = pins()
    extras = dict(re.findall(r'"?([\w-]+)==([\w.]+)"?', install[1]))
    for name, version in extras.items():  # anything beside the project: our pin, or the integrations'
        assert version == pinned.get(name, pinned["dagster-postgres"]), f"{name}=={version}"
    # The BigQuery emulator's virtualenv has the Makefile's pins.
    makefile = (REPO / "Makefile").read_text()
    for pin in re.findall(r"(?:bqemulator|duckdb[\w-]*|numpy)==[\w.]+", makefile):
        assert pin in dockerfile.split(" AS bigquery-emulator")[1], pin
    # Maven fetches exactly the poms' jars (the same commands as the Makefile's).
    for pom in ("jars", "kafka"):
        assert f"COPY {pom}/pom.xml" in dockerfile and f"mvn -q -B -f {pom}/pom.xml" in dockerfile
    jars = pom_versions(REPO / "jars" / "pom.xml")
    spark = pinned["pyspark"]
    assert jars[f"delta-spark_{spark.rsplit('.', 1)[0]}_2.13"] == pinned["delta-spark"]
    assert jars["spark-sql-kafka-0-10_2.13"] == spark
    # The Spark cluster runs the project image: its Spark is the pinned pyspark's.
    assert {"spark-master", "spark-worker", "spark-connect"} <= set(project_services())


def test_spark_connect_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """deployment/spark_connect.py starts the Connect server on the master of the file, with the
    jars folder the image fills, S3A on the service's endpoint and the embedded server's driver
    program (sessions sharing compiled code), run by the image's Python."""
    (tmp_path / "delta-spark_4.2_2.13-4.4.0.jar").touch()
    for key, value in environment("spark-connect").items():
        monkeypatch.setenv(key, value or "")
    monkeypatch.setenv("MEDALLION_SPARK_JARS", str(tmp_path))
    spec = importlib.util.spec_from_file_location("spark_connect", DEPLOYMENT / "spark_connect.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    compose_command = services()["spark-connect"]["command"]
    master = compose_command[2]
    argv = " ".join(module.command(master, compose_command[3:]))
    master_command = services()["spark-master"]["command"]
    host, port = (
        master_command[master_command.index("--host") + 1],
        master_command[master_command.index("--port") + 1],
    )
    assert master == f"spark://{host}:{port}"
    assert f"spark.jars={tmp_path}/delta-spark_4.2_2.13-4.4.0.jar" in argv
    assert "spark.hadoop.fs.s3a.endpoint=http://minio:9000" in argv
    assert argv.endswith(f"spark.driver.host=spark-connect --driver-memory 2g {module.CONNECT_DRIVER}")
    assert f"spark.pyspark.driver.python={sys.executable}" in argv
    assert (
        f"spark.connect.grpc.binding.port={urlsplit(environment('dagster-code')['SPARK_REMOTE'] or '').port}"
        in argv
    )


def test_dagster_yaml_is_a_valid_instance_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes import class_from_code_pointer

    assert not (DEPLOYMENT / "dagster.yaml").read_text().startswith(WRITTEN_BY_US), (
        "medallion would rewrite it"
    )
    config, _ = dagster_instance_config(str(DEPLOYMENT))  # the instance schema, the queue and pools
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    # Every variable it reads is given to every Dagster service.
    for name in DAGSTER_SERVICES:
        assert env_references(config) - set(environment(name)) == set(), name
        assert services()[name]["image"] == services()["dagster-code"]["image"]
    for key, value in environment("dagster-code").items():
        monkeypatch.setenv(key, value or "")
    for section in ("run_storage", "event_log_storage", "schedule_storage", "run_coordinator"):
        klass = class_from_code_pointer(config[section]["module"], config[section]["class"])
        result = process_config(klass.config_type(), config[section].get("config") or {})
        assert result.success, (section, result.errors)


def test_compute_logs_config_is_dagster_aws_s3() -> None:
    """The S3 compute log manager's config, as dagster-aws validates it."""
    from dagster._config import validate_config
    from dagster._serdes import class_from_code_pointer

    section = dagster_yaml()["compute_logs"]
    klass = class_from_code_pointer(section["module"], section["class"])
    result = validate_config(klass.config_type(), section["config"])
    assert result.success, result.errors
    assert section["config"]["endpoint_url"] == {"env": "AWS_ENDPOINT_URL"}
