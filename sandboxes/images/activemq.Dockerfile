# Apache ActiveMQ Classic 6 on Debian's Java 17 with its web console, and the sandbox agent. The jars (with XStream
# and Jettison, which render advisory messages over STOMP for the tap) come from Maven Central
# through scripts/fetch-jars.sh activemq on the host, at the version of
# sandboxes/brokers/versions.py, as for the process backend.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log
COPY activemq-libs/ /opt/activemq/libs/
ENV ACTIVEMQ_LIBS=/opt/activemq/libs
# Its web console: Jetty 11, JSP and JSTL in libs/, the console's WAR unpacked in webapp/
# (scripts/fetch-jars.sh activemq-console); the broker's JVM serves it (brokers/activemq/console.py).
COPY activemq-console/ /opt/activemq/console/
ENV ACTIVEMQ_CONSOLE_HOME=/opt/activemq/console

# The agent and the broker kinds, last: a change of code rebuilds only these layers.
COPY sandboxes/ /opt/broker-academy/sandboxes/
RUN python3 -m compileall -q /opt/broker-academy/sandboxes
