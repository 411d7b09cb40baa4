"""Saving and loading HuggingFace checkpoints: round trips with transformers, the quirks of real
files, and clear errors for bad ones."""

import json
import logging
import os
import shutil
import sys

import numpy as np
import pytest
import torch
import transformers
from helpers import tiny_config
from hf_twins import hf_twin

from minibert import BertForPreTraining, BertModel
from minibert.checkpoints import CheckpointError

IDS = np.array([[2, 5, 7, 3, 9, 3], [2, 9, 3, 11, 0, 0]])
MASK = (IDS != 0).astype(int)
REAL = MASK == 1          # unpadded models leave the padded positions out (models/packing.py)
TYPES = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 0, 0]])


def perturbed(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.params.values():
        v += (rng.standard_normal(v.shape) * 0.1).astype(v.dtype)
    return model


def torch_inputs():
    return dict(input_ids=torch.tensor(IDS), attention_mask=torch.tensor(MASK),
                token_type_ids=torch.tensor(TYPES))


def test_ours_loads_in_transformers_with_no_missing_keys(tmp_path):
    ours = perturbed(BertForPreTraining(tiny_config(), seed=0)).eval()
    ours.save_pretrained(tmp_path / "ckpt")
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["architectures"] == ["BertForPreTraining"]
    hf, info = transformers.BertForPreTraining.from_pretrained(tmp_path / "ckpt", output_loading_info=True,
                                                               attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    out = ours(IDS, MASK, TYPES)
    with torch.no_grad():
        ref = hf.eval()(**torch_inputs())
    np.testing.assert_allclose(out.prediction_logits[REAL], ref.prediction_logits.numpy()[REAL], atol=1e-5)
    np.testing.assert_allclose(out.seq_relationship_logits, ref.seq_relationship_logits.numpy(), atol=1e-5)
    # AutoModel reads the same directory as a bare encoder.
    auto = transformers.AutoModel.from_pretrained(tmp_path / "ckpt", attn_implementation="eager").eval()
    with torch.no_grad():
        h = auto(**torch_inputs()).last_hidden_state.numpy()
    mine = BertModel.from_pretrained(tmp_path / "ckpt")(IDS, MASK, TYPES).last_hidden_state
    np.testing.assert_allclose(mine[REAL], h[REAL], atol=1e-5)


def test_transformers_checkpoint_loads_in_minibert(tmp_path):
    hf = hf_twin(transformers.BertForPreTraining, tiny_config(), np.float32)
    hf.save_pretrained(tmp_path / "hf")
    ours, info = BertForPreTraining.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    out = ours(IDS, MASK, TYPES)
    with torch.no_grad():
        ref = hf(**torch_inputs())
    np.testing.assert_allclose(out.prediction_logits[REAL], ref.prediction_logits.numpy()[REAL], atol=1e-5)
    np.testing.assert_allclose(out.seq_relationship_logits, ref.seq_relationship_logits.numpy(), atol=1e-5)
    assert not ours.training


def test_encoder_only_checkpoint_into_pretraining_model_reports_new_heads(minilm_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="minibert"):
        model, info = BertForPreTraining.from_pretrained(minilm_dir, output_loading_info=True)
    assert sorted(info["missing_keys"]) == sorted([
        "cls.predictions.bias", "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.bias", "cls.seq_relationship.weight",
        "cls.seq_relationship.bias"])
    assert info["dropped_buffers"] == ["embeddings.position_ids"]
    assert "newly initialised: cls.predictions.bias" in caplog.text
    bare = BertModel.from_pretrained(minilm_dir)
    for k, v in bare.params.items():                  # "x" went to "bert.x"
        np.testing.assert_array_equal(model.params["bert." + k], v)


def test_pretraining_checkpoint_into_bare_model_reports_unused_heads(tmp_path, caplog):
    perturbed(BertForPreTraining(tiny_config())).save_pretrained(tmp_path / "ckpt")
    with caplog.at_level(logging.WARNING, logger="minibert"):
        model, info = BertModel.from_pretrained(tmp_path / "ckpt", output_loading_info=True)
    assert info["missing_keys"] == []
    assert "cls.seq_relationship.weight" in info["unexpected_keys"]
    assert "were not used by BertModel" in caplog.text


def test_legacy_gamma_beta_names_and_tied_decoder_keys(tmp_path):
    from safetensors.numpy import save_file
    source = perturbed(BertForPreTraining(tiny_config()))
    sd = source.state_dict()
    legacy = {}
    for k, v in sd.items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        legacy[k] = v
    legacy["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"]
    legacy["cls.predictions.decoder.bias"] = sd["cls.predictions.bias"]
    legacy["bert.embeddings.position_ids"] = np.arange(16)[None]
    (tmp_path / "old").mkdir()
    save_file(legacy, str(tmp_path / "old" / "model.safetensors"), metadata={"format": "pt"})
    tiny_config().to_json_file(tmp_path / "old" / "config.json")
    model, info = BertForPreTraining.from_pretrained(tmp_path / "old", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    for k, v in sd.items():
        np.testing.assert_array_equal(model.params[k], v)


def test_pytorch_bin_and_half_precision(tmp_path):
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**tiny_config().to_dict()))
    (tmp_path / "bin").mkdir()
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    tiny_config().to_json_file(tmp_path / "bin" / "config.json")
    model = BertModel.from_pretrained(tmp_path / "bin")
    np.testing.assert_array_equal(model.params["pooler.dense.weight"], hf.pooler.dense.weight.detach().numpy())

    hf.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    model = BertModel.from_pretrained(tmp_path / "bf16")
    assert model.params["pooler.dense.weight"].dtype == np.float32
    np.testing.assert_array_equal(model.params["pooler.dense.weight"],
                                  hf.pooler.dense.weight.detach().float().numpy())


def test_pytorch_bin_without_torch_says_how_to_convert(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"not read")
    tiny_config().to_json_file(tmp_path / "bin" / "config.json")
    monkeypatch.setitem(sys.modules, "torch", None)              # import torch now fails
    with pytest.raises(CheckpointError, match="torch is not installed. Convert it once"):
        BertModel.from_pretrained(tmp_path / "bin")


def test_hub_id_resolves_from_the_local_cache_only(tmp_path, minilm_dir):
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-bert" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (cache / "models--someone--tiny-bert" / "refs").mkdir()
    (cache / "models--someone--tiny-bert" / "refs" / "main").write_text("a" * 40)
    perturbed(BertModel(tiny_config())).save_pretrained(snapshot / "x")
    for f in ("config.json", "model.safetensors"):
        shutil.move(snapshot / "x" / f, snapshot / f)
    model = BertModel.from_pretrained("someone/tiny-bert", cache_dir=cache)
    assert model.config.hidden_size == 12
    with pytest.raises(FileNotFoundError, match="not-cached/bert: no such directory.*never downloads"):
        BertModel.from_pretrained("not-cached/bert", cache_dir=cache)


@pytest.fixture
def good_checkpoint(tmp_path):
    path = tmp_path / "good"
    perturbed(BertModel(tiny_config())).save_pretrained(path)
    return path


def test_missing_directory_and_files(tmp_path, good_checkpoint):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    os.remove(good_checkpoint / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="has no weights: expected model.safetensors"):
        BertModel.from_pretrained(good_checkpoint)
    os.remove(good_checkpoint / "config.json")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        BertModel.from_pretrained(good_checkpoint)


def test_impossible_config_names_the_file(good_checkpoint):
    cfg = json.loads((good_checkpoint / "config.json").read_text())
    cfg["num_attention_heads"] = 5
    (good_checkpoint / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config.json: BertConfig.hidden_size \(12\) must be divisible"):
        BertModel.from_pretrained(good_checkpoint)


def test_truncated_safetensors_names_the_file(good_checkpoint):
    weights = good_checkpoint / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors file"):
        BertModel.from_pretrained(good_checkpoint)
    weights.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        BertModel.from_pretrained(good_checkpoint)


def test_wrong_shape_names_the_key(good_checkpoint):
    from safetensors.numpy import load_file, save_file
    sd = load_file(str(good_checkpoint / "model.safetensors"))
    sd["encoder.layer.1.intermediate.dense.weight"] = np.zeros((21, 12), dtype=np.float32)
    save_file(sd, str(good_checkpoint / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"encoder.layer.1.intermediate.dense.weight has shape \(21, 12\)"):
        BertModel.from_pretrained(good_checkpoint)


def test_another_architecture_is_refused(good_checkpoint):
    cfg = json.loads((good_checkpoint / "config.json").read_text())
    (good_checkpoint / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="describes a 'gpt2' model, not 'bert'"):
        BertModel.from_pretrained(good_checkpoint)
    # A config that says bert over weights that are not BERT's.
    from safetensors.numpy import save_file
    (good_checkpoint / "config.json").write_text(json.dumps(cfg))
    save_file({"transformer.h.0.attn.c_attn.weight": np.zeros((12, 36), dtype=np.float32)},
              str(good_checkpoint / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="none of its 1 tensors are BertModel parameters"):
        BertModel.from_pretrained(good_checkpoint)


def test_save_is_atomic(good_checkpoint, monkeypatch):
    """A crash in the middle of writing the weights leaves the previous checkpoint as it was."""
    before = {p.name: p.read_bytes() for p in good_checkpoint.iterdir()}
    import safetensors.numpy

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        perturbed(BertModel(tiny_config()), seed=9).save_pretrained(good_checkpoint)
    assert {p.name: p.read_bytes() for p in good_checkpoint.iterdir()} == before
    with pytest.raises(KeyboardInterrupt):
        BertModel(tiny_config()).save_pretrained(good_checkpoint.parent / "fresh")
    assert sorted(p.name for p in good_checkpoint.parent.iterdir()) == ["good"]   # no debris


def test_save_keeps_other_files_and_writes_the_tokenizer(minilm_dir, tmp_path):
    model = BertModel.from_pretrained(minilm_dir)
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    model.save_pretrained(out)
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "metrics.jsonl"} <= \
        set(os.listdir(out))
    again = BertModel.from_pretrained(out)
    assert again.tokenizer("I love Korea").input_ids.tolist() == [[101, 1045, 2293, 4420, 102]]
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    assert hf_tok("I love Korea")["input_ids"] == [101, 1045, 2293, 4420, 102]


# ---- damaged and surprising files: one clear error naming the file --------------------------

def test_an_index_without_weight_map_and_a_pickle_of_a_list(good_checkpoint):
    shutil.move(good_checkpoint / "model.safetensors", good_checkpoint / "model-00001-of-00001.safetensors")
    (good_checkpoint / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(CheckpointError, match="model.safetensors.index.json is not a safetensors index with a "
                                              "'weight_map'"):
        BertModel.from_pretrained(good_checkpoint)
    (good_checkpoint / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "gone.safetensors"}}))
    with pytest.raises(CheckpointError, match="names a shard 'gone.safetensors'"):
        BertModel.from_pretrained(good_checkpoint)
    os.remove(good_checkpoint / "model.safetensors.index.json")
    torch.save([torch.zeros(3)], good_checkpoint / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin holds a list, not a state dict"):
        BertModel.from_pretrained(good_checkpoint)


def test_weights_must_be_finite_floats(good_checkpoint):
    from safetensors.numpy import load_file, save_file
    path = good_checkpoint / "model.safetensors"
    sd = load_file(str(path))
    name = "encoder.layer.0.output.dense.bias"
    for bad, message in ((sd[name].astype(np.int32), "holds int32 numbers; a weight is floating point"),
                         (sd[name] > 0, "holds bool numbers"),
                         (np.where(np.arange(12) == 3, np.nan, sd[name]).astype(np.float32),
                          "holds 1 NaN or infinite value"),
                         (np.full(12, np.inf, dtype=np.float32), "holds 12 NaN or infinite value")):
        save_file({**sd, name: bad}, str(path), metadata={"format": "pt"})
        with pytest.raises(CheckpointError, match=f"model.safetensors: tensor {name} {message}"):
            BertModel.from_pretrained(good_checkpoint)
    model = BertModel(tiny_config())
    with pytest.raises(TypeError, match=f"{name} holds int64 numbers"):
        model.load_state_dict({**model.state_dict(), name: np.arange(12)})


def test_non_utf8_config_and_a_string_pad_id(good_checkpoint):
    cfg = json.loads((good_checkpoint / "config.json").read_text())
    latin1 = json.dumps({**cfg, "note": "caf\xe9"}, ensure_ascii=False).encode("latin-1")
    (good_checkpoint / "config.json").write_bytes(latin1)
    with pytest.raises(CheckpointError, match="config.json is not UTF-8 text"):
        BertModel.from_pretrained(good_checkpoint)
    with pytest.raises(ValueError, match="config.json is not UTF-8 text"):
        from minibert import BertConfig
        BertConfig.from_json_file(good_checkpoint / "config.json")
    (good_checkpoint / "config.json").write_text(json.dumps({**cfg, "pad_token_id": "0"}))
    with pytest.raises(ValueError, match="pad_token_id must be an integer, got '0'"):
        BertModel.from_pretrained(good_checkpoint)


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(good_checkpoint, minilm_dir):
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(minilm_dir, name), good_checkpoint / name)
    with pytest.raises(CheckpointError, match=r"its tokenizer has 30522 tokens but the model's vocabulary only 37"):
        BertModel.from_pretrained(good_checkpoint)
