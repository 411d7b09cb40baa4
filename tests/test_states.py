"""Reference states: `minibert dump`, `minibert compare`, `minibert.testing`, and a worked example
of checking another BERT (tests/port_bert_torch.py, plain PyTorch) against minibert."""

import json

import numpy as np
import pytest
from helpers import one_line_error, tiny_config
from port_bert_torch import run_port

from minibert.cli import main
from minibert.states import compare_states, encoder_trace, live_state, load_state, save_state
from minibert.testing import assert_state_close

IDS = json.dumps([[2, 17, 25, 9, 3, 21, 8, 3], [2, 33, 5, 3, 12, 3]])      # the second padded


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "config.json"
    tiny_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1).to_json_file(path)
    return path


@pytest.fixture(scope="module")
def reference(config_file, tmp_path_factory):
    """A float64 pretraining state with three AdamW steps, from a config and seed."""
    path = tmp_path_factory.mktemp("state") / "reference.safetensors"
    assert main(["dump", "--config", str(config_file), "--ids", IDS, "--head", "pretraining", "--steps", "3",
                 "--seed", "1", "--output", str(path)]) == 0
    return path


def test_the_state_holds_every_documented_tensor(reference):
    state = load_state(reference)
    names = state.names
    assert names[:5] == ["inputs.input_ids", "inputs.token_type_ids", "inputs.attention_mask", "inputs.labels",
                         "inputs.next_sentence_label"]
    per_layer = ["attention.q", "attention.k", "attention.v", "attention.scores", "attention.probs",
                 "attention.context", "attention.output", "ffn.pre_activation", "ffn.post_activation", "output"]
    computed = [n for n in names if not n.startswith(("inputs.", "param.", "grad.", "train."))]
    assert computed == ["embeddings.sum", "embeddings.output", *[f"layer.{i}.{k}" for i in range(2) for k in per_layer],
                        "pooler.output", "logits.mlm", "logits.nsp", "loss"]
    params = [n[len("param."):] for n in names if n.startswith("param.")]
    assert [n[len("grad."):] for n in names if n.startswith("grad.")] == params[::-1]       # backward order
    assert state["train.loss"].shape == (3,) and state["train.loss"][0] == state["loss"][0]
    assert state["layer.0.attention.q"].shape == (2, 3, 8, 4) and state["layer.1.attention.probs"].shape == (2, 3, 8, 8)
    assert state.dtype == "float64" and json.loads(state.metadata["config"])["hidden_size"] == 12
    assert state["layer.0.attention.probs"][1, :, :, 6:].max() == 0.0                    # padded keys


def test_the_trace_is_the_models_forward(reference):
    """The step-by-step intermediates end where the model's own forward ends (both tiers agree
    with transformers elsewhere), and the state's logits are the model's."""
    from minibert import BertConfig, BertForPreTraining
    state = load_state(reference)
    config = BertConfig.from_dict(json.loads(state.metadata["config"]))
    model = BertForPreTraining(config, dtype=np.float64).eval()
    model.load_state_dict({k[6:]: v for k, v in state.tensors.items() if k.startswith("param.")})
    out = model(state["inputs.input_ids"], state["inputs.attention_mask"], state["inputs.token_type_ids"],
                output_hidden_states=True, output_attentions=True)
    trace = encoder_trace({k[5:]: v for k, v in model.params.items() if k.startswith("bert.")}, config,
                          state["inputs.input_ids"], state["inputs.token_type_ids"], state["inputs.attention_mask"])
    np.testing.assert_allclose(trace["embeddings.output"], out.hidden_states[0], rtol=1e-12, atol=1e-12)
    for i in range(2):
        np.testing.assert_allclose(trace[f"layer.{i}.output"], out.hidden_states[i + 1], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(trace[f"layer.{i}.attention.probs"], out.attentions[i], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state["logits.mlm"], out.prediction_logits, rtol=1e-12, atol=1e-12)


def test_round_trips(reference, tmp_path, capsys):
    """dump -> compare with itself: exit 0; one tensor moved by 1e-3: exit 1, and it is named."""
    assert main(["compare", str(reference), str(reference)]) == 0
    assert "all" in capsys.readouterr().out
    assert main(["compare", str(reference), "--live", "minibert"]) == 0
    state = load_state(reference)
    tensors = dict(state.tensors)
    tensors["layer.1.ffn.pre_activation"] = tensors["layer.1.ffn.pre_activation"] + 1e-3
    save_state(tmp_path / "moved.safetensors", tensors, state.metadata)
    assert main(["compare", str(tmp_path / "moved.safetensors"), str(reference)]) == 1
    printed = capsys.readouterr().out
    assert "first divergence: layer.1.ffn.pre_activation (2, 8, 20)" in printed
    with pytest.raises(AssertionError, match="first divergence: layer.1.ffn.pre_activation"):
        assert_state_close(tmp_path / "moved.safetensors", reference)
    # tolerances are the caller's to set: 1e-3 moved is within atol 2e-3
    assert main(["compare", str(tmp_path / "moved.safetensors"), str(reference), "--atol", "2e-3"]) == 0
    assert "(rtol 1e-09, atol 0.002)" in capsys.readouterr().out


def test_a_port_checked_against_minibert(reference):
    """The worked example: forward, every gradient and three AdamW steps of an independent PyTorch
    BERT agree with minibert's state in float64."""
    state = load_state(reference)
    comparison = assert_state_close(run_port(state), state)
    assert len(comparison.rows) == len(state.names) - 5 - len([n for n in state.names if n.startswith("param.")])
    # The key projection's bias has zero gradient in theory (adding q.b_k to every key's score of a
    # query leaves its softmax unchanged): both sides hold ~1e-21 of round-off, equal only by atol.
    zero = [r for r in comparison.rows if r.name.endswith("attention.self.key.bias")]
    assert len(zero) == 4 and max(r.max_abs for r in zero) < 1e-15
    assert max(r.max_rel for r in comparison.rows if r not in zero) < 1e-10


@pytest.mark.parametrize("bug,first", [("ln_eps", "embeddings.output"),
                                       ("scale_after_softmax", "layer.0.attention.scores")])
def test_compare_names_a_ports_first_mistake(reference, tmp_path, capsys, bug, first):
    state = load_state(reference)
    save_state(tmp_path / "port.safetensors", run_port(state, bugs=(bug,)), {"dtype": "float64"})
    assert main(["compare", str(tmp_path / "port.safetensors"), str(reference), "--only-differences"]) == 1
    printed = capsys.readouterr().out
    assert f"first divergence: {first} " in printed
    assert compare_states(load_state(tmp_path / "port.safetensors"), state).first_divergence.name == first


def test_dump_heads_texts_and_errors(tmp_path, minilm_dir, capsys, config_file):
    """Every head from a real checkpoint with texts (a pair among them), float32, and live
    recomputation agreeing; bad input is one line."""
    for head in ("mlm", "classify", "tag", "qa"):
        path = tmp_path / f"{head}.safetensors"
        assert main(["dump", "--model", str(minilm_dir), "--head", head, "--dtype", "float32", "I love Korea",
                     "Seoul is big ||| and busy", "--output", str(path)]) == 0
        state = load_state(path)
        assert state.dtype == "float32" and json.loads(state.metadata["texts"])[0] == "I love Korea"
        assert compare_states(live_state(state), state).ok
    assert main(["dump", "--config", str(config_file), "--output", str(tmp_path / "x")]) == 2
    one_line_error(capsys, "give the texts to run (or --ids)")
    assert main(["dump", "--config", str(config_file), "--ids", "[[1, 2], 3]"]) == 2
    one_line_error(capsys, "--ids must be a JSON list of lists of token ids")
    assert main(["compare", str(tmp_path / "missing.safetensors"), str(tmp_path / "mlm.safetensors")]) == 2
    one_line_error(capsys, "state file not found")


@pytest.mark.parametrize("head", ["pretraining", "mlm", "classify", "tag", "qa"])
def test_a_state_from_a_transformers_checkpoint_equals_live_transformers(head, tmp_path):
    """Dumped from a transformers checkpoint, float64: transformers run now on the same weights and
    inputs (scripts/transformers_state.py, forward hooks) agrees on every tensor it has, the two
    AdamW steps included."""
    import importlib.util
    import pathlib

    import torch
    import transformers
    spec = importlib.util.spec_from_file_location(
        "transformers_state", pathlib.Path(__file__).parent.parent / "scripts" / "transformers_state.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    hf = getattr(transformers, module.HF_CLASSES[head])(transformers.BertConfig(**tiny_config().to_dict()))
    hf.save_pretrained(tmp_path / "hf")
    assert main(["dump", "--model", str(tmp_path / "hf"), "--head", head, "--ids", IDS, "--steps", "2",
                 "--output", str(tmp_path / "state.safetensors")]) == 0
    state = load_state(tmp_path / "state.safetensors")
    theirs = module.transformers_state(state)
    assert "layer.1.attention.context" in theirs and "grad.bert.embeddings.word_embeddings.weight" in theirs
    comparison = assert_state_close(theirs, state)
    assert [n for n in comparison.only_in_second if not n.startswith(("inputs.", "param."))] == \
        ["layer.0.attention.scores", "layer.1.attention.scores"]          # transformers keeps no scores
    assert len(comparison.rows) > 100
