"""The unit launcher: the privileged half of the process backend, as a root daemon behind a group's socket.

Making a unit takes root (a network namespace, cgroups, a loop-mounted disk, the unit's
uids), but the web process and the Celery worker do not need it and should not have it.
They run as the platform's own user; :class:`~sandboxes.backends.process.ProcessBackend`
sends each privileged request (start, stop, keep, list, poll) to this daemon over a Unix
socket that only root and the platform's group (SANDBOX_PLATFORM_GROUP) may open, the way
dockerd serves the ``docker`` group. The daemon names the operations it performs and checks
every argument: a request can only act on this platform instance's units and kept data.
"""
