# Apache ActiveMQ (Classic) from Debian on Java 17, with the sandbox agent. xstream and
# jettison render advisory messages over STOMP, which the tap reads.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends activemq libxstream-java libjettison-java openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log

# The agent and the broker kinds, last: a change of code rebuilds only these layers.
COPY sandboxes/ /opt/broker-academy/sandboxes/
RUN python3 -m compileall -q /opt/broker-academy/sandboxes
