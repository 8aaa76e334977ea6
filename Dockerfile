# aioprefork: the master + worker pool in a container, scraped on :9464, serving on :8000.
#
#   docker build -t aioprefork .                      # python:3.12-slim by default
#   docker run --rm -p 8000:8000 -p 9464:9464 --stop-timeout 40 aioprefork
#   docker run ... -e AIOPREFORK_APP=myapp:app -v ./myapp:/app/myapp:ro aioprefork
#
# Compiled hot path: the image holds the build whose request hot path is compiled to C with mypyc
# (aioprefork/buildinfo.py's HOT_PATH; about a third less CPU per request). The build stage
# (BUILD_IMAGE, python:3.12: gcc and the Python headers included) builds the wheels, compiling
# aioprefork's; the runtime stage (BASE_IMAGE, python:3.12-slim: no compiler) installs those wheels
# into a fresh venv, so the compiler never reaches it. The two must share the Python ABI (same
# Python minor version and platform: python:3.X with python:3.X-slim); a mismatch fails the build
# at the install ("not a supported wheel"). --build-arg AIOPREFORK_MYPYC=auto|1|0: auto (the
# default) compiles when BUILD_IMAGE has a C compiler (`cc`) and Python.h and builds the pure wheel
# with a warning otherwise; 1 = compile or fail the build; 0 = always pure. mypy (mypyc) and its
# type stubs come from pyproject's build-system.requires into pip's throwaway build environment:
# neither image's venv gets them. Check which build an image holds:
#
#   docker run --rm aioprefork version             # "... hot path: compiled (mypyc)"
#
# Stop timeout: TERM (STOPSIGNAL) makes the master close its listeners and give in-flight requests
# graceful_timeout (30 s by default) before it kills the workers. Docker's default stop timeout is
# 10 s, after which the whole container gets SIGKILL, cutting that drain short: run with
# `--stop-timeout 40` (compose: `stop_grace_period: 40s`; Kubernetes: terminationGracePeriodSeconds),
# i.e. graceful_timeout plus a margin. A Dockerfile cannot set it; the image says so in a label.
#
# PID 1: the master IS a process supervisor (SPEC section 3): it installs handlers for every signal
# it cares about (PID 1 ignores signals that have no handler, so this matters), and it reaps every
# child with waitpid(-1), so processes re-parented to it (a worker's grandchildren) never linger as
# zombies. tini / dumb-init would add nothing but a hop for signals.
ARG BASE_IMAGE=python:3.12-slim
ARG BUILD_IMAGE=python:3.12

# --- build: wheels for aioprefork (compiled) and its dependencies -------------------------------
FROM ${BUILD_IMAGE} AS build
# pip reads these from the environment: an offline build passes PIP_NO_INDEX=1 and a
# PIP_FIND_LINKS wheelhouse (the container test does, with `--volume`); pip's isolated build
# environment (setuptools, mypy, stubs) is installed from the same place.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
# auto: mypyc-compile the hot path when cc and Python.h are here; 1: compile or fail; 0: pure.
ARG AIOPREFORK_MYPYC=auto
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE setup.py ./
COPY aioprefork ./aioprefork
# pip comes from a venv (Debian's python3 has no pip module, only ensurepip for venvs). Once the
# toolchain is here, a failed compile fails the build (AIOPREFORK_MYPYC=1 for setup.py)
# rather than quietly shipping the slower wheel; AIOPREFORK_MYPYC=0 opts out.
RUN case "${AIOPREFORK_MYPYC}" in auto|0|1) ;; \
        *) echo "AIOPREFORK_MYPYC must be auto, 1 or 0, not '${AIOPREFORK_MYPYC}'" >&2; exit 2 ;; \
    esac \
    && toolchain=no \
    && if command -v cc >/dev/null && python3 -c 'import os, sysconfig; \
            raise SystemExit(not os.path.isfile(sysconfig.get_path("include") + "/Python.h"))'; \
        then toolchain=yes; fi \
    && python3 -m venv /opt/pip \
    && if [ "${AIOPREFORK_MYPYC}" != 0 ] && [ "${toolchain}" = yes ]; then \
        echo "aioprefork: building the mypyc-compiled hot path" >&2 \
        && AIOPREFORK_MYPYC=1 /opt/pip/bin/pip wheel --wheel-dir /wheels . ; \
    elif [ "${AIOPREFORK_MYPYC}" = 1 ]; then \
        echo "AIOPREFORK_MYPYC=1: the build image has no C compiler (cc) or Python headers" \
            "(Python.h); use --build-arg BUILD_IMAGE=python:3.12 or install build-essential +" \
            "python3-dev" >&2 \
        && exit 1; \
    else \
        echo "WARNING: aioprefork: building the pure-Python wheel" \
            "(AIOPREFORK_MYPYC=${AIOPREFORK_MYPYC}, C toolchain in BUILD_IMAGE: ${toolchain})" >&2 \
        && AIOPREFORK_MYPYC=0 /opt/pip/bin/pip wheel --wheel-dir /wheels . ; \
    fi

# --- runtime: the venv, the bundled examples, nothing else --------------------------------------
FROM ${BASE_IMAGE}
ARG UID=10001
LABEL org.opencontainers.image.title="aioprefork" \
      org.opencontainers.image.description="Prefork ASGI server: master + uvloop/httptools workers" \
      io.aioprefork.stop-timeout="graceful_timeout + 10 s (40 s with the defaults)"
RUN groupadd --system --gid "${UID}" aioprefork \
    && useradd --system --uid "${UID}" --gid aioprefork --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin aioprefork \
    && mkdir -p /app /run/aioprefork \
    && chown aioprefork:aioprefork /run/aioprefork
# The wheels from the build stage, installed by this stage's own Python: only what they hold lands
# here (no compiler, no mypy), and pip refuses a compiled wheel built for another Python.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels aioprefork \
    && /opt/venv/bin/python -m compileall -q /opt/venv \
    && /opt/venv/bin/aioprefork version
COPY examples /app/examples
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AIOPREFORK_APP=examples.hello:app \
    AIOPREFORK_BIND=0.0.0.0:8000 \
    AIOPREFORK_METRICS_BIND=0.0.0.0:9464 \
    AIOPREFORK_PID_FILE=/run/aioprefork/aioprefork.pid \
    AIOPREFORK_CTL_SOCKET=/run/aioprefork/ctl.sock
USER ${UID}:${UID}
EXPOSE 8000 9464
# TERM = graceful stop within graceful_timeout (SPEC section 3); see the stop-timeout note above.
STOPSIGNAL SIGTERM
# No curl in a slim image: the venv's Python asks the master's /healthz (metrics listener).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; port = os.environ.get('AIOPREFORK_METRICS_BIND', ':9464').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
ENTRYPOINT ["aioprefork"]
CMD ["serve"]
