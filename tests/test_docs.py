"""The guided reading (docs/guide/, and in Korean docs/ko/) cannot go stale: every ```python block
of a chapter runs, in order, in one namespace, and each `# ->` comment is what its print writes
(the README's rules: tests/test_readme.py)."""

import builtins
import doctest
import io
import pathlib
import re
import sys

import pytest
from test_readme import CHECKER, expected_outputs

DOCS = pathlib.Path(__file__).parent.parent / "docs"
CHAPTERS = sorted(DOCS.glob("guide/*.md")) + sorted(DOCS.glob("ko/*.md"))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[f"{p.parent.name}/{p.name}" for p in CHAPTERS])
def test_every_code_block_runs_and_prints_what_it_says(chapter, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", chapter.read_text(encoding="utf-8"), re.S)
    assert blocks, f"{chapter.name} has no code"
    namespace = {}
    for index, block in enumerate(blocks):
        printed = {}

        def recording_print(*args, **kwargs):
            text = io.StringIO()
            builtins.print(*args, **{**kwargs, "file": text})
            printed.setdefault(sys._getframe(1).f_lineno, []).append(text.getvalue())

        namespace["print"] = recording_print
        exec(compile(block, f"{chapter.name} block {index}", "exec"), namespace)
        for line, want in expected_outputs(block).items():
            got = "".join(printed.get(line, []))
            assert CHECKER.check_output(want + "\n", got, doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE), \
                f"{chapter.name} block {index}, line {line}: expected\n{want}\ngot\n{got}"


def test_the_korean_reading_follows_the_english_one():
    english = sorted(p.name for p in DOCS.glob("guide/*.md"))
    assert english and sorted(p.name for p in DOCS.glob("ko/*.md")) == english


LINK = re.compile(r"\[`?[^\]]*?`?\]\(([^)#\s]+)\)")
LINKED_FILE_WITH_NAMES = re.compile(r"\[`([\w/.-]+\.py)`\]\([^)]+\)\s*\(([^)]*)\)")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[f"{p.parent.name}/{p.name}" for p in CHAPTERS])
def test_every_link_and_named_function_exists(chapter):
    """A chapter's links lead to files that exist, and the functions and classes it names beside
    a linked file, "[`file.py`](...) (`name`, ...)", are defined in that file."""
    text = chapter.read_text(encoding="utf-8")
    root = DOCS.parent
    for target in LINK.findall(text):
        if "://" not in target:
            assert (chapter.parent / target).resolve().exists(), f"{chapter.name}: {target} does not exist"
    for path, names in LINKED_FILE_WITH_NAMES.findall(text):
        source = (root / path).read_text(encoding="utf-8")
        for dotted in re.findall(r"`([\w.]+)`", names):         # a function, a class, Class.method
            for name in dotted.split("."):
                assert re.search(rf"^\s*(def|class) {name}\b|^{name} = ", source, re.M), \
                    f"{chapter.name}: {path} defines no {dotted}"
