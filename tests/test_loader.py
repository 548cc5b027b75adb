from __future__ import annotations

import time
from pathlib import Path

import pytest

from supervisor.errors import InputError
from supervisor.limits import Limits
from supervisor.loader import load_json, load_yaml

MAX_DEPTH = Limits().depth


def write(tmp_path: Path, text: str | bytes, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def problems(path: Path, loader=load_yaml) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as caught:
        loader(path)
    return [str(p) for p in caught.value.problems]


def test_plain_yaml_keeps_json_types_and_timestamps_as_text(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\nb: 1.5\nc: true\nd: null\ne: 2026-11-26T10:00:00Z\nf: [x]\n")
    assert load_yaml(path).value == {
        "a": 1, "b": 1.5, "c": True, "d": None, "e": "2026-11-26T10:00:00Z", "f": ["x"]}


def test_duplicate_keys_are_errors_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  web: {}\n  db: {}\n  web: {}\n")
    assert problems(path) == [
        f"{path}:4:3: services.web: duplicate key 'web' (first defined at line 2)"]


def test_every_duplicate_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\na: 2\nb: {c: 1, c: 2}\n")
    assert len(problems(path)) == 2


def test_merge_keys_work_and_explicit_keys_win(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "base: &base {critical: false, labels: {tier: app}}\n"
        "extra: &extra {image: x, critical: true}\n"
        "web:\n  <<: [*base, *extra]\n  critical: true\n"
    ))
    assert load_yaml(path).value["web"] == {
        "critical": True, "labels": {"tier": "app"}, "image": "x"}


def test_merged_key_repeated_explicitly_is_not_a_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path, "d: &d {a: 1}\ne:\n  <<: *d\n  a: 2\n")
    assert load_yaml(path).value["e"] == {"a": 2}


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    path = write(tmp_path, "\n".join(lines) + "\n")
    started = time.perf_counter()
    assert "alias bomb" in problems(path)[0]
    # Refused after a bounded amount of work, not after expanding 10^9 values.
    assert time.perf_counter() - started < 5


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a: &a [*a]\n")
    found = problems(path)
    assert len(found) == 1
    assert str(path) in found[0]


def test_non_utf8_names_line_and_byte(tmp_path: Path) -> None:
    path = write(tmp_path, b"services:\n  web: {image: caf\xe9}\n")
    assert problems(path) == [f"{path}:2:19: is not valid UTF-8 (byte 0xe9)"]


def test_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  web: [unclosed\n")
    (message,) = problems(path)
    assert message.startswith(f"{path}:3:1: invalid YAML:")


def test_empty_file(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "# nothing\n")) == [f"{tmp_path / 'file.yaml'}:1:1: is empty"]


def test_non_string_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "1: a\n")
    assert problems(path) == [f"{path}:1:1: key '1' must be a string (quote it)"]


def test_unsupported_tag(tmp_path: Path) -> None:
    path = write(tmp_path, "a: !!binary aGVsbG8=\n")
    assert "unsupported YAML tag" in problems(path)[0]


def test_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    assert "not a finite number" in problems(write(tmp_path, "a: .inf\n"))[0]


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    depth = MAX_DEPTH + 5
    path = write(tmp_path, "[" * depth + "]" * depth + "\n")
    assert "nested more than" in problems(path)[0]


def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: does not exist"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    assert problems(tmp_path / "dir.yaml") == [f"{tmp_path / 'dir.yaml'}: is not a regular file"]


def test_locate_finds_values_and_keys(tmp_path: Path) -> None:
    document = load_yaml(write(tmp_path, "services:\n  web:\n    critical: 'yes'\n"))
    assert document.locate(("services", "web", "critical")) == (3, 15)
    assert document.locate(("services", "web", "critical"), key=True) == (3, 5)
    # A path that is not in the file falls back to its nearest enclosing value.
    assert document.locate(("services", "web", "image")) == (3, 5)


def test_json_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{"status": "ok",\n "since": }', "record.json")
    assert problems(path, load_json) == [f"{path}:2:11: invalid JSON: Expecting value"]


def test_json_refuses_nan(tmp_path: Path) -> None:
    path = write(tmp_path, '{"a": NaN}', "record.json")
    assert "NaN is not a JSON number" in problems(path, load_json)[0]


def test_json_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "[" * 100_000 + "]" * 100_000, "record.json")
    assert "nested too deeply" in problems(path, load_json)[0]


def test_a_tab_is_called_a_tab(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n\tweb: {}\n")
    assert problems(path) == [(f"{path}:2:1: invalid YAML: a tab: YAML indents with spaces only "
                              "(replace the tab with spaces)")]


def test_a_number_too_long_to_read_is_named_in_our_words(tmp_path: Path) -> None:
    digits = "9" * 100_000
    record = write(tmp_path, '{"status": "ok",\n "n": ' + digits + "}", "record.json")
    assert problems(record, load_json) == [
        (f"{record}:2:7: invalid JSON: a number of 100000 digits; numbers are limited to 4300 "
        "digits")]
    services = write(tmp_path, "services:\n  web: {x-n: " + digits + "}\n")
    (message,) = problems(services)
    assert message == (f"{services}:2:14: services.web.x-n: a number of 100000 digits; numbers "
                       "are limited to 4300 digits")
    assert "sys.set_int_max_str_digits" not in message
