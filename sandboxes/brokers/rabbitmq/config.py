"""RabbitMQ's files and environment for one unit: its configuration, its plugins, and the launcher that brings its own epmd."""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import string
from pathlib import Path

from sandboxes.brokers.base import BASE_ENV, LaunchSpec, Site

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
PLUGINS_GLOB = "/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins"
PLUGINS = ("rabbitmq_management", "rabbitmq_event_exchange")
EPMD = "epmd"
RUN_AS = "rabbitmq"  # Debian's account; the Erlang VM refuses nothing as root, but the package expects it
NODENAME = "rabbit@localhost"

# Starts a private epmd in the foreground first: the one Erlang would start itself
# daemonises out of the process group and would outlive the broker. The loop waits
# until it answers, so Erlang finds it and does not start its own.
_LAUNCHER = """\
{epmd} -port "$ERL_EPMD_PORT" -address {bind} &
i=0
while ! {epmd} -port "$ERL_EPMD_PORT" -names >/dev/null 2>&1; do
  i=$((i+1)); [ $i -gt 100 ] && echo "epmd did not start" >&2 && exit 1
  sleep 0.02
done
exec {server}
"""

# The disk monitor looks as seldom as a 250 MB/s disk allows, up to 10 s apart: a cell fills a small capped
# disk faster than that, past disk_free_limit to the wall. Checked every 50 ms instead (no setting exists;
# its API is called once it runs). One word: the server script splits the variable on spaces.
_DISK_CHECKS = (
    "spawn(fun()->W=fun(F,undefined)->timer:sleep(100),F(F,whereis(rabbit_disk_monitor));"
    "(_,_)->rabbit_disk_monitor:set_min_check_interval(50),rabbit_disk_monitor:set_max_check_interval(50)end,"
    "W(W,undefined)end)"
)


def write_config(site: Site) -> None:
    """Write the node's configuration, plugins and cookie under ``site.data_dir``; as root, hand them to :data:`RUN_AS`."""
    data_dir, ports, limits, bind = site.data_dir, site.ports, site.limits, site.bind
    for sub in ("mnesia", "log", "home"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    # Leave headroom under the process limit: the watermark blocks publishers, the
    # cgroup would kill the node.
    watermark = max(64, limits.memory_mb * 3 // 5)
    (data_dir / "rabbitmq.conf").write_text(
        f"""# Written by Broker Academy; rewritten on every start.
listeners.tcp.default = {bind}:{ports["amqp"]}
management.tcp.ip = {bind}
management.tcp.port = {ports["management"]}
loopback_users.guest = true
vm_memory_high_watermark.absolute = {watermark}MiB
disk_free_limit.absolute = {limits.disk_free_mb}MiB
connection_max = {limits.max_connections}
max_message_size = {limits.max_message_bytes}
# Queue counters in the HTTP API (checks, cells that ask it) refresh every second instead of five. Both
# settings are needed: queues report every collect_statistics_interval, and the management agent folds
# the reports every <smallest sample interval> seconds, 5 by default (measured: counts up to 6 s old).
collect_statistics_interval = 1000
management.sample_retention_policies.global.minute = 1
management.sample_retention_policies.basic.minute = 1
management.sample_retention_policies.detailed.10 = 1
log.console = true
log.console.level = info
log.file = false
"""
    )
    # Few messages in flight from connection to channel to queue to message store (credit flow): once the
    # disk alarm blocks publishers, what is on its way must still fit under disk_free_limit.
    (data_dir / "advanced.config").write_text(
        '[{rabbit, [{trace_vhosts, [<<"/">>]}, {credit_flow_default_credit, {16, 8}},'
        " {msg_store_credit_disc_bound, {16, 8}}]}].\n"
    )
    (data_dir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
    _link_plugins(data_dir / "plugins")
    cookie = data_dir / "home" / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(32)))
    cookie.chmod(0o400)
    if os.geteuid() == 0:
        _check_reachable(data_dir, RUN_AS)
        account = pwd.getpwnam(RUN_AS)
        # os.walk does not follow the links to the system's plugins: only the unit's files change owner.
        for root, dirs, files in os.walk(data_dir):
            for name in [".", *dirs, *files]:
                os.chown(
                    os.path.join(root, name),
                    account.pw_uid,
                    account.pw_gid,
                    follow_symlinks=False,
                )


def launch_spec(site: Site) -> LaunchSpec:
    """The node in the foreground, behind a private epmd, with every path pointing into ``site.data_dir``."""
    data_dir, ports, bind = site.data_dir, site.ports, site.bind
    env = {
        **BASE_ENV,
        "HOME": str(data_dir / "home"),
        "RABBITMQ_CONF_ENV_FILE": "/dev/null",  # ignore /etc/rabbitmq/rabbitmq-env.conf of the host
        "RABBITMQ_CONFIG_FILE": str(data_dir / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(data_dir / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(data_dir / "enabled_plugins"),
        "RABBITMQ_PLUGINS_DIR": str(data_dir / "plugins"),
        "RABBITMQ_MNESIA_BASE": str(data_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data_dir / "log"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_PID_FILE": str(data_dir / "rabbitmq.pid"),
        "RABBITMQ_NODENAME": NODENAME,
        "RABBITMQ_USE_LONGNAME": "false",
        "RABBITMQ_NODE_PORT": str(ports["amqp"]),
        "RABBITMQ_DIST_PORT": str(ports["dist"]),
        "ERL_EPMD_PORT": str(ports["epmd"]),
        "ERL_CRASH_DUMP_SECONDS": "0",
        "RABBITMQ_MAX_NUMBER_OF_PROCESSES": "65536",
        # Two schedulers on a small unit, and no busy-waiting: an idle node then costs no CPU.
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 2:2 +sbwt none +sbwtdcpu none +sbwtdio none -eval " + _DISK_CHECKS,
    }
    script = _LAUNCHER.format(
        epmd=shutil.which(EPMD, path=BASE_ENV["PATH"]) or EPMD,
        bind=bind,
        server=SERVER,
    )
    return LaunchSpec(
        argv=("/bin/sh", "-c", script),
        env=env,
        cwd=str(data_dir),
        user=RUN_AS if os.geteuid() == 0 else None,
        stop_timeout=15.0,
    )


def _link_plugins(target: Path) -> None:
    """Fill ``target`` with links to the Erlang applications the broker needs, and no others.

    Every folder in the plugins directory is on the Erlang code path, and each
    module load searches the path in order: with the 26 applications the node
    and the management plugin need instead of all 70, the node starts about a
    second sooner (measured: 6.5 s -> 5.3 s to ready on 2 cores).
    """
    found = sorted(glob.glob(PLUGINS_GLOB))
    if not found:
        raise FileNotFoundError(f"no RabbitMQ plugins folder matches {PLUGINS_GLOB}")
    source = Path(found[-1])
    apps: dict[str, tuple[Path, set[str]]] = {}
    for folder in source.iterdir():
        app_files = list(folder.glob("ebin/*.app"))
        if folder.is_dir() and app_files:
            text = app_files[0].read_text(errors="replace")
            deps: set[str] = set()
            for key in (
                "applications",
                "included_applications",
                "optional_applications",
            ):
                match = re.search(r"\{\s*" + key + r"\s*,\s*\[(.*?)\]\s*\}", text, re.DOTALL)
                if match:
                    deps |= set(re.findall(r"[a-z][a-z_0-9]*", match.group(1)))
            apps[folder.name.rsplit("-", 1)[0]] = (folder, deps)
    needed: set[str] = set()
    todo = ["rabbit", "rabbitmq_prelaunch", *PLUGINS]
    while todo:
        app = todo.pop()
        if app in apps and app not in needed:
            needed.add(app)
            todo += apps[app][1]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for app in needed:
        folder = apps[app][0]
        (target / folder.name).symlink_to(folder)


def _check_reachable(data_dir: Path, user: str) -> None:
    """Raise when ``user`` cannot reach ``data_dir`` (a 0700 parent such as a mkdtemp folder)."""
    for parent in data_dir.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            raise PermissionError(
                f"{parent} is not searchable by others, so the {user} user cannot reach {data_dir}; chmod o+x it or use another folder"
            )
