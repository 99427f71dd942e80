"""An unreachable source (nothing listens on the port) is a clear error that names the server and
never its password. (The live source against a real PostgreSQL: integration/test_source_system.py.)"""

from __future__ import annotations

import pytest

from medallion_assets.resources.postgres import SourceUnavailableError
from olist_source.system import source_status


def test_unreachable_source_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(SourceUnavailableError) as error:
        source_status("postgresql://medallion:s3cret-pw@127.0.0.1:9/olist")
    assert "s3cret-pw" not in str(error.value)
    assert "127.0.0.1:9" in str(error.value)
