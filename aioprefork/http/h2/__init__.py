"""HTTP/2 (RFC 9113) for aioprefork: frames, HPACK, the connection state machine, ASGI streams."""

from __future__ import annotations

from typing import Final

from aioprefork.channel.messages import H2_REJECTION_REASONS

# The `reason` labels HTTP/2 defences count in stats.rejected (metrics: requests_rejected_total),
# kept with the channel's other label sets so the metrics need not import the engine.
REJECTION_REASONS: Final = H2_REJECTION_REASONS
