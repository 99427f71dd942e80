"""Run alerts: a webhook that refuses or is down is logged, never raised, and its token never shown.
(A real failed run reaching a webhook: integration/test_alerts.py.)"""

import logging

import pytest

from medallion_assets.automation.alerts import post_alert
from medallion_assets_tests.helpers import WEBHOOK_SECRET as SECRET
from medallion_assets_tests.helpers import Webhook


def test_a_webhook_that_refuses_or_is_down_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    refusing = Webhook(status=500)
    try:
        with caplog.at_level(logging.WARNING):
            assert post_alert(refusing.url, "hello") is False
    finally:
        refusing.close()
    assert "refused the alert: HTTP 500" in caplog.text
    with caplog.at_level(logging.WARNING):
        assert post_alert(refusing.url, "hello", timeout=2) is False  # closed now: unreachable
    assert "unreachable" in caplog.text
    assert SECRET not in caplog.text  # the URL's token is never logged
