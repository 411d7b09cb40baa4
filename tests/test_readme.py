"""The README's Python examples run as written (all but the fragment that needs a `hf_model` and
the one that needs a finished pretraining run in runs/)."""

import pathlib
import re

import pytest

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README, re.S)
          if "hf_model" not in b and "runs/" not in b]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch, minilm_dir):
    monkeypatch.chdir(tmp_path)                       # examples may write files
    namespace = {}
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)


def test_readme_has_the_examples():
    assert len(BLOCKS) >= 2
    assert "model.backward()" in BLOCKS[0] and "optimizer.step" in BLOCKS[0]
    assert "sentence_embeddings" in BLOCKS[1]
