# Apache Kafka 4 in KRaft mode on Debian's Java 17, with the sandbox agent.
# The jars come from Maven Central through scripts/fetch-jars.sh kafka on the host, at the
# version of sandboxes/brokers/versions.py, as for the process backend.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log
COPY kafka-libs/ /opt/kafka/libs/
ENV KAFKA_LIBS=/opt/kafka/libs

# The agent and the broker kinds, last: a change of code rebuilds only these layers.
COPY sandboxes/ /opt/broker-academy/sandboxes/
RUN python3 -m compileall -q /opt/broker-academy/sandboxes
