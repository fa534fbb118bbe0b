# The common base of the sandbox images: Debian's Python 3.11 with the broker clients
# that the agent and learners' cells use, the account brokers run as, and the agent's
# entry point. Built by build.py (make images) on the local debian:bookworm-slim.
# kcat: a learner's cell and terminal have it on every backend (the process backend's
# cells see the host's, which scripts/install.sh installs); tests/sandboxes/test_cell_contract.py.
# nftables: the Kubernetes backend's init step walls a sandbox pod's network in with it
# (sandboxes/backends/kubernetes_fence.py); nothing else in the image runs it.

FROM debian:bookworm-slim AS python
# policy-rc.d: no package may start a service while it installs (there is no init here).
# man1: the Java packages' postinst links a man page there, and slim images have no man folder.
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 kcat nftables \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log \
 && groupadd --system --gid 61000 broker \
 && useradd --system --uid 61000 --gid broker --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin broker

# The wheels (made on the host from requirements.txt) stay in this stage; only the venv moves on.
FROM python AS clients
COPY wheels/ /wheels/
COPY requirements.txt /requirements.txt
RUN python3 -m venv --without-pip /opt/venv \
 && set -- /wheels/pip-*.whl \
 && /opt/venv/bin/python "$1/pip" install --no-index --find-links=/wheels --no-cache-dir --requirement /requirements.txt

FROM python
COPY --from=clients /opt/venv /opt/venv
# python-check: the interpreter of exercise checks (sandboxes/agent/confinement.py, CHECK_PYTHON), a copy that
# every account may run and none but root may read, so the kernel starts each check non-dumpable.
RUN cp /usr/bin/python3.11 /opt/venv/bin/python-check && chmod 0111 /opt/venv/bin/python-check
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/broker-academy \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8
WORKDIR /
ENTRYPOINT ["/opt/venv/bin/python", "-m", "sandboxes.agent"]
