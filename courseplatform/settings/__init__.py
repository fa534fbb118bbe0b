"""Settings: ``base`` is the embedded default, ``test`` and ``production`` adjust it."""
