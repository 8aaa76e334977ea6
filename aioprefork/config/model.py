"""The frozen Config (every setting, declared once) and the per-consumer views built from it.

Consumers never hold the whole Config on a hot path: the HTTP protocol gets `HttpLimits`, the
maintenance decision gets `PoolPolicy` (docs/architecture.md#configuration). A view's fields
take their values and defaults from the settings they are named after, so a setting is still
declared once. Defaults name their source (Apache directive, RFC).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

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
    preload: bool = setting(
        False,
        "app",
        "import the app in the master before forking: workers share its memory copy-on-write and "
        "start faster; `ctl graceful` then reloads config, not code (`ctl upgrade` reloads code)",
        Kind.BOOL,
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

    reload: bool = setting(
        False,
        "app",
        "development: watch the app's files and gracefully restart the workers when one changes "
        "(a broken edit is rolled back, the old code keeps serving); needs aioprefork[reload]",
        Kind.BOOL,
    )
    reload_dirs: tuple[str, ...] = setting(
        (),
        "app",
        "directories --reload watches (repeatable; default: app_dir)",
        Kind.LIST,
        flags=("--reload-dir",),
    )
    reload_includes: tuple[str, ...] = setting(
        ("*.py",),
        "app",
        "glob patterns of the files --reload watches (repeatable)",
        Kind.LIST,
        flags=("--reload-include",),
    )
    reload_excludes: tuple[str, ...] = setting(
        (".*", "*.py[cod]", "*~"),
        "app",
        "glob patterns of the files --reload ignores, even when included (repeatable)",
        Kind.LIST,
        flags=("--reload-exclude",),
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
    min_workers: int = setting(
        0,
        "processes",
        "floor of active workers: --workers N runs N; set this below it to let spare-pool "
        "maintenance retire idle workers down to it (Apache MinSpareServers)",
        Kind.INT,
        minimum=1,
        auto=lambda v: max(1, int(v["workers"])),
        auto_doc="workers",
    )
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
    stall_threshold: float = setting(
        1.0,
        "processes",
        "log the stack of a worker's event loop that has not turned for this long, and count it "
        "(aioprefork_loop_stalls_total); 0 = off",
        Kind.DURATION,
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
        "control socket path for `aioprefork ctl` (default: beside the pid file, else aioprefork-<port>.ctl in a private runtime dir: /run/aioprefork, $XDG_RUNTIME_DIR or /tmp/aioprefork-<uid>)",
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
    min_rate_grace: float = setting(
        10.0,
        "timeouts",
        "what a request head, a request body or a stalled response gets before the minimum "
        "rates below apply (RequestReadTimeout's first timeout)",
        Kind.DURATION,
        minimum=0.01,
    )
    header_min_rate: int = setting(
        500,
        "timeouts",
        "bytes/s a request head must keep arriving at after min_rate_grace, else 408, 0 = off "
        "(RequestReadTimeout header MinRate)",
        Kind.SIZE,
    )
    body_min_rate: int = setting(
        500,
        "timeouts",
        "bytes/s a request body must keep arriving at after min_rate_grace, else 408, 0 = off "
        "(RequestReadTimeout body MinRate)",
        Kind.SIZE,
    )
    send_min_rate: int = setting(
        500,
        "timeouts",
        "bytes/s a client that stopped reading must take a stalled response at after "
        "min_rate_grace, else the connection is cut, 0 = off",
        Kind.SIZE,
    )
    stalled_write_budget: int = setting(
        64 * MiB,
        "timeouts",
        "response bytes one worker buffers for clients that stopped reading; beyond it the "
        "slowest are cut, 0 = unbounded",
        Kind.SIZE,
    )

    request_timeout: float = setting(
        0.0,
        "timeouts",
        "cancel an HTTP request's app after this long: request_timeout_status if its response "
        "has not started; 0 = off (WebSockets and streaming responses are exempt)",
        Kind.DURATION,
    )
    request_timeout_status: int = setting(
        503,
        "timeouts",
        "status answered to a request whose app passed request_timeout before responding",
        Kind.INT,
        minimum=400,
    )
    request_timeout_streaming: bool = setting(
        False,
        "timeouts",
        "also cut a response already streaming when request_timeout passes (its connection is "
        "closed: the client sees a truncated reply)",
        Kind.BOOL,
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
        "take the client address and scheme from a trusted peer's proxy headers",
        Kind.BOOL,
    )
    proxy_headers_family: str = setting(
        "x-forwarded",
        "proxies",
        "the one header family trusted peers are believed in, the one your proxy overwrites: "
        "x-forwarded (X-Forwarded-For/-Proto) or forwarded (RFC 7239 Forwarded)",
        Kind.CHOICE,
        choices=("x-forwarded", "forwarded"),
    )
    proxy_forwarded_host: bool = setting(
        False,
        "proxies",
        "let a trusted peer's X-Forwarded-Host (or Forwarded host=) replace the Host header",
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
        "logging configuration file (.json, .toml or .ini dictConfig/fileConfig) replacing "
        "ours; example: config/logging.toml",
        Kind.STR,
    )
    error_log: str = setting(
        "",
        "logging",
        "write the error log to this file (default: stderr); `ctl reopen-logs` reopens it",
        Kind.STR,
    )
    access_log: bool = setting(True, "logging", "write an access log line per request", Kind.BOOL)
    access_log_file: str = setting(
        "",
        "logging",
        "write the access log to this file (default: stdout); `ctl reopen-logs` reopens it",
        Kind.STR,
    )
    access_log_format: str = setting(
        "combined",
        "logging",
        "'combined', 'common', 'json' (JSON lines) or an Apache LogFormat string "
        '(%h %a %{c}a %t "%r" %>s %b %D %{Name}i %{Name}o ...)',
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

    status_requests_limit: int = setting(
        100,
        "metrics",
        "requests in flight each worker lists in `ctl status --requests` and "
        "/server-status?requests, the oldest first",
        Kind.INT,
        minimum=1,
    )
    status_target_length: int = setting(
        64,
        "metrics",
        "characters of a request target shown there (longer ones are cut)",
        Kind.INT,
        minimum=8,
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

    # --- hooks (module:function, called with one aioprefork.hooks.HookContext) -----------
    on_starting: str = setting(
        "",
        "hooks",
        "hook: master, once, before binding; raising stops the start (exit 3)",
        Kind.STR,
    )
    when_ready: str = setting(
        "", "hooks", "hook: master, once, when the first generation serves", Kind.STR
    )
    on_reload: str = setting(
        "", "hooks", "hook: master, at each graceful or hard restart (the new config)", Kind.STR
    )
    on_exit: str = setting("", "hooks", "hook: master, just before it exits", Kind.STR)
    post_fork: str = setting(
        "", "hooks", "hook: each worker, right after fork, before the app is imported", Kind.STR
    )
    post_worker_init: str = setting(
        "",
        "hooks",
        "hook: each worker, after the app is imported and its lifespan started",
        Kind.STR,
    )
    worker_exit: str = setting(
        "", "hooks", "hook: each worker, after it drained, just before it exits", Kind.STR
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


# The views: frozen records that each consumer gets instead of the whole Config. A view field
# named like a setting (after the view's prefix: WsLimits.max_size is ws_max_size) takes that
# setting's value in from_config() and its default here; tests/config/test_config.py checks that
# names, types and defaults cannot drift. Other fields are derived (named in DERIVED).
_DEFAULT: Final = Config()


def view_values(view: type, c: Config, prefix: str = "") -> dict[str, Any]:
    """The settings a view takes from `c`: {view field: value}, for every field named like one."""
    return {
        f.name: getattr(c, prefix + f.name)
        for f in dataclasses.fields(view)
        if prefix + f.name in BY_NAME
    }


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

    PREFIX: ClassVar = "ws_"
    DERIVED: ClassVar = frozenset[str]()
    max_size: int = _DEFAULT.ws_max_size
    max_queue: int = _DEFAULT.ws_max_queue
    ping_interval: float = _DEFAULT.ws_ping_interval
    ping_timeout: float = _DEFAULT.ws_ping_timeout
    per_message_deflate: bool = _DEFAULT.ws_per_message_deflate

    @classmethod
    def from_config(cls, c: Config) -> WsLimits | None:
        """None when WebSocket support is off (`ws = "none"`): upgrades are served as plain HTTP."""
        if c.ws == "none":
            return None
        return cls(**view_values(cls, c, cls.PREFIX))


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one HTTP connection needs to know, bound once per worker (not per request)."""

    PREFIX: ClassVar = ""
    DERIVED: ClassVar = frozenset({"high_water", "websocket", "h2"})
    limit_request_line: int = _DEFAULT.limit_request_line
    limit_request_fields: int = _DEFAULT.limit_request_fields
    limit_request_field_size: int = _DEFAULT.limit_request_field_size
    limit_request_body: int = _DEFAULT.limit_request_body
    max_keepalive_requests: int = _DEFAULT.max_keepalive_requests
    keepalive_timeout: float = _DEFAULT.keepalive_timeout
    header_timeout: float = _DEFAULT.header_timeout
    body_timeout: float = _DEFAULT.body_timeout
    write_timeout: float = _DEFAULT.write_timeout
    min_rate_grace: float = _DEFAULT.min_rate_grace
    header_min_rate: int = _DEFAULT.header_min_rate
    body_min_rate: int = _DEFAULT.body_min_rate
    send_min_rate: int = _DEFAULT.send_min_rate
    stalled_write_budget: int = _DEFAULT.stalled_write_budget
    root_path: str = _DEFAULT.root_path
    server_header: str = _DEFAULT.server_header
    date_header: bool = _DEFAULT.date_header
    forwarded_allow_ips: tuple[str, ...] = _DEFAULT.forwarded_allow_ips
    proxy_headers: bool = _DEFAULT.proxy_headers
    proxy_headers_family: str = _DEFAULT.proxy_headers_family
    proxy_forwarded_host: bool = _DEFAULT.proxy_forwarded_host
    proxy_protocol: bool = _DEFAULT.proxy_protocol
    access_log: bool = _DEFAULT.access_log
    access_log_format: str = _DEFAULT.access_log_format
    high_water: int = 64 * KiB  # pause reading / writing above this (uvicorn and asyncio default)
    websocket: WsLimits | None = WsLimits()  # None: ws = "none", no upgrades
    request_timeout: float = _DEFAULT.request_timeout
    request_timeout_status: int = _DEFAULT.request_timeout_status
    request_timeout_streaming: bool = _DEFAULT.request_timeout_streaming
    h2: H2Limits | None = H2Limits()  # None: http2 = "off"

    @classmethod
    def from_config(cls, c: Config) -> HttpLimits:
        return cls(
            **view_values(cls, c),
            websocket=WsLimits.from_config(c),
            h2=H2Limits.from_config(c),
        )


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """What the pool decision needs (docs/architecture.md#spare-pool); one owner at run time:
    the scoreboard (`ctl scale` replaces it there, a restart's commit with the new config's)."""

    PREFIX: ClassVar = ""
    DERIVED: ClassVar = frozenset[str]()
    # the bounds: no defaults (several are derived from others when config/load.py resolves them)
    workers: int
    min_workers: int
    max_workers: int
    server_limit: int
    worker_connections: int
    min_spare_slots: int
    max_spare_slots: int
    heartbeat_timeout: float = _DEFAULT.heartbeat_timeout
    graceful_timeout: float = _DEFAULT.graceful_timeout
    boot_timeout: float = _DEFAULT.boot_timeout
    max_requests_per_worker: int = _DEFAULT.max_requests_per_worker
    max_requests_jitter: int = _DEFAULT.max_requests_jitter
    max_worker_memory: int = _DEFAULT.max_worker_memory

    @classmethod
    def from_config(cls, c: Config) -> PoolPolicy:
        return cls(**view_values(cls, c))


VIEWS: Final = (HttpLimits, WsLimits, PoolPolicy)
