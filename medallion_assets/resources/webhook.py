"""Where run alerts go: a Slack or Discord incoming webhook."""

import dagster as dg
from pydantic import Field

from medallion_assets.settings import get_settings


class AlertWebhook(dg.ConfigurableResource):
    """The alert sensors' webhook. Its URL embeds a token: the code location sets it as `dg.EnvVar`,
    so the UI shows the variable's name only. A field left unset takes the settings' value."""

    url: str | None = Field(None, description="MEDALLION_ALERT_WEBHOOK_URL (unset everywhere: no alerts).")
    on_success: bool | None = Field(None, description="MEDALLION_ALERT_ON_SUCCESS: post succeeded runs too.")
    ui_url: str | None = Field(None, description="MEDALLION_UI_URL: where the alert links to the run.")

    def target(self) -> str | None:
        secret = get_settings().alert_webhook_url
        return self.url or (secret.get_secret_value() if secret else None)

    def posts_successes(self) -> bool:
        return self.on_success if self.on_success is not None else get_settings().alert_on_success

    def run_link_base(self) -> str:
        return self.ui_url or get_settings().ui_url
