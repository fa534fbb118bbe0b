# Postgres for deploy/kubernetes/'s in-cluster database: Debian 12's postgresql (15) on the
# local debian:bookworm-slim, run as a fixed non-root uid. Built by courseplatform/platform_image.py.
FROM debian:bookworm-slim
# The account first, with a fixed uid the manifests name; the package then uses it. Without LLVM
# (a third of the image, loaded only for JIT, which the entrypoint turns off).
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && groupadd --system --gid 61200 postgres \
 && useradd --system --uid 61200 --gid postgres --home-dir /var/lib/postgresql --no-create-home --shell /bin/sh postgres \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/lib/postgresql/15 \
 && rm -f /usr/lib/postgresql/15/lib/llvmjit* /usr/lib/x86_64-linux-gnu/libLLVM-*
# /entrypoint runs its arguments; the manifests name it, and the lab's flattened copy of the image
# replaces it with one that first sets this image's environment (a pushed folder keeps none).
RUN printf '#!/bin/sh\nexec "$@"\n' >/entrypoint && chmod 755 /entrypoint
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
USER 61200:61200
EXPOSE 5432
ENTRYPOINT ["/entrypoint"]
CMD ["/usr/local/bin/postgres-entrypoint"]
