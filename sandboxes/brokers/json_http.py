"""JSON over HTTP for the brokers' management and monitoring APIs: one GET, one decoded answer.

Plain standard library only: the agent imports this inside sandbox units.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

from .base import BrokerUnavailable


def get_json(url: str, *, timeout: float = 1.0, login: tuple[str, str] | None = None) -> Any:
    """GET ``url`` (with HTTP basic ``login`` when given) and return its JSON body.

    Raises :class:`BrokerUnavailable` when the broker does not answer, answers
    with an HTTP error, or answers with something that is not JSON.
    """
    request = urllib.request.Request(url)
    if login is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(login).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError) as exc:  # HTTPError and URLError are OSErrors; bad JSON a ValueError
        raise BrokerUnavailable(f"{url}: {exc}") from exc
