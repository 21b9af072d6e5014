"""The stream sequence of a JetStream message, read from its reply subject as nats-py builds it."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from lakestack.ingest.jetstream import _stream_sequence


@pytest.mark.parametrize(
    ("reply", "sequence"),
    [
        ("$JS.ACK.EVENTS.lakestack-events.1.42.7.1700000000000000000.3", 42),  # the v1 form: parsed here
        ("$JS.ACK.hub.ACCHASH.EVENTS.lakestack-events.1.43.8.1700000000000000000.0.tok", 43),  # with a domain
        ("$JS.ACK.hub.ACCHASH.EVENTS.lakestack-events.2.44.9.1700000000000000000.5", 44),
    ],
)
def test_stream_sequence_matches_nats_metadata(reply: str, sequence: int) -> None:
    message = Msg(_client=None, subject="events.e", reply=reply, data=b"{}")  # type: ignore[arg-type]
    assert _stream_sequence(message) == sequence == message.metadata.sequence.stream
