# RabbitMQ from Debian, with the sandbox agent.
ARG BASE
FROM ${BASE}
# The package's account gets a fixed uid of this project's range, so that the broker's files
# in the unit's folder on the host belong to no account of the host.
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log \
 && old_uid=$(id -u rabbitmq) && old_gid=$(id -g rabbitmq) \
 && usermod --uid 61001 rabbitmq && groupmod --gid 61001 rabbitmq \
 && find / -xdev -user "$old_uid" -exec chown -h rabbitmq {} + \
 && find / -xdev -group "$old_gid" -exec chgrp -h rabbitmq {} +

# The agent and the broker kinds, last: a change of code rebuilds only these layers.
COPY sandboxes/ /opt/broker-academy/sandboxes/
RUN python3 -m compileall -q /opt/broker-academy/sandboxes
