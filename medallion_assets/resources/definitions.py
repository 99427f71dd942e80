"""The resources every layer shares, configured from the one settings object: the lake (and the IO
manager that reads and writes its Delta tables), Spark, the source database and the audit database.
The warehouse's IO manager belongs to the warehouse layer.

Secrets are configured as `dg.EnvVar`: a run reads the value from its environment, and the UI shows
the variable's name only.
"""

import dagster as dg
from pydantic import SecretStr

from medallion_assets.resources.delta_lake import DeltaLakeIOManager, LakeResource
from medallion_assets.resources.kafka import KafkaResource
from medallion_assets.resources.postgres import AuditDatabase, SourceDatabase
from medallion_assets.resources.reports import ReportFolder
from medallion_assets.resources.spark import SparkResource
from medallion_assets.resources.webhook import AlertWebhook
from medallion_assets.settings import Settings


def secret_from_environment(value: SecretStr | None, variable: str) -> str | None:
    """A secret setting as resource config: `dg.EnvVar(variable)` when it is set, else None."""
    return dg.EnvVar(variable) if value is not None else None


def resource_definitions(settings: Settings) -> dg.Definitions:
    spark = SparkResource(remote=settings.spark_remote)  # unset: the embedded server or local
    lakehouse = LakeResource(
        root_uri=settings.lake_uri,
        aws_endpoint_url=settings.aws_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret_from_environment(
            settings.aws_secret_access_key, "AWS_SECRET_ACCESS_KEY"
        ),
        aws_region=settings.aws_region,
    )
    return dg.Definitions(
        resources={
            "lake": DeltaLakeIOManager(spark=spark, lakehouse=lakehouse),
            "lakehouse": lakehouse,
            "spark": spark,
            "kafka": KafkaResource(bootstrap=settings.kafka_bootstrap),
            "source_db": SourceDatabase(
                database_url=secret_from_environment(settings.source_url, "MEDALLION_SOURCE_URL")
            ),
            "audit_db": AuditDatabase(
                database_url=secret_from_environment(settings.audit_url, "MEDALLION_AUDIT_URL")
            ),
            "reports": ReportFolder.of(settings),
            "alert_webhook": AlertWebhook(
                url=secret_from_environment(settings.alert_webhook_url, "MEDALLION_ALERT_WEBHOOK_URL"),
                on_success=settings.alert_on_success,
                ui_url=settings.ui_url,
            ),
        }
    )
