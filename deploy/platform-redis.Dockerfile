# Redis for deploy/kubernetes/'s in-cluster channel layer, cache and Celery broker: Debian 12's
# redis-server on the local debian:bookworm-slim, as a fixed non-root uid, with a password.
# Built by courseplatform/platform_image.py.
FROM debian:bookworm-slim
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && groupadd --system --gid 61300 redis \
 && useradd --system --uid 61300 --gid redis --home-dir /var/lib/redis --no-create-home --shell /usr/sbin/nologin redis \
 && apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log
# /entrypoint runs its arguments; the manifests name it, and the lab's flattened copy of the image
# replaces it with one that first sets this image's environment (a pushed folder keeps none).
RUN printf '#!/bin/sh\nexec "$@"\n' >/entrypoint && chmod 755 /entrypoint
COPY redis-entrypoint.sh /usr/local/bin/redis-entrypoint
USER 61300:61300
EXPOSE 6379
ENTRYPOINT ["/entrypoint"]
CMD ["/usr/local/bin/redis-entrypoint"]
