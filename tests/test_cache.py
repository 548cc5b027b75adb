"""The cache of parsed inputs: same output warm or cold, never trusted when it should not be."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import FIXTURES, ROOT
from typer.testing import CliRunner

from supervisor import cache, loader
from supervisor.cli import app

SCENARIOS = sorted(path.name for path in FIXTURES.iterdir() if (path / "hosts").is_dir())


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written a moment ago count as settled (outside tests that takes two seconds)."""
    monkeypatch.setattr(cache, "RACY_NS", -1)


def evaluate(directory: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["eval", str(directory), "--format", "json", *extra])
    return result.exit_code, result.output


def cold(directory: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    with monkeypatch.context() as patch:
        patch.setenv("SUPERVISOR_CACHE", "off")
        return evaluate(directory)


def no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    real = loader.read_text

    def refuse(*args: Any, **kwargs: Any) -> str:
        if Path(args[0]).name == "expect.yaml":  # the scenario's settings, not an input
            return real(*args, **kwargs)
        raise AssertionError(f"read {args[0]} although the cache holds it")

    monkeypatch.setattr(loader, "read_text", refuse)


def cache_files() -> list[Path]:
    return sorted(Path(os.environ["SUPERVISOR_CACHE_DIR"]).glob("*.json"))


def warm_homelab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, tuple[int, str]]:
    """A copy of the example homelab, its cache filled, and what it evaluates to."""
    lab = tmp_path / "homelab"
    shutil.copytree(FIXTURES / "homelab", lab)
    expected = cold(lab, monkeypatch)
    assert evaluate(lab) == expected  # fills the cache, ASTs and all
    return lab, expected


def edited(path: Path, edit: Callable[[Any], Any]) -> None:
    """A cache file's entries rewritten by `edit`, its checksum made to match, as if the
    program had written them."""
    import zlib

    import orjson

    header, _, body = path.read_bytes().partition(b"\n")
    body = orjson.dumps(edit(orjson.loads(body)))
    meta = {**json.loads(header), "crc32": zlib.crc32(body)}
    path.write_bytes(json.dumps(meta).encode() + b"\n" + body)


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_warm_cache_gives_the_same_bytes_and_reads_nothing(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusting: None) -> None:
    directory = tmp_path / name
    shutil.copytree(FIXTURES / name, directory)
    expected = cold(directory, monkeypatch)
    assert cache_files() == []  # off means off
    assert evaluate(directory) == expected  # fills the cache
    if expected[0] == 2:
        return  # files with problems are never cached: they are read again to point at them
    no_reading(monkeypatch)
    assert evaluate(directory) == expected


def test_a_generated_lab_evaluates_the_same_warm_and_cold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusting: None) -> None:
    lab = tmp_path / "lab"
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(lab), "--nodes", "12",
                    "--services", "15"], check=True, stdout=subprocess.DEVNULL)
    expected = cold(lab, monkeypatch)
    assert expected[0] in (0, 1) and evaluate(lab) == expected
    no_reading(monkeypatch)
    assert evaluate(lab) == expected


def test_a_changed_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      trusting: None) -> None:
    lab = tmp_path / "homelab"
    shutil.copytree(FIXTURES / "homelab", lab)
    evaluate(lab)
    record = lab / "world" / "services" / "media01" / "sonarr.json"
    text = record.read_text()
    status = json.loads(text)["status"]
    changed = text.replace(f'"{status}"', '"gone"' if status != "gone" else '"ok"')
    # Same inode, same size where possible, even the same mtime: the ctime still moves.
    before = record.stat()
    with open(record, "r+") as handle:
        handle.write(changed)
        handle.truncate()
    os.utime(record, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert evaluate(lab) == cold(lab, monkeypatch)


def test_a_file_written_within_the_racy_window_is_not_trusted(tmp_path: Path) -> None:
    stamp = (1, 10**18, 5, 10**18)
    assert not cache.trusted(stamp, 10**18 + cache.RACY_NS)
    assert cache.trusted(stamp, 10**18 + cache.RACY_NS + 1)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "body", "identity", "mode", "link",
                                    "not-a-mapping", "foreign-value", "foreign-ast"])
def test_a_bad_cache_is_ignored_and_rebuilt(damage: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            trusting: None) -> None:
    lab = tmp_path / "homelab"
    shutil.copytree(FIXTURES / "homelab", lab)
    expected = cold(lab, monkeypatch)
    evaluate(lab)
    for path in cache_files():
        data = path.read_bytes()
        header, _, body = data.partition(b"\n")
        meta = json.loads(header)
        if damage == "garbage":
            path.write_bytes(b"\x80not json at all")
        elif damage == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif damage == "body":  # a flipped value: the hash no longer matches
            path.write_bytes(header + b"\n" + body.replace(b'"ok"', b'"no"'))
        elif damage == "identity":  # another version of the program wrote it
            meta["identity"] = "0" * 64
            path.write_bytes(json.dumps(meta).encode() + b"\n" + body)
        elif damage == "mode":  # others could have written it
            path.chmod(0o666)
        elif damage == "link":
            target = tmp_path / f"elsewhere-{path.name}"
            path.rename(target)
            path.symlink_to(target)
        elif damage == "not-a-mapping":
            cache.write(path, meta["identity"], [])  # type: ignore[arg-type]
        elif damage == "foreign-value":  # right hash and identity, but not a value we write
            entries = cache.read(path, meta["identity"])
            assert entries is not None
            for entry in entries.get("files", {}).values():
                entry[5] = "not a mapping"
            for entry in entries.get("directories", {}).values():  # the world's, records.py
                entry[4] = dict.fromkeys(entry[4], "not a mapping")
            cache.write(path, meta["identity"], entries)
        elif damage == "foreign-ast" and path.name.startswith("rules-"):
            entries = cache.read(path, meta["identity"])
            assert entries is not None
            for entry in entries["files"].values():
                entry[5][1] = dict.fromkeys(entry[5][1], "not an AST")
            cache.write(path, meta["identity"], entries)
    assert evaluate(lab) == expected
    no_reading(monkeypatch)
    assert evaluate(lab) == expected  # rebuilt


def test_a_warm_cache_parses_no_rule_expression_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusting: None) -> None:
    from supervisor import expressions

    lab, expected = warm_homelab(tmp_path, monkeypatch)

    def refuse(expression: str) -> None:
        raise AssertionError(f"parsed {expression!r} although the cache holds its AST")

    monkeypatch.setattr(expressions.jmespath, "compile", refuse)
    assert evaluate(lab) == expected


def test_an_expression_json_would_change_is_parsed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusting: None) -> None:
    # JSON has no infinity: kept in the cache, the literal would come back as null and the rule
    # would stop firing.
    lab = tmp_path / "homelab"
    shutil.copytree(FIXTURES / "homelab", lab)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "rules.yaml").write_text(
        "rules:\n  - id: beyond-every-number\n    condition: unhealthy_service\n"
        "    match: \"`1e999` != null\"\n    event: reconcile_required\n"
        "    action: redeploy\n    reason: \"{{ `1e999` }} is not null\"\n")
    expected = cold(lab, monkeypatch)
    with monkeypatch.context() as patch:
        patch.setenv("SUPERVISOR_CACHE", "off")
        fired = evaluate(lab, "--rules", str(extra))
    assert "beyond-every-number" in fired[1] and fired != expected
    assert evaluate(lab, "--rules", str(extra)) == fired
    assert evaluate(lab, "--rules", str(extra)) == fired


def test_eval_with_a_warm_cache_imports_neither_yaml_nor_the_validator(tmp_path: Path) -> None:
    # Fixture files are older than the racy window; a subprocess cannot be told otherwise.
    code = ("import sys\nfrom supervisor.cli import main\n"
            "try:\n    main(['eval', *sys.argv[1:]])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('yaml', 'jsonschema', 'jsonschema_rs') if m in sys.modules],"
            " file=sys.stderr)\n")
    argv = [sys.executable, "-c", code, "--inventory", str(FIXTURES / "homelab" / "hosts"),
            "--world", str(FIXTURES / "homelab" / "world")]
    first = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert "yaml" in first.stderr  # the cold run parses
    second = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert second.stderr.strip() == "[]"
    assert second.stdout == first.stdout


def test_the_dependency_checks_run_again_only_when_a_file_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusting: None) -> None:
    from supervisor import inventory

    lab = tmp_path / "homelab"
    shutil.copytree(FIXTURES / "homelab", lab)
    runs: list[int] = []
    real = inventory._check_dependencies
    monkeypatch.setattr(inventory, "_check_dependencies",
                        lambda *args: runs.append(1) or real(*args))
    expected = cold(lab, monkeypatch)
    assert evaluate(lab) == expected and len(runs) == 2  # cold, then filling the cache
    assert evaluate(lab) == expected and len(runs) == 2  # the same files: they passed
    # A dependency on a service no node declares, in a file that was valid and cached.
    services = next((lab / "hosts").glob("*/services.yaml"))
    services.write_text(services.read_text().replace("services:\n", (
        "services:\n  orphan:\n    depends_on: [nowhere]\n"), 1))
    code, output = evaluate(lab)
    assert code == 2 and "depends on" in output and "which no node declares" in output
    assert len(runs) == 3
    assert evaluate(lab) == (code, output) and len(runs) == 4  # a failed check is not kept


EVERY_KIND = [  # between them, every kind of node the parser makes
    "a.b.c", "a[0]", "a[1:3:1]", "a[*].b", "a.*", "a[]", "a[?b == `1`].c", "@", "`{\"x\": 1}`",
    "{x: a, y: b}", "[a, b]", "a || b", "a && !b", "a | b", "length(a)", "sort_by(a, &b)",
    "a[?b < `2`] | [0]", "a[?b >= c]",
]

MISSHAPEN = [
    {"type": "nonsense", "children": []},
    {"type": "field", "children": []},  # no name
    {"type": "field", "children": [], "value": 7},
    {"type": "field", "children": [{"type": "current", "children": []}], "value": "a"},
    {"type": "field", "children": [], "value": "a", "extra": 1},
    {"type": "comparator", "children": [{"type": "current", "children": []}] * 2,
     "value": "like"},
    {"type": "pipe", "children": [{"type": "current", "children": []}]},
    {"type": "slice", "children": [0, "end", None]},
    {"type": "multi_select_dict", "children": [{"type": "current", "children": []}]},
    {"type": "function_expression", "children": [], "value": "system"},
    {"type": "index_expression", "children": "ab"},
    ["not", "a", "node"],
]


def test_every_ast_the_parser_makes_passes_for_one_it_could_make() -> None:
    from supervisor.expressions import compile_expression, well_formed
    from supervisor.functions import function_names

    known = set(function_names())
    for text in EVERY_KIND:
        ast, problems = compile_expression(text, known)
        assert not problems and well_formed(ast, known), text
    for misshapen in MISSHAPEN:
        assert not well_formed(misshapen, known), misshapen
    deep: dict[str, Any] = {"type": "current", "children": []}
    for _ in range(200):
        deep = {"type": "not_expression", "children": [deep]}
    assert not well_formed(deep, known)


def test_a_cache_holding_an_ast_the_parser_could_not_make_is_parsed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusting: None) -> None:
    lab, expected = warm_homelab(tmp_path, monkeypatch)

    def misshapen(entries: dict[str, Any]) -> dict[str, Any]:
        for entry in entries["files"].values():
            asts = entry[5][1]
            for text, tree in zip(sorted(asts), MISSHAPEN[:-1] * 10, strict=False):
                asts[text] = tree
        return entries

    (path,) = Path(os.environ["SUPERVISOR_CACHE_DIR"]).glob("rules-*.json")
    edited(path, misshapen)
    assert evaluate(lab) == expected


def garbled(value: Any, depth: int, stand_in: Any) -> Any:
    """`value` with everything `depth` levels down replaced by `stand_in`."""
    if depth == 0:
        return stand_in
    if isinstance(value, dict):
        return {key: garbled(item, depth - 1, stand_in) for key, item in value.items()}
    if isinstance(value, list):
        return [garbled(item, depth - 1, stand_in) for item in value]
    return value


@pytest.mark.parametrize("stand_in", [7, "not a time"])
@pytest.mark.parametrize("depth", range(2, 9))
def test_a_cache_edited_past_its_checksum_gives_the_inputs_own_answer(
        depth: int, stand_in: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        trusting: None) -> None:
    lab, expected = warm_homelab(tmp_path, monkeypatch)
    for path in cache_files():
        edited(path, lambda entries: garbled(entries, depth, stand_in))
    assert evaluate(lab) == expected
