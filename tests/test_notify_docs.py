"""docs/notify.md: its commands and examples are the real ones."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from support import need
from support.eventlines import recommendation
from support.scenarios import ROOT

from supervisor.notify.apprise import AppriseNotifier, body, title
from supervisor.notify.cursor import Batch, Transition

DOC = (ROOT / "docs" / "notify.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.DOTALL)


def test_the_phone_route_is_a_valid_alertmanager_config(tmp_path: Path) -> None:
    need("amtool", "prometheus-alertmanager")
    (phone,) = [block for block in blocks("sh") if "alertmanager.yml" in block]
    result = subprocess.run(["bash", "-euc", phone], cwd=tmp_path, capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    config = (tmp_path / "alertmanager.yml").read_text()
    assert "https://ntfy.sh/homelab-" in config and "send_resolved: true" in config


def test_the_apprise_urls_are_understood() -> None:
    (commands,) = [block for block in blocks("sh") if "notify apprise" in block]
    urls = [word.replace("$TOPIC", "homelab-topic")
            for line in commands.splitlines() if "notify apprise" in line
            for word in shlex.split(line.replace('"', "'"))
            if "://" in word]
    assert len(urls) == 4
    AppriseNotifier(urls)  # raises, naming the URL, for one apprise does not understand


def test_the_example_message_is_what_apprise_sends() -> None:
    (example,) = [block for block in blocks("text") if block.startswith("homelab ")]
    web = {**recommendation("nas01/web"), "instance": "lab-3d7d6e73"}
    node = {**recommendation("nas01", kind="node", action="failover_review",
                             severity="critical", condition="offline_node",
                             reason="nas01 has been offline for 7 min"), "instance": "lab-3d7d6e73"}
    sonarr = recommendation("media01/sonarr")
    batch = Batch("lab-3d7d6e73", "run1", "2026-11-26T10:00:00Z", [
        Transition("opened", web), Transition("opened", node),
        Transition("resolved", {"type": "reconcile_resolved"}, sonarr)], summary="unstable")
    assert example == f"{title(batch)}\n\n{body(batch)}\n"
