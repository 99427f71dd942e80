"""Small Arrow <-> numpy conversions shared by the whole-column code."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S


def micros(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Timestamps as microseconds since the epoch; -1 for null (every Olist time is after 1970)."""
    return pc.fill_null(pc.cast(values, pa.int64()), -1).to_numpy()


def mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow column as a numpy mask, null counting as False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)
