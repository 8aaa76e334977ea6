"""HTTP/2 (RFC 9113) for aioprefork: frames, HPACK, the connection state machine, ASGI streams."""

from __future__ import annotations

from typing import Final

# The `reason` labels HTTP/2 defences count in stats.rejected (metrics: requests_rejected_total),
# listed so each series starts at 0.
REJECTION_REASONS: Final = (
    "h2_continuation_flood",
    "h2_control_backlog",
    "h2_empty_frames",
    "h2_header_list_too_large",
    "h2_malformed",
    "h2_ping_flood",
    "h2_protocol",
    "h2_rapid_reset",
    "h2_refused_stream",
    "h2_send_timeout",
    "h2_settings_flood",
    "http2_off",
)
