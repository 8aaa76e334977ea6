"""Pure wire helpers below the connection (internal): RFC 9112 framing checks, the request target,
response heads and chunks, flow control, bounded memos, PROXY protocol and forwarded headers, the
access-log line. They import nothing above them (tests/unit/test_layers.py).
"""
