# NATS with JetStream, with the sandbox agent. nats-server and the nats tool are the static
# binaries that scripts/build-nats.sh built with Go on the host, at the versions of
# sandboxes/brokers/versions.py, as for the process backend.
ARG BASE
FROM ${BASE}
COPY nats-bin/nats-server /opt/nats/nats-server
COPY nats-bin/nats /usr/local/bin/nats
ENV NATS_SERVER=/opt/nats/nats-server \
    NATS_CLI=/usr/local/bin/nats

# The agent and the broker kinds, last: a change of code rebuilds only these layers.
COPY sandboxes/ /opt/broker-academy/sandboxes/
RUN python3 -m compileall -q /opt/broker-academy/sandboxes
