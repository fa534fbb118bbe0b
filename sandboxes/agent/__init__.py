"""The agent: runs inside each sandbox unit next to its broker.

It starts and supervises the broker, taps it, runs learners' cells under
limits, and answers the platform over one Unix socket (``agent.sock`` in the
unit's folder). Plain standard library plus the broker clients: no Django.
"""
