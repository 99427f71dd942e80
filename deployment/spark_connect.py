"""The Spark Connect server of docker-compose.yml, in the foreground, as the cluster's driver.

`start-connect-server.sh` is `spark-daemon.sh submit SparkConnectServer`; the pyspark 4.2.0 wheel
ships neither script for a container's foreground, so this runs `spark-submit` directly, with the
driver program and the settings of the embedded server (resources/spark_server.py: the server's
driver, resources/connect_driver.py, where each client's session shares the compiled query code;
`LocalSpark.config()`: the jars of jars/pom.xml, Delta, S3A on AWS_ENDPOINT_URL).
The S3A credentials reach the JVM through its environment, never through its arguments.

    python deployment/spark_connect.py spark://spark-master:7077 [--conf key=value ...]
"""

from __future__ import annotations

import os
import socket
import sys

from medallion_assets.resources.spark_server import CONNECT_DRIVER, SPARK_HOME, LocalSpark, driver_python
from medallion_assets.settings import get_settings

PORT = 15002


def command(master: str, extra: list[str]) -> list[str]:
    settings = {
        **LocalSpark.of(get_settings()).config(cluster=True),
        "spark.connect.grpc.binding.address": "0.0.0.0",
        "spark.connect.grpc.binding.port": str(PORT),
        # Executors on the workers connect back to this container (compose passes its service name).
        "spark.driver.host": socket.gethostname(),
        "spark.driver.bindAddress": "0.0.0.0",
        "spark.log.level": "WARN",
        **driver_python(),
    }
    args = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master]
    args += ["--name", "medallion Spark Connect server"]
    for key, value in settings.items():
        args += ["--conf", f"{key}={value}"]
    return [*args, *extra, str(CONNECT_DRIVER)]


if __name__ == "__main__":
    argv = command(sys.argv[1], sys.argv[2:])
    os.execv(argv[0], argv)
