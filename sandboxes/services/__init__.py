"""Doing things to sandboxes, one module per concern.

``lifecycle`` the state machine and its one way to change state; ``actions``
what a learner asks (ensure, stop, reset, extend); ``pool`` the warm pool;
``provisioning`` starting and stopping a unit; ``reconcile`` the reaper and
the repair after a crash; ``jobs`` queues the worker's tasks by name, so no
service imports ``sandboxes.tasks``.
"""
