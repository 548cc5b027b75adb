"""Conventions the Docker observer and the Compose import share, so that what is imported and
what is observed meet: the label that names a service, and the version an image stands for."""

from __future__ import annotations

VERSION_LABEL = "org.opencontainers.image.version"
# Names a container's (or a Compose service's) service in the inventory, over its Compose
# service name: the way to tell apart two stacks' `db` on one node.
SERVICE_LABEL = "homelab.service"


def image_tag(reference: str) -> str | None:
    """The tag of `nextcloud:29`, `registry:5000/app:1.2`, or `latest` when none is written
    (what the engine pulls). None for a digest-only reference or an image id: no tag says it."""
    if not reference or reference.startswith("sha256:"):
        return None
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]  # a registry's port is before the last '/', never after
    if ":" in last:
        return last.split(":", 1)[1] or None
    return None if digest else "latest"


def image_version(reference: str | None, labels: dict[str, str] | None = None) -> str | None:
    """The version an image declares in its OCI label, else its tag."""
    declared = (labels or {}).get(VERSION_LABEL)
    if declared:
        return declared
    return image_tag(reference) if reference else None
