"""The Spark Connect server's driver program, run by spark-submit (resources/spark_server.py, and
deployment/spark_connect.py for the compose stack's cluster) in place of Spark's own
`SparkConnectServer`: the same server (Spark's Connect plugin, started with the driver), with one
setting Spark's own main class forces the other way.

`spark.sql.artifact.isolation.enabled=false`: Spark's main class gives every Connect session its own
class loader, for the jars and classes a client may upload. Compiled query code is cached per class
loader, so every new session (each command, each run of the daemon) compiled every query shape
again: at scale 1 a day's build loaded ~2,800 classes and spent ~20 % of the JVM's CPU compiling
them. Our clients upload nothing, and all of them are this platform's: one class loader serves them.
"""

import sys

from pyspark.sql import SparkSession

SETTINGS = {
    "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
    "spark.sql.artifact.isolation.enabled": "false",
}

if __name__ == "__main__":
    builder = SparkSession.builder
    for key, value in SETTINGS.items():
        builder = builder.config(key, value)
    builder.getOrCreate()  # the plugin starts the server with the driver
    # Spark runs this program as a child of its JVM with a pipe as its input: the pipe closes when
    # the JVM ends (stopped, killed), and so does this process.
    sys.stdin.read()
