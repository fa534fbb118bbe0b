"""The cache's serializer: JSON instead of Django's default pickle.

Redis is shared by every process of the platform; unpickling what is read from it would run
whatever code a writer put there. Integers stay raw so that Redis's INCR (rate limits) works.
"""

from __future__ import annotations

import json
from typing import Any


class JsonSerializer:
    def dumps(self, obj: Any) -> int | bytes:
        if type(obj) is int:
            return obj
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        try:
            return int(data)
        except ValueError:
            return json.loads(data)
