"""The frozen Config (every setting, declared once) and the per-consumer views built from it.

Consumers never hold the whole Config on a hot path: the HTTP protocol gets `HttpLimits`, the
maintenance decision gets `PoolPolicy`. Defaults name their source (Apache directive, RFC).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aioprefork.config.settings import Kind, SettingInfo, registry, setting

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _half_c(v: Mapping[str, Any]) -> int:
    return max(1, int(v["worker_connections"]) // 2)


def _max_spare(v: Mapping[str, Any]) -> int:
    c = int(v["worker_connections"])
    return max(c // 2 + 2 * c, int(v["min_spare_slots"]) + c + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    # --- app --------------------------------------------------------------------------------
    app: str = setting("", "app", "ASGI application as module:attribute", Kind.STR, cli=False)
    factory: bool = setting(
        False, "app", "APP is a factory: call it with no arguments to get the app", Kind.BOOL
    )
    app_dir: str = setting(
        ".", "app", "directory put first on sys.path before importing APP", Kind.STR
    )
    root_path: str = setting(
        "", "app", "ASGI root_path: the prefix this app is mounted under", Kind.STR
    )
    lifespan: str = setting(
        "auto",
        "app",
        "run the ASGI lifespan protocol: auto, on or off",
        Kind.CHOICE,
        choices=("auto", "on", "off"),
    )

    # --- binding ----------------------------------------------------------------------------
    bind: tuple[str, ...] = setting(
        (),
        "binding",
        "listen address: HOST:PORT, [::1]:PORT, unix:PATH or fd://N (repeatable); overrides --host/--port",
        Kind.LIST,
        flags=("--bind", "-b"),
    )
    host: str = setting(
        "127.0.0.1", "binding", "bind to this host (with --port) when no --bind is given", Kind.STR
    )
    port: int = setting(
        8000,
        "binding",
        "bind to this TCP port (with --host) when no --bind is given",
        Kind.INT,
        flags=("--port", "-p"),
        minimum=0,
    )
    backlog: int = setting(
        2048, "binding", "listen(2) backlog of each listener", Kind.INT, minimum=1
    )
    unix_socket_mode: int = setting(
        0o660, "binding", "permissions of Unix-socket listeners (octal)", Kind.OCTAL
    )

    # --- processes (Apache prefork/event MPM) -----------------------------------------------
    workers: int = setting(
        0,
        "processes",
        "worker processes started at boot (StartServers); 0 = serve in-process, for debugging",
        Kind.INT,
        flags=("--workers", "-w"),
        minimum=0,
        auto=lambda v: cpu_count(),
        auto_doc="cpu count",
    )
    min_workers: int = setting(1, "processes", "floor of active workers", Kind.INT, minimum=1)
    max_workers: int = setting(
        0,
        "processes",
        "ceiling of active workers",
        Kind.INT,
        minimum=1,
        auto=lambda v: max(2 * cpu_count(), int(v["workers"]), int(v["min_workers"])),
        auto_doc="2 x cpu count",
    )
    server_limit: int = setting(
        0,
        "processes",
        "ceiling of live worker processes, stopping ones included (ServerLimit)",
        Kind.INT,
        minimum=1,
        auto=lambda v: 2 * int(v["max_workers"]),
        auto_doc="2 x max_workers",
    )
    worker_connections: int = setting(
        1000,
        "processes",
        "connections one worker holds before it stops accepting (ThreadsPerChild)",
        Kind.INT,
        minimum=1,
    )
    balance_connections: bool = setting(
        True,
        "processes",
        "spread connections evenly over the workers: one holding more than its share lets its "
        "siblings accept, and ends keep-alive on its excess (after their next response)",
        Kind.BOOL,
    )
    min_spare_slots: int = setting(
        0,
        "processes",
        "server-wide free connection capacity floor (MinSpareThreads)",
        Kind.INT,
        minimum=0,
        auto=_half_c,
        auto_doc="worker_connections / 2",
    )
    max_spare_slots: int = setting(
        0,
        "processes",
        "server-wide free connection capacity ceiling (MaxSpareThreads)",
        Kind.INT,
        minimum=1,
        auto=_max_spare,
        auto_doc="C/2 + 2C (>= min + C + 1)",
    )
    max_requests_per_worker: int = setting(
        0,
        "processes",
        "recycle a worker after this many requests, 0 = never (MaxConnectionsPerChild)",
        Kind.INT,
        minimum=0,
    )
    max_requests_jitter: int = setting(
        0,
        "processes",
        "add random 0..N to max_requests_per_worker so workers do not recycle together",
        Kind.INT,
        minimum=0,
    )
    max_worker_memory: int = setting(
        0, "processes", "recycle a worker whose RSS exceeds this on two samples, 0 = off", Kind.SIZE
    )
    graceful_timeout: float = setting(
        30.0,
        "processes",
        "bound on draining in-flight requests at stop and graceful restart (GracefulShutdownTimeout)",
        Kind.DURATION,
    )
    heartbeat_timeout: float = setting(
        30.0,
        "processes",
        "a worker silent this long is hung: SIGABRT, then SIGKILL",
        Kind.DURATION,
        minimum=1.0,
    )
    boot_timeout: float = setting(
        60.0,
        "processes",
        "a worker not READY this long after fork failed to boot",
        Kind.DURATION,
        minimum=1.0,
    )
    pid_file: str = setting("", "processes", "write the master's pid here", Kind.STR)
    ctl_socket: str = setting(
        "",
        "processes",
        "control socket path for `aioprefork ctl` (default: beside the pid file, else /tmp/aioprefork-<port>.ctl)",
        Kind.STR,
    )
    daemon: bool = setting(
        False, "processes", "detach from the terminal (fork, setsid, fork, close stdio)", Kind.BOOL
    )
    user: str = setting("", "processes", "drop privileges to this user after binding", Kind.STR)
    group: str = setting("", "processes", "drop privileges to this group after binding", Kind.STR)

    # --- http (RFC 9110/9112; Apache Limit* directives) -------------------------------------
    limit_request_line: int = setting(
        8190, "http", "longest request line, else 414 (LimitRequestLine)", Kind.INT, minimum=64
    )
    limit_request_fields: int = setting(
        100, "http", "most header fields, else 431 (LimitRequestFields)", Kind.INT, minimum=1
    )
    limit_request_field_size: int = setting(
        8190, "http", "longest header field, else 431 (LimitRequestFieldSize)", Kind.INT, minimum=64
    )
    limit_request_body: int = setting(
        1 * GiB,
        "http",
        "largest request body, else 413; 0 = unlimited (LimitRequestBody)",
        Kind.SIZE,
    )
    max_keepalive_requests: int = setting(
        1000,
        "http",
        "requests per connection, 0 = unlimited (MaxKeepAliveRequests)",
        Kind.INT,
        minimum=0,
    )
    server_header: str = setting(
        "aioprefork", "http", "value of the Server response header; empty = none", Kind.STR
    )
    date_header: bool = setting(True, "http", "send a Date response header", Kind.BOOL)

    # --- timeouts ---------------------------------------------------------------------------
    keepalive_timeout: float = setting(
        5.0, "timeouts", "idle keep-alive connection lifetime (KeepAliveTimeout)", Kind.DURATION
    )
    header_timeout: float = setting(
        20.0,
        "timeouts",
        "the whole request head must arrive within this (RequestReadTimeout header=)",
        Kind.DURATION,
        minimum=0.01,
    )
    body_timeout: float = setting(
        60.0,
        "timeouts",
        "longest wait for the next piece of a request body (RequestReadTimeout body=)",
        Kind.DURATION,
        minimum=0.01,
    )
    write_timeout: float = setting(
        60.0,
        "timeouts",
        "longest wait for a client to read what we sent",
        Kind.DURATION,
        minimum=0.01,
    )

    # --- proxies ----------------------------------------------------------------------------
    forwarded_allow_ips: tuple[str, ...] = setting(
        ("127.0.0.1", "::1"),
        "proxies",
        "peers whose X-Forwarded-*, Forwarded and PROXY protocol are trusted (IPs, CIDRs, '*', 'unix')",
        Kind.NETWORKS,
    )
    proxy_headers: bool = setting(
        True,
        "proxies",
        "honour X-Forwarded-For/-Proto/-Host and Forwarded from trusted peers",
        Kind.BOOL,
    )
    proxy_protocol: bool = setting(
        False,
        "proxies",
        "expect a PROXY protocol v1/v2 header on every connection (HAProxy, AWS NLB)",
        Kind.BOOL,
    )

    # --- logging ----------------------------------------------------------------------------
    log_level: str = setting(
        "info",
        "logging",
        "error-log level",
        Kind.CHOICE,
        choices=("critical", "error", "warning", "info", "debug"),
    )
    log_config: str = setting(
        "",
        "logging",
        "logging configuration file (.json, .toml or .ini dictConfig/fileConfig)",
        Kind.STR,
    )
    access_log: bool = setting(True, "logging", "write an access log line per request", Kind.BOOL)
    access_log_format: str = setting(
        "combined",
        "logging",
        "'combined', 'common' or an Apache LogFormat string (%h %l %u %t \"%r\" %>s %b ...)",
        Kind.STR,
    )

    # --- metrics ----------------------------------------------------------------------------
    metrics: bool = setting(
        True,
        "metrics",
        "serve /metrics, /healthz, /readyz and /server-status from the master",
        Kind.BOOL,
    )
    metrics_bind: str = setting(
        "127.0.0.1:9464", "metrics", "address of the master's metrics listener", Kind.STR
    )

    # --- tls --------------------------------------------------------------------------------
    ssl_certfile: str = setting("", "tls", "PEM certificate chain; enables TLS", Kind.STR)
    ssl_keyfile: str = setting("", "tls", "PEM private key", Kind.STR)
    ssl_keyfile_password: str = setting("", "tls", "password of the private key", Kind.STR)
    ssl_ca_certs: str = setting("", "tls", "CA bundle to verify client certificates", Kind.STR)
    ssl_ciphers: str = setting("TLSv1.2:!aNULL:!eNULL", "tls", "OpenSSL cipher list", Kind.STR)
    ssl_cert_reqs: str = setting(
        "none",
        "tls",
        "client certificates: none, optional or required",
        Kind.CHOICE,
        choices=("none", "optional", "required"),
    )

    # --- websocket --------------------------------------------------------------------------
    ws: str = setting(
        "auto",
        "websocket",
        "WebSocket support: auto or none",
        Kind.CHOICE,
        choices=("auto", "none"),
    )
    ws_max_size: int = setting(16 * MiB, "websocket", "largest WebSocket message", Kind.SIZE)
    ws_max_queue: int = setting(
        32, "websocket", "incoming messages queued before reading pauses", Kind.INT, minimum=1
    )
    ws_ping_interval: float = setting(
        20.0, "websocket", "send a ping this often; 0 = never", Kind.DURATION
    )
    ws_ping_timeout: float = setting(
        20.0, "websocket", "close when a pong does not come within this", Kind.DURATION
    )
    ws_per_message_deflate: bool = setting(
        True, "websocket", "negotiate permessage-deflate", Kind.BOOL
    )

    # --- http2 ------------------------------------------------------------------------------
    http2: str = setting(
        "auto",
        "http2",
        "HTTP/2: auto (h2 by ALPN on TLS, h2c by prior knowledge on plain listeners), "
        "tls (ALPN only) or off",
        Kind.CHOICE,
        choices=("auto", "tls", "off"),
    )
    h2_max_session_streams: int = setting(
        100,
        "http2",
        "streams one HTTP/2 connection may have open at once (Apache H2MaxSessionStreams)",
        Kind.INT,
        minimum=1,
    )
    h2_window_size: int = setting(
        65535,
        "http2",
        "request body bytes a stream may send before the app reads them (Apache H2WindowSize)",
        Kind.SIZE,
        minimum=1,
    )
    h2_max_frame_size: int = setting(
        16384,
        "http2",
        "largest HTTP/2 frame payload accepted (16KiB to 16MiB-1, RFC 9113 6.5.2)",
        Kind.SIZE,
        minimum=16384,
    )
    h2_max_header_list_size: int = setting(
        65536,
        "http2",
        "largest decoded request header list, names and values plus 32 per field",
        Kind.SIZE,
        minimum=1024,
    )

    def binds(self) -> tuple[str, ...]:
        """The listen addresses: --bind when given, else host:port."""
        if self.bind:
            return self.bind
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (f"{host}:{self.port}",)

    @property
    def tls(self) -> bool:
        return bool(self.ssl_certfile)


SETTINGS: Final[tuple[SettingInfo, ...]] = registry(Config)
BY_NAME: Final[Mapping[str, SettingInfo]] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class H2Limits:
    """What one HTTP/2 connection needs (the h2_* settings), bound once per worker."""

    cleartext: bool = True  # h2c by prior knowledge on plain listeners (http2 = "auto")
    max_streams: int = 100
    window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 65536

    @classmethod
    def from_config(cls, c: Config) -> H2Limits | None:
        """None when HTTP/2 is off: a preface is refused, ALPN offers http/1.1 only."""
        if c.http2 == "off":
            return None
        return cls(
            cleartext=c.http2 == "auto",
            max_streams=c.h2_max_session_streams,
            window_size=min(c.h2_window_size, 2**31 - 1),
            max_frame_size=max(16384, min(c.h2_max_frame_size, 2**24 - 1)),
            max_header_list_size=c.h2_max_header_list_size,
        )


@dataclass(frozen=True, slots=True)
class WsLimits:
    """What one WebSocket connection needs (the ws_* settings), bound once per worker."""

    max_size: int = 16 * MiB
    max_queue: int = 32
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    per_message_deflate: bool = True

    @classmethod
    def from_config(cls, c: Config) -> WsLimits | None:
        """None when WebSocket support is off (`ws = "none"`): upgrades are served as plain HTTP."""
        if c.ws == "none":
            return None
        return cls(
            max_size=c.ws_max_size,
            max_queue=c.ws_max_queue,
            ping_interval=c.ws_ping_interval,
            ping_timeout=c.ws_ping_timeout,
            per_message_deflate=c.ws_per_message_deflate,
        )


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one HTTP connection needs to know, bound once per worker (not per request)."""

    limit_request_line: int = 8190
    limit_request_fields: int = 100
    limit_request_field_size: int = 8190
    limit_request_body: int = 1 * GiB
    max_keepalive_requests: int = 1000
    keepalive_timeout: float = 5.0
    header_timeout: float = 20.0
    body_timeout: float = 60.0
    write_timeout: float = 60.0
    root_path: str = ""
    server_header: str = "aioprefork"
    date_header: bool = True
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    proxy_headers: bool = True
    proxy_protocol: bool = False
    access_log: bool = True
    access_log_format: str = "combined"
    high_water: int = 64 * KiB  # pause reading / writing above this (uvicorn and asyncio default)
    websocket: WsLimits | None = WsLimits()  # None: ws = "none", no upgrades
    http2: H2Limits | None = H2Limits()  # None: http2 = "off"

    @classmethod
    def from_config(cls, c: Config) -> HttpLimits:
        return cls(
            limit_request_line=c.limit_request_line,
            limit_request_fields=c.limit_request_fields,
            limit_request_field_size=c.limit_request_field_size,
            limit_request_body=c.limit_request_body,
            max_keepalive_requests=c.max_keepalive_requests,
            keepalive_timeout=c.keepalive_timeout,
            header_timeout=c.header_timeout,
            body_timeout=c.body_timeout,
            write_timeout=c.write_timeout,
            root_path=c.root_path,
            server_header=c.server_header,
            date_header=c.date_header,
            forwarded_allow_ips=c.forwarded_allow_ips,
            proxy_headers=c.proxy_headers,
            proxy_protocol=c.proxy_protocol,
            access_log=c.access_log,
            access_log_format=c.access_log_format,
            websocket=WsLimits.from_config(c),
            http2=H2Limits.from_config(c),
        )


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """What the maintenance decision needs (SPEC section 3)."""

    workers: int
    min_workers: int
    max_workers: int
    server_limit: int
    worker_connections: int
    min_spare_slots: int
    max_spare_slots: int
    heartbeat_timeout: float = 30.0
    graceful_timeout: float = 30.0
    boot_timeout: float = 60.0
    max_requests_per_worker: int = 0
    max_requests_jitter: int = 0
    max_worker_memory: int = 0

    @classmethod
    def from_config(cls, c: Config) -> PoolPolicy:
        return cls(
            workers=c.workers,
            min_workers=c.min_workers,
            max_workers=c.max_workers,
            server_limit=c.server_limit,
            worker_connections=c.worker_connections,
            min_spare_slots=c.min_spare_slots,
            max_spare_slots=c.max_spare_slots,
            heartbeat_timeout=c.heartbeat_timeout,
            graceful_timeout=c.graceful_timeout,
            boot_timeout=c.boot_timeout,
            max_requests_per_worker=c.max_requests_per_worker,
            max_requests_jitter=c.max_requests_jitter,
            max_worker_memory=c.max_worker_memory,
        )
