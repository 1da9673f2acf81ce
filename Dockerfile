# conman in a container: the daemon is PID 1. It reaps orphaned processes,
# forwards SIGTERM/SIGINT/SIGHUP to the process groups it supervises and
# stops them on shutdown, so no separate init (tini, dumb-init) is needed.
#
#   docker build -t conman .
#   docker run --rm -p 8283:8283 -v conman-workspace:/home/runner/workspace conman
#
# The daemon prints a browser URL with a token at start-up. Keys and the
# workspace id live in the workspace's .conman directory, so they survive
# with the volume. Tokens minted elsewhere need the platform's public key
# in that directory (see `conman keygen` and `conman token`).

# ---- build ---------------------------------------------------------------
FROM golang:1.26-trixie AS build
WORKDIR /src

# Modules first, so that source changes do not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
# A static binary: the daemon needs no C library of its own.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/conman ./cmd/conman

# ---- run -----------------------------------------------------------------
FROM debian:trixie-slim

# What a workspace terminal is expected to have; curl also serves the
# health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      bash ca-certificates curl git less locales procps \
 && sed -i 's/^# *\(en_US.UTF-8\)/\1/' /etc/locale.gen && locale-gen \
 && rm -rf /var/lib/apt/lists/*

# Workspace processes (shells, runs, execs) run as this unprivileged user:
# the daemon itself runs as it, so everything it starts does too. A
# platform that must run the daemon as root can pass --user root.
ARG UID=1000
RUN useradd --create-home --uid "${UID}" --shell /bin/bash runner \
 && mkdir -p /home/runner/workspace \
 && chown runner:runner /home/runner/workspace

COPY --from=build /out/conman /usr/local/bin/conman

USER runner
WORKDIR /home/runner/workspace
ENV HOME=/home/runner \
    SHELL=/bin/bash \
    LANG=en_US.UTF-8 \
    CONMAN_WORKSPACE=/home/runner/workspace \
    CONMAN_LISTEN=0.0.0.0:8283

VOLUME ["/home/runner/workspace"]
EXPOSE 8283

# SIGTERM is a graceful shutdown: clients are told, process groups get
# SIGTERM then SIGKILL after a 2 s grace, and the exit code is 0 when all
# of it ended in time (1 when something had to be killed at the end). It
# usually takes a few seconds; --shutdown-grace (10 s) bounds it, so give
# `docker stop` / --stop-timeout a little more than that.
STOPSIGNAL SIGTERM

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8283/healthz || exit 1

ENTRYPOINT ["/usr/local/bin/conman"]
CMD ["serve"]
