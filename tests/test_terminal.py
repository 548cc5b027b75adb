"""Human output never carries a control character from the inputs, a reason has a size, and
colour and plurals follow the reader."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.scenarios import FIXTURES, ScenarioFactory, write_scenario
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.terminal import REASON_LIMIT, cap, counted, printable, use_colour

HOSTILE = "inc-\x1b]0;owned\x07\x1b[2J\u202eevil\n"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def test_printable_escapes_every_control_character() -> None:
    assert printable(HOSTILE) == "inc-\\x1b]0;owned\\x07\\x1b[2J\\u202eevil\\n"
    assert printable("nas01/nextcloud — ok\t") == "nas01/nextcloud — ok\\t"
    assert printable("plain") == "plain"


def test_cap_marks_the_cut() -> None:
    assert cap("x" * REASON_LIMIT) == "x" * REASON_LIMIT
    assert cap("x" * (REASON_LIMIT + 1)) == "x" * (REASON_LIMIT - 1) + "…"


def test_counted() -> None:
    assert [counted(n, "node") for n in (0, 1, 2)] == ["0 nodes", "1 node", "2 nodes"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_colour_on_a_dumb_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert use_colour(Tty())
    monkeypatch.setenv("TERM", "dumb")
    assert not use_colour(Tty())


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("SUPERVISOR_INVENTORY", "SUPERVISOR_WORLD", "SUPERVISOR_RULES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return CliRunner()


def hostile_homelab(scenario: ScenarioFactory) -> Path:
    return scenario(
        {"n1": "services:\n  web: {}\n"},
        services={"n1/web": {"status": "failed", "last_log_line": "\x1b[2J" + "y" * 500_000}},
        incidents=[{"id": HOSTILE, "subject": "n1/web", "status": "open",
                    "opened_at": "2026-11-26T09:00:00Z", "severity": "warning"}],
    )


def test_no_control_character_reaches_the_table_explain_or_errors(
        cli: CliRunner, scenario: ScenarioFactory, tmp_path: Path) -> None:
    root = hostile_homelab(scenario)
    (tmp_path / "loud").mkdir()
    (tmp_path / "loud" / "log.yaml").write_text(
        "rules:\n- id: log-line\n  condition: unhealthy_service\n"
        "  match: \"service.actual.last_log_line != `null`\"\n"
        "  event: reconcile_recommended\n  action: read_the_log\n"
        "  reason: \"{{ service.actual.last_log_line }}\"\n")
    table = cli.invoke(app, ["eval", str(root), "--rules", str(tmp_path / "loud")])
    assert table.exit_code == 0, table.stderr
    assert "inc-\\x1b]0;owned\\x07\\x1b[2J\\u202eevil\\n" in table.stdout
    explained = cli.invoke(app, ["explain", "n1/web", str(root), "--rules", str(tmp_path / "loud")])
    assert explained.exit_code == 0, explained.stderr
    for output in (table.stdout, explained.stdout):
        assert not CONTROL.search(output)
        assert max(map(len, output.splitlines())) < 2 * REASON_LIMIT
    document = json.loads(cli.invoke(app, ["eval", str(root), "--rules", str(tmp_path / "loud"),
                                           "--format", "json"]).stdout)
    (logged,) = [r for r in document["recommendations"] if r["rule"] == "log-line"]
    assert len(logged["reason"]) == REASON_LIMIT and logged["reason"].endswith("…")
    broken = cli.invoke(app, ["explain", "web\x1b[2J", str(root)])
    assert broken.exit_code == 2
    assert "web\\x1b[2J" in broken.stderr and not CONTROL.search(broken.stderr)


def test_no_control_character_reaches_the_test_output(cli: CliRunner, tmp_path: Path) -> None:
    root = write_scenario(tmp_path / "s", {"n1": "services:\n  web: {}\n"},
                          services={"n1/web\x1b[2J": {"status": "ok"}})
    (root / "expect.yaml").write_text("summary: nominal\n")
    result = cli.invoke(app, ["test", str(root), "--junit", str(tmp_path / "junit.xml")])
    assert result.exit_code == 1
    assert "n1/web\\x1b[2J" in result.stdout and not CONTROL.search(result.stdout)
    (case,) = ET.parse(tmp_path / "junit.xml").iter("testcase")  # well-formed XML
    failure = case.find("failure")
    assert failure is not None and "n1/web\\x1b[2J" in (failure.text or "")


def test_the_table_fits_100_columns(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", str(FIXTURES / "homelab")])
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 100
    assert lines[3:5] == [
        "  blocked      delayed_deployment  edge01/home-assistant is degraded and waits on",
        "                                   edge01/zigbee2mqtt  [dependency-unavailable]"]


def test_counts_are_in_words(cli: CliRunner, scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  web: {}\n"}, services={"n1/web": {"status": "ok"}})
    result = cli.invoke(app, ["validate", str(root)])
    assert result.stdout.startswith(
        "valid: 1 node and 1 service declared, 1 service observed, ")
    table = cli.invoke(app, ["eval", str(FIXTURES / "homelab")]).stdout
    assert "(s)" not in table
    assert "infra01/gitea: 1 failed deployment since the last" in table
    assert "has 1 unresolved incident: inc-0042" in " ".join(table.split())


def test_bare_supervisor_shows_help_and_succeeds(cli: CliRunner) -> None:
    result = cli.invoke(app, [])
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: supervisor [OPTIONS] COMMAND [ARGS]...")
    assert "eval " in result.stdout and "explain " in result.stdout


def test_explain_says_at_the_top_what_overruled_the_subject(cli: CliRunner) -> None:
    result = cli.invoke(app, ["explain", "uptime-kuma", str(FIXTURES / "homelab")])
    assert result.stdout.splitlines()[:4] == [
        "lab01/uptime-kuma  service",
        "  no recommendations: overruled by a root cause",
        "  overruled  redeploy (service-unhealthy), by node-offline on lab01",
        "    which recommends failover_review: lab01 is offline, last seen 2026-11-26T09:20:00Z",
    ]


def test_text_str_isprintable_passes_holds_nothing_to_escape() -> None:
    # The pattern is compiled only for text `str.isprintable` refuses: that shortcut must never
    # let through a character the pattern escapes.
    from supervisor import terminal

    pattern = re.compile(terminal._CONTROLS)
    escaped = [chr(code) for code in range(0x110000) if pattern.match(chr(code))]
    assert len(escaped) == 32 + 33 + 2 + 5 + 4
    for character in escaped:
        assert not character.isprintable()
        assert terminal.printable(f"a{character}b") != f"a{character}b"


def test_a_table_of_plain_text_compiles_no_pattern(scenario: ScenarioFactory) -> None:
    from supervisor import terminal

    root = scenario({"n1": "services:\n  app: {}\n"}, services={"n1/app": {"status": "failed"}})
    terminal._control.cache_clear()
    result = CliRunner().invoke(app, ["eval", str(root)])
    assert "n1/app" in result.output
    assert terminal._control.cache_info().currsize == 0
