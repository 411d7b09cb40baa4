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


def test_head_colours_stay_apart_for_colour_blind_readers():
    """The heads' colours, seen with each kind of dichromacy (Machado, Oliveira & Fernandes 2009,
    severity 1), stay at least 15 CIELAB units (CIE76) apart; heads beyond the palette get a dash."""
    import itertools
    from pathlib import Path

    import minibert.tools.explore as module
    script = (Path(module.__file__).parent / "explore.js").read_text()
    colours = re.findall(r'"(#[0-9A-Fa-f]{6})"', re.search(r"const COLOURS = \[(.*?)\];", script).group(1))
    dashes = re.findall(r'"([^"]*)"', re.search(r"const DASHES = \[(.*?)\];", script).group(1))
    assert len(colours) == 8 and len(set(dashes)) == len(dashes) == 4        # 32 heads told apart
    simulate = {"protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                               [-0.003882, -0.048116, 1.051998]],
                "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                                 [-0.011820, 0.042940, 0.968881]],
                "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                               [0.004733, 0.691367, 0.303900]],
                "normal vision": np.eye(3)}

    def linear(hex_colour):
        c = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)

    def lab(rgb):                                            # linear sRGB -> CIELAB (D65)
        xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ rgb
        f = xyz / np.array([0.95047, 1.0, 1.08883])
        f = np.where(f > 0.008856, np.cbrt(f), 7.787 * f + 16 / 116)
        return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])

    for vision, matrix in simulate.items():
        seen = [lab(np.clip(np.array(matrix) @ linear(c), 0, 1)) for c in colours]
        closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(seen, 2))
        assert closest >= 15, (vision, closest)
