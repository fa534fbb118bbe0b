# The platform's image: web (uvicorn), Celery worker and beat, and manage.py, on Debian's
# Python 3.11. Built by courseplatform/platform_image.py on the local debian:bookworm-slim
# (scripts/docker-base.sh, debootstrap), from wheels of requirements.txt's runtime section
# that the host's pip makes (from PyPI or its cache), like the sandbox images.

FROM debian:bookworm-slim AS python
# policy-rc.d: no package may start a service while it installs (there is no init here).
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log \
 && groupadd --system --gid 61100 platform \
 && useradd --system --uid 61100 --gid platform --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin platform

# The wheels stay in this stage; only the venv moves on.
FROM python AS packages
COPY wheels/ /wheels/
COPY requirements.txt /requirements.txt
RUN python3 -m venv --without-pip /opt/venv \
 && set -- /wheels/pip-*.whl \
 && /opt/venv/bin/python "$1/pip" install --no-index --find-links=/wheels --no-cache-dir --requirement /requirements.txt \
 && /opt/venv/bin/python -m pip uninstall -y -q pip

FROM python
# /entrypoint runs its arguments; the manifests name it, and the lab's flattened copy of the image
# replaces it with one that first sets this image's environment (a pushed folder keeps none).
RUN printf '#!/bin/sh\nexec "$@"\n' >/entrypoint && chmod 755 /entrypoint
COPY --from=packages /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DJANGO_SETTINGS_MODULE=courseplatform.settings.production \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VAR_DIR=/var/lib/broker-academy \
    LANG=C.UTF-8
COPY app/ /app/
WORKDIR /app
# Static files collected (and compressed, with hashed names) at build time: the root is read-only
# at run time. The settings demand secrets to load; these throwaway values serve only this step.
# Bytecode as unchecked hashes, so it stays valid when the lab's push zeroes file times.
RUN SECRET_KEY=build-only-$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n') \
    REDIS_URL=redis://:build@127.0.0.1:6379/0 DATABASE_URL=postgres://build:build@127.0.0.1:5432/build \
    ALLOWED_HOSTS=localhost \
    python3 manage.py collectstatic --noinput -v 0 \
 && python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /app /opt/venv /usr/lib/python3.11
USER 61100:61100
EXPOSE 8000
ENTRYPOINT ["/entrypoint"]
CMD ["uvicorn", "courseplatform.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
