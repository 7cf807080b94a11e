# syntax=docker/dockerfile:1
#
# One image for every process of the platform: the apis, the workers, the
# gateway and the migrate/seed Job differ only in the command the chart (or
# compose, or Tilt) gives them, e.g. `python -m identity.api`,
# `tuoguan-worker registration`, `python -m gateway`, `python -m billing.migrate`.
# A service added later needs no change here: it is a workspace member, so the
# lock installs it.
#
#   docker build -t tuoguan:dev .                 # production image (last stage)
#   docker build --target dev -t tuoguan:dev .    # what Tilt builds (live_update can write /app)
#
# Pin the base by digest when you release:
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# Only the workspace's manifests, so the dependency layer below is rebuilt
# when pyproject.toml or uv.lock change, not on every code change.
FROM ${PYTHON_IMAGE} AS manifests
WORKDIR /src
COPY libs libs
COPY services services
RUN find libs services -type f ! -name pyproject.toml -delete \
    && find libs services -depth -type d -empty -delete

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY --from=manifests /src/ ./
# Third-party dependencies exactly as locked, without the dev group (pytest,
# Playwright, the Helm SDK...): cached until the lock changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace
COPY libs libs
COPY services services
# The workspace's own packages (editable, so Tilt's live_update of /app/libs
# and /app/services is what runs), then their bytecode: the containers run
# with a read-only root filesystem and PYTHONDONTWRITEBYTECODE.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
    && python -m compileall -q libs services

FROM ${PYTHON_IMAGE} AS base
RUN groupadd --system --gid 10001 tuoguan \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin tuoguan
# Nothing is written outside /tmp (an emptyDir in the chart): no bytecode,
# no home directory, logs on stdout.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# Outside a container the processes listen on 127.0.0.1 only; in one, what
# calls them (other containers, probes, Prometheus, a published port) comes
# from outside it: every interface.
ENV GATEWAY_HOST=0.0.0.0 \
    TUOGUAN_GRPC_HOST=0.0.0.0 \
    TUOGUAN_METRICS_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/libs /app/libs
COPY --from=build /app/services /app/services
COPY pyproject.toml uv.lock /app/
# identity gRPC, registration, billing, ticketing; api metrics; worker metrics; gateway HTTP
EXPOSE 50051 50052 50053 50054 9101 9102 9103 9104 9111 9112 9113 9114 8000

# Tilt's target: the same image, with the code owned by the app user so
# live_update can sync into it (the Tilt values turn readOnlyRootFilesystem off).
FROM base AS dev
USER root
RUN chown -R 10001:10001 /app/libs /app/services
USER 10001:10001
CMD ["python", "-m", "gateway"]

# The production image (the default target): root owns the code, the
# process runs as uid 10001 and can change nothing in /app.
FROM base AS runtime
USER 10001:10001
CMD ["python", "-m", "gateway"]
