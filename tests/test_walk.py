"""The walk of the inputs: every file once, in a stable order, links to files followed and links
to directories not, and a hash of the stamps that moves with any change a loader would see."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor import walk as walk_module
from supervisor.walk import Listing, _list, walk


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for relative, text in [("b.yaml", "b"), ("a/z.json", "z"), ("a/y.json", "y"),
                           ("a/deeper/x.json", "x"), ("c/w.json", "w")]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def files(listing: Listing) -> list[tuple[str, bool, bool]]:
    """(relative path, a status was found, a link) of every file, in walk order."""
    return [(relative, status is not None, linked)
            for _, relative, status, linked in listing.walked()]


def test_a_directory_s_files_come_in_name_order_before_its_subdirectories(tree: Path) -> None:
    assert files(walk([str(tree)])) == [
        ("/b.yaml", True, False), ("/a/y.json", True, False), ("/a/z.json", True, False),
        ("/a/deeper/x.json", True, False), ("/c/w.json", True, False)]


def test_the_walk_finds_what_os_walk_finds_with_the_same_statuses(tree: Path) -> None:
    walked = {relative: status for _, relative, status, _ in walk([str(tree)]).walked()}
    expected = {}
    for directory, _, names in os.walk(tree):
        for name in names:
            path = os.path.join(directory, name)
            expected[path[len(str(tree)):]] = os.stat(path, follow_symlinks=False)
    assert {relative: (status.st_ino, status.st_mtime_ns, status.st_size)
            for relative, status in walked.items() if status is not None} == {
        relative: (status.st_ino, status.st_mtime_ns, status.st_size)
        for relative, status in expected.items()}


def test_the_order_is_the_names_whatever_order_the_directories_give(tree: Path) -> None:
    listing = walk([str(tree)])
    listing.directories.reverse()
    for directory in listing.directories:
        directory.names.reverse()  # with statuses misplaced: only the order is looked at here
    assert [relative for _, relative, _, _ in listing.walked()] == [
        "/b.yaml", "/a/y.json", "/a/z.json", "/a/deeper/x.json", "/c/w.json"]


def test_a_directory_moved_to_another_root_moves_the_stamps(tmp_path: Path) -> None:
    for root in ("one", "two"):
        (tmp_path / root).mkdir()
    (tmp_path / "one" / "sub").mkdir()
    (tmp_path / "one" / "sub" / "f.json").write_text("{}")
    roots = [str(tmp_path / "one"), str(tmp_path / "two")]
    before = walk(roots).stamps()[0]
    os.rename(tmp_path / "one" / "sub", tmp_path / "two" / "sub")  # the file's stamp stays
    assert walk(roots).stamps()[0] != before


def test_a_file_root_is_one_file(tree: Path) -> None:
    listing = walk([str(tree / "b.yaml")])
    assert listing.walked()[0][:2] == (str(tree / "b.yaml"), "")
    assert files(listing) == [("", True, False)]


def test_links_to_files_are_followed_and_links_to_directories_are_not(tree: Path,
                                                                      tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "rule.yaml").write_text("rules: []\n")
    (tree / "linked.yaml").symlink_to(tmp_path / "elsewhere" / "rule.yaml")
    (tree / "dangling.yaml").symlink_to(tmp_path / "nowhere")
    (tree / "a-directory").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(tree / "fifo")
    walked = {relative: (status, linked) for _, relative, status, linked in
              walk([str(tree)]).walked()}
    status, linked = walked["/linked.yaml"]
    assert linked and status is not None
    assert status.st_ino == (tmp_path / "elsewhere" / "rule.yaml").stat().st_ino
    assert walked["/dangling.yaml"] == (None, True)
    assert walked["/a-directory"] == (None, True)  # listed as a link, never walked into
    assert walked["/fifo"] == (None, False)
    assert not any(relative.startswith("/a-directory/") for relative in walked)


def test_a_directory_swapped_for_a_link_after_listing_is_not_followed(tree: Path,
                                                                      tmp_path: Path) -> None:
    if not walk_module._BY_DESCRIPTOR:
        pytest.skip("this platform lists directories by path")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.json").write_text("{}")
    os.rename(tree / "c", tmp_path / "c-was-here")
    (tree / "c").symlink_to(tmp_path / "elsewhere")
    listing = Listing([str(tree)])
    assert _list(0, str(tree), f"{tree}/c", listing) == []  # as if it had gone
    assert listing.statuses == []


def test_an_unreadable_or_vanished_directory_is_skipped(tree: Path) -> None:
    listing = Listing([str(tree)])
    assert _list(0, str(tree), f"{tree}/gone", listing) == []
    assert files(walk([str(tree / "gone")])) == []


def stamps(tree: Path) -> bytes:
    return walk([str(tree)]).stamps()[0]


def test_the_stamps_are_the_same_for_the_same_tree(tree: Path) -> None:
    assert stamps(tree) == stamps(tree)


@pytest.mark.parametrize("change", ["content", "rename", "add", "remove", "link target",
                                    "file to link"])
def test_the_stamps_move_with_every_change(tree: Path, tmp_path: Path, change: str) -> None:
    (tmp_path / "one.yaml").write_text("one")
    (tmp_path / "two.yaml").write_text("two")
    (tree / "rule.yaml").symlink_to(tmp_path / "one.yaml")
    before = stamps(tree)
    if change == "content":
        (tree / "a" / "y.json").write_text("Y")  # same size, in place
    elif change == "rename":
        os.rename(tree / "a" / "y.json", tree / "a" / "x.json")
    elif change == "add":
        (tree / "c" / "v.json").write_text("v")
    elif change == "remove":
        (tree / "c" / "w.json").unlink()
    elif change == "link target":
        (tree / "rule.yaml").unlink()
        (tree / "rule.yaml").symlink_to(tmp_path / "two.yaml")
    else:
        os.replace(tree / "b.yaml", tmp_path / "b.yaml")
        (tree / "b.yaml").symlink_to(tmp_path / "b.yaml")  # the very same file, now a link
    assert stamps(tree) != before


def test_the_newest_ctime_is_of_the_regular_files(tree: Path) -> None:
    newest = max(os.stat(os.path.join(directory, name)).st_ctime_ns
                 for directory, _, names in os.walk(tree) for name in names)
    assert walk([str(tree)]).stamps()[1] == newest
    assert walk([str(tree / "gone")]).stamps()[1] == 0
