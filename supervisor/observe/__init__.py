"""World sources: programs that observe the homelab and write the world directory the engine
reads. Each is a module here, registered by name below, holding a typer `command`; the engine
knows none of them. All write through `snapshot.write_snapshot` and run through
`runner.run_observer`, so that every snapshot is consistent and every source behaves alike.

The modules are imported when the CLI starts (for their options), so they import their client
libraries (docker, requests) inside functions only.
"""

from __future__ import annotations

# name -> module holding `command`, shown as `supervisor observe <name>`
SOURCES: dict[str, str] = {
    "docker": "supervisor.observe.docker",
    "prometheus": "supervisor.observe.prometheus",
}
