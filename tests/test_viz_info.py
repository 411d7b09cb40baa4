"""Pictures (files written, right size, not blank, drawing what the model computed), `minibert
info`'s counts against real models, and the named sizes."""

import numpy as np
import pytest
import transformers
from helpers import tiny_config

from minibert import BertForPreTraining, BertModel
from minibert.cli import main
from minibert.models.presets import PRESETS, preset_config
from minibert.models.sizes import parameter_counts
from minibert.tools.viz import plot_attention, plot_embeddings_pca


def read_png(path):
    import matplotlib.image
    return matplotlib.image.imread(str(path))            # (height, width, 4) floats


def n_colours(image):
    return len(np.unique(image.reshape(-1, image.shape[-1]), axis=0))


def test_attention_map_draws_the_models_own_probabilities(minilm_dir, tmp_path):
    model = BertModel.from_pretrained(minilm_dir)
    png = tmp_path / "att.png"
    probs, tokens = plot_attention(model, "I love Korea", png, layer=2, pad_to=8)
    assert tokens == ["[CLS]", "i", "love", "korea", "[SEP]", "[PAD]", "[PAD]", "[PAD]"]
    assert probs.shape == (12, 8, 8)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)         # each query's row sums to 1
    assert np.all(probs[:, :, 5:] == 0.0)                             # nobody attends to padding
    enc = model.tokenizer("I love Korea", padding="max_length", max_length=8)
    expected = model(enc.input_ids, enc.attention_mask, output_attentions=True).attentions[2][0]
    np.testing.assert_array_equal(probs, expected)
    image = read_png(png)
    panel = 80 * max(3.0, 0.32 * 8 + 1.0)                             # dpi 80 x inches per panel
    assert image.shape[:2] == (int(3 * panel), int(4 * panel))        # 12 heads: 3 rows of 4
    assert n_colours(image) > 50


def test_training_curve_and_pca(tmp_path):
    import json

    from minibert.tools.viz import plot_training_curve
    metrics = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "split": "train", "loss": 9 - s / 10, "mlm_accuracy": s / 100, "nsp_accuracy": 0.5}
            for s in range(1, 40)]
    rows.append({"step": 39, "split": "eval", "loss": 5.0, "mlm_accuracy": 0.3, "nsp_accuracy": 0.7,
                 "mlm_baseline_accuracy": 0.08})
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot_training_curve(metrics, tmp_path / "curve.png")
    image = read_png(tmp_path / "curve.png")
    assert image.shape[:2] == (400, 1100) and n_colours(image) > 20
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 16)), rng.normal(3, 1, (30, 16))])
    points = plot_embeddings_pca(x, ["a"] * 30 + ["b"] * 30, tmp_path / "pca.png")
    assert points.shape == (60, 2)
    assert abs(points[:30, 0].mean() - points[30:, 0].mean()) > 5      # the first axis separates them
    image = read_png(tmp_path / "pca.png")
    assert image.shape[:2] == (500, 600) and n_colours(image) > 20


def test_attention_cli(minilm_dir, tmp_path, capsys):
    out = tmp_path / "a.png"
    assert main(["attention", "--model", str(minilm_dir), "Hello world", "--output", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert main(["attention", "--model", str(minilm_dir), "Hi", "--layer", "6", "--output", str(out)]) == 2
    assert "layer must be in [-6, 5]" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["tiny", "mini", "small"])
def test_counts_equal_the_real_models(name):
    config = preset_config(name, vocab_size=1000)
    assert sum(parameter_counts(config).values()) == BertForPreTraining(config).num_parameters()
    hf = transformers.BertForPreTraining(transformers.BertConfig(**config.to_dict()))
    assert sum(parameter_counts(config).values()) == sum(p.numel() for p in hf.parameters())


def test_presets_and_info_cli(capsys, tmp_path):
    assert set(PRESETS) == {"tiny", "mini", "small", "medium", "base", "large"}
    base, large = preset_config("base"), preset_config("large")
    assert (base.num_hidden_layers, base.num_attention_heads, base.hidden_size) == (12, 12, 768)
    assert (large.num_hidden_layers, large.num_attention_heads, large.hidden_size) == (24, 16, 1024)
    assert main(["info", "base"]) == 0
    printed = capsys.readouterr().out
    assert "total                              110,106,428" in printed      # BERT-base, as transformers counts
    assert "1.641 GiB" in printed
    tiny_config().to_json_file(tmp_path / "config.json")
    assert main(["info", str(tmp_path)]) == 0 and "2 layers, 3 heads of 4" in capsys.readouterr().out
    assert main(["info", "huge"]) == 2 and "neither a size name" in capsys.readouterr().err
    from minibert import DistilBertConfig, DistilBertForMaskedLM
    distil = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    DistilBertForMaskedLM(distil).save_pretrained(tmp_path / "distil")
    assert main(["info", str(tmp_path / "distil")]) == 0
    total = sum(parameter_counts(distil).values())
    assert total == DistilBertForMaskedLM(distil).num_parameters()
    assert f"{total:,}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        preset_config("huge")


def test_attention_cli_without_matplotlib(minilm_dir, tmp_path, capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert main(["attention", "--model", str(minilm_dir), "I love Korea", "--output", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert err == "minibert: error: drawing needs matplotlib: pip install matplotlib\n"
