"""The Dagster code location: every layer's assets, checks, resources and automation meet here.

Layers register themselves as they are built (bronze, silver, gold, quality, automation); the
source system they read is managed by the `medallion source` commands.
"""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions()
