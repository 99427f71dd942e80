"""The event streams are declared consistently: what the streaming lane relies on."""

from __future__ import annotations

from medallion_assets.specs.events import EVENT_STREAMS


def test_every_stream_is_declared_consistently() -> None:
    topics = [stream.topic for stream in EVENT_STREAMS.values()]
    assert len(set(topics)) == len(topics)
    for stream in EVENT_STREAMS.values():
        names = stream.column_names
        assert len(set(names)) == len(names), stream.name  # no payload field shadows the envelope
        assert stream.key in names and stream.partitions >= 1
        columns = {column.name: column for column in stream.columns}
        assert columns[stream.time_field].type == "timestamp" and columns[stream.id_field].required
        assert set(columns[stream.type_field].allowed or ()) == set(stream.event_types)
