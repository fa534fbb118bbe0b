"""The container images of sandbox units: one per broker kind, built by this project (``make images``).

Names and labels shared by the image build (``build.py``) and the docker backend.
Plain standard library: nothing here talks to an engine.
"""

from __future__ import annotations

#: Images are ``broker-academy/<kind>``; the backend runs ``:latest``, the build also tags ``:<source hash>``.
REPOSITORY = "broker-academy"
RUN_TAG = "latest"
#: Label on every image: the hash of everything that went into it (Dockerfile, code, jars, base).
SOURCE_LABEL = "org.broker-academy.source"
#: Inside an image: where the agent finds its unit's folder (bind-mounted from the host).
UNIT_DIR = "/unit"
#: The account brokers run as when their kind names none (RabbitMQ names its own).
BROKER_USER = "broker"


def image_repository(kind: str) -> str:
    """The repository of a broker kind's image, e.g. ``broker-academy/kafka``."""
    return f"{REPOSITORY}/{kind}"


def image_ref(kind: str) -> str:
    """The image a unit of this kind runs."""
    return f"{image_repository(kind)}:{RUN_TAG}"
