"""The attention explorer (minibert/tools/explore.py): what the page holds is what the model
computed (to the stated rounding), the page is self-contained and small, the command line, and
(tests/test_explore_browser.py) what a real browser draws from it."""

import re

import numpy as np
import pytest
from helpers import one_line_error

from minibert import BertModel
from minibert.cli import main
from minibert.states import encoder_trace
from minibert.tools.explore import PROB_SCALE, decode_data, explore, model_sources

TEXT = "The cat sat on the mat because it was tired."
PAIR = "Then it slept for a long time on the warm mat."
F16 = 2.0 ** -11                                   # float16's relative rounding (half an ulp of 1)


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return BertModel.from_pretrained(minilm_dir)


def the_models_numbers(model, text, pair, pad_to):
    enc = model.tokenizer(text, pair, padding="max_length", truncation=True, max_length=pad_to)
    trace = encoder_trace(model.params, model.config, enc.input_ids, enc.token_type_ids, enc.attention_mask)
    own = model(enc.input_ids, enc.attention_mask, enc.token_type_ids, output_attentions=True).attentions
    return enc, trace, own


def test_the_page_holds_what_the_model_computed(minilm):
    page = explore(minilm, TEXT, pair=PAIR, pad_to=40)
    enc, trace, own = the_models_numbers(minilm, TEXT, PAIR, 40)
    data = page.data
    assert data["tokens"] == minilm.tokenizer.convert_ids_to_tokens(enc.input_ids[0])
    assert data["mask"] == enc.attention_mask[0].tolist() and 0 in data["mask"]          # padded
    assert data["segment"] == enc.token_type_ids[0].tolist() and 1 in data["segment"]    # a pair
    assert [t for t, s in zip(data["tokens"], data["special"]) if s] == ["[CLS]", "[SEP]", "[SEP]"] + ["[PAD]"] * 14
    (got,) = decode_data(data)
    for layer in range(minilm.config.num_hidden_layers):
        # probabilities to the 16-bit rounding (|error| <= 0.5 / 65535), from the float32 trace,
        # which attention_pass holds to the model's own attention within 1e-4 relative
        np.testing.assert_allclose(got["probs"][layer], own[layer][0], rtol=1e-4, atol=0.5 / PROB_SCALE)
        for name in ("q", "k", "v"):
            want = trace[f"layer.{layer}.attention.{name}"][0]                            # (H, T, D)
            np.testing.assert_allclose(got[name][layer], want, rtol=F16, atol=6e-8)
        q, k = (trace[f"layer.{layer}.attention.{n}"][0].astype(np.float64) for n in "qk")
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        np.testing.assert_allclose(got["scores"][layer], scores, rtol=F16, atol=6e-8)
    assert np.all(got["probs"][:, :, :, np.array(data["mask"]) == 0] == 0)               # nobody attends to padding


def test_the_page_is_self_contained_and_small(minilm):
    page = explore(minilm, TEXT, pair=PAIR, pad_to=40)
    text = str(page)
    assert len(page.data["tokens"]) == 40
    assert len(text.encode()) < 2_000_000, len(text)                  # 6 layers x 12 heads, 40 tokens
    # nothing from a network: no external script, style, image or font, no loader
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", text)
    for needle in ("url(", "@import", "fetch(", "XMLHttpRequest", "require(", "import("):
        assert needle not in text, needle
    assert re.findall(r"https?://[^\s\"'<>]+", text) == ["http://www.w3.org/2000/svg"]    # SVG's namespace only
    assert "{{" not in text and "/*{{" not in text                   # every placeholder filled
    assert f"attention of {page.data['model']}" in text


def test_a_notebook_shows_it_in_a_frame_of_its_own(minilm):
    import html
    page = explore(minilm, "I love Korea")
    shown = page._repr_html_()
    assert shown.startswith("<iframe srcdoc=\"") and 'sandbox="allow-scripts"' in shown
    srcdoc = re.match(r'<iframe srcdoc="([^"]*)"', shown).group(1)
    assert html.unescape(srcdoc) == str(page)


def test_several_models_of_one_shape_and_vocabulary(minilm, tmp_path):
    random = BertModel(minilm.config, seed=1)
    random.tokenizer = minilm.tokenizer
    page = explore([("random weights", random), ("all-MiniLM-L6-v2", minilm)], TEXT, pad_to=24)
    assert [m["label"] for m in page.data["models"]] == ["random weights", "all-MiniLM-L6-v2"]
    a, b = decode_data(page.data)
    assert np.abs(a["probs"] - b["probs"]).max() > 0.1
    import dataclasses
    small = BertModel(dataclasses.replace(minilm.config, num_hidden_layers=2))
    small.tokenizer = minilm.tokenizer
    with pytest.raises(ValueError, match="2 layers x 12 heads.*one shape"):
        explore([minilm, small], TEXT)


def test_a_run_directory_gives_its_snapshots_and_checkpoints_in_step_order(minilm, tmp_path):
    run = tmp_path / "run"
    for name in ("snapshots/step-0000000", "snapshots/step-0000010", "checkpoint-0000010", "checkpoint-0000020"):
        minilm.save_pretrained(run / name)
        if name.startswith("checkpoint"):
            (run / name / "trainer_state.json").write_text("{}")
    minilm.save_pretrained(run / "model")
    assert [(label, p.relative_to(run).as_posix()) for label, p in model_sources(run)] == [
        ("step 0", "snapshots/step-0000000"), ("step 10", "snapshots/step-0000010"),
        ("step 20", "checkpoint-0000020")]
    assert [label for label, _ in model_sources(run / "model")] == ["model"]
    with pytest.raises(ValueError, match="neither a model directory"):
        model_sources(tmp_path / "nothing-here")


def test_explore_cli(minilm_dir, tmp_path, capsys):
    out = tmp_path / "attention.html"
    assert main(["explore", "--model", str(minilm_dir), TEXT, "--pair", PAIR, "--pad-to", "40",
                 "--output", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out} (") and "1 model, 40 tokens" in said
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["explore", "--model", str(tmp_path / "missing"), "Hi", "--output", str(out)]) == 2
    one_line_error(capsys, "missing: no such directory")
    assert main(["explore", "--model", str(minilm_dir), "Hi", "--pad-to", "2", "--output", str(out)]) == 2
    one_line_error(capsys, "--pad-to must be at least 4")
    assert main(["explore", "--model", str(minilm_dir), "Hi", "--output", str(tmp_path)]) == 2
    one_line_error(capsys, "is a directory")
    assert main(["explore", "--model", str(minilm_dir), "  ", "--output", str(out)]) == 2
    one_line_error(capsys, "non-empty text")
