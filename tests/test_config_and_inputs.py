"""BertConfig validation and JSON, and clear errors for bad model input."""

import json

import numpy as np
import pytest
import transformers
from helpers import tiny_config

from minibert import BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel, DistilBertConfig


def test_config_json_round_trip_keeps_unknown_fields(tmp_path):
    path = tmp_path / "config.json"
    d = tiny_config(hidden_act="relu").to_dict()
    d["architectures"] = ["BertForMaskedLM"]
    d["torch_dtype"] = "float32"
    path.write_text(json.dumps(d))
    config = BertConfig.from_json_file(path)
    assert config.hidden_act == "relu" and config.extra["architectures"] == ["BertForMaskedLM"]
    config.to_json_file(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == d


def test_labels_as_transformers_sets_them(tmp_path):
    """num_labels, id2label, label2id and classifier_dropout behave as transformers' config fields."""
    for config, hf in ((BertConfig(num_labels=3), transformers.BertConfig(num_labels=3)),
                       (BertConfig.from_dict({"num_labels": 3}), transformers.BertConfig.from_dict({"num_labels": 3})),
                       (BertConfig(), transformers.BertConfig())):
        assert (config.num_labels, config.id2label, config.label2id) == (hf.num_labels, hf.id2label, hf.label2id)
    config = BertConfig(id2label={"0": "neg", "1": "neu", "2": "pos"})
    assert config.num_labels == 3 and config.label2id == {"neg": 0, "neu": 1, "pos": 2}
    config.num_labels = 4                                   # a new count renames, as transformers' setter
    assert config.id2label[3] == "LABEL_3" and config.label2id["LABEL_3"] == 3
    d = DistilBertConfig(num_labels=5)
    assert d.num_labels == 5 and d.to_dict()["id2label"]["4"] == "LABEL_4"
    with pytest.raises(ValueError, match="num_labels=2 but id2label names 3 labels"):
        BertConfig(num_labels=2, id2label={0: "a", 1: "b", 2: "c"})
    with pytest.raises(ValueError, match="num_labels must be a positive integer, got 0"):
        BertConfig(num_labels=0)
    with pytest.raises(ValueError, match="id2label's keys must be 0 ... 1, got \\[0, 5\\]"):
        BertConfig(id2label={0: "a", 5: "b"})
    with pytest.raises(ValueError, match="classifier_dropout must be in"):
        BertConfig(classifier_dropout=1.5)
    # transformers reads what we write, labels included
    tiny_config(id2label={0: "neg", 1: "pos"}, classifier_dropout=0.3).to_json_file(tmp_path / "config.json")
    hf = transformers.BertConfig.from_pretrained(tmp_path)
    assert hf.id2label == {0: "neg", 1: "pos"} and hf.num_labels == 2 and hf.classifier_dropout == 0.3


def test_from_pretrained_overrides_config_fields(tmp_path):
    BertModel(tiny_config()).save_pretrained(tmp_path / "enc")
    model = BertForSequenceClassification.from_pretrained(tmp_path / "enc", num_labels=3, hidden_dropout_prob=0.2)
    assert model.num_labels == 3 and model.params["classifier.weight"].shape[0] == 3
    assert model.config.hidden_dropout_prob == 0.2
    model.config.id2label = {0: "neg", 1: "neu", 2: "pos"}
    model.save_pretrained(tmp_path / "clf")
    again = BertForSequenceClassification.from_pretrained(tmp_path / "clf")      # num_labels from id2label
    assert again.num_labels == 3 and again.id2label[2] == "pos" and again.config.label2id["neu"] == 1
    with pytest.raises(TypeError, match="got 'hidden_dropout': neither a BertConfig field"):
        BertModel.from_pretrained(tmp_path / "enc", hidden_dropout=0.2)
    with pytest.raises(ValueError, match="from_pretrained: BertConfig.hidden_dropout_prob must be in"):
        BertModel.from_pretrained(tmp_path / "enc", hidden_dropout_prob=2.0)


def test_config_is_read_by_transformers(tmp_path):
    tiny_config(hidden_act="gelu_new", layer_norm_eps=1e-7).to_json_file(tmp_path / "config.json")
    hf = transformers.BertConfig.from_pretrained(tmp_path)
    assert (hf.hidden_size, hf.num_attention_heads, hf.hidden_act, hf.layer_norm_eps) == (12, 3, "gelu_new", 1e-7)


def test_defaults_are_bert_base():
    c = BertConfig()
    assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
            c.intermediate_size, c.max_position_embeddings) == (30522, 768, 12, 12, 3072, 512)
    assert c.head_size == 64


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_size=10, num_attention_heads=3), "divisible by num_attention_heads"),
    (dict(hidden_size=0), "hidden_size must be a positive integer"),
    (dict(num_hidden_layers=-1), "num_hidden_layers must be a positive integer"),
    (dict(vocab_size=2.5), "vocab_size must be a positive integer"),
    (dict(hidden_act="swish"), "hidden_act 'swish' is not one of"),
    (dict(hidden_dropout_prob=1.0), "hidden_dropout_prob must be in"),
    (dict(layer_norm_eps=0.0), "layer_norm_eps must be positive"),
    (dict(pad_token_id=99), "pad_token_id"),
])
def test_inconsistent_config_raises_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**kwargs)


def test_bad_config_file_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 10, "num_attention_heads": 3}')
    with pytest.raises(ValueError, match=r"config.json: BertConfig.hidden_size \(10\) must be divisible"):
        BertConfig.from_json_file(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        BertConfig.from_json_file(path)
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        BertConfig.from_json_file(tmp_path / "nothere.json")


@pytest.fixture(scope="module")
def model():
    return BertForPreTraining(tiny_config(), seed=0)


GOOD = np.array([[2, 5, 7, 3], [2, 9, 3, 0]])


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(input_ids=[[2, 5, 37, 3]]), ValueError, r"input_ids contains 37, outside the vocabulary \[0, 37\)"),
    (dict(input_ids=[[2, -1, 3]]), ValueError, "input_ids contains -1"),
    (dict(input_ids=np.ones((1, 17), dtype=int)), ValueError,
     r"sequence length 17 is longer than max_position_embeddings \(16\)"),
    (dict(input_ids=[[2.0, 5.0]]), TypeError, "input_ids must hold integers, got dtype float64"),
    (dict(input_ids=[2, 5, 3]), ValueError, r"input_ids must have shape \(batch, seq_len\)"),
    (dict(input_ids=GOOD, token_type_ids=[[0, 0, 2, 1], [0, 0, 0, 0]]), ValueError,
     r"token_type_ids contains 2, outside type_vocab_size \[0, 2\)"),
    (dict(input_ids=GOOD, token_type_ids=[[0, 0, 1]]), ValueError, "token_type_ids has shape"),
    (dict(input_ids=GOOD, attention_mask=np.ones((2, 5))), ValueError,
     r"attention_mask has shape \(2, 5\), input_ids has shape \(2, 4\)"),
    (dict(input_ids=GOOD, attention_mask=[[1, 1, 2, 1], [1, 1, 1, 0]]), ValueError,
     "attention_mask must hold only 0"),
    (dict(input_ids=GOOD, labels=[[-100, 5, 40, -100], [-100] * 4]), ValueError,
     "labels contains 40"),
    (dict(input_ids=GOOD, labels=[[-100, 5]]), ValueError, "labels has shape"),
    (dict(input_ids=GOOD, next_sentence_label=[0, 2]), ValueError, "next_sentence_label contains 2"),
    (dict(input_ids=GOOD, next_sentence_label=[0]), ValueError, "next_sentence_label has shape"),
])
def test_bad_input_gets_a_clear_error(model, kwargs, error, message):
    with pytest.raises(error, match=message):
        model(**kwargs)


def test_backward_without_a_loss_says_so():
    m = BertForPreTraining(tiny_config(), seed=0)
    with pytest.raises(RuntimeError, match="needs a forward call with labels"):
        m.backward()
    m(GOOD)
    with pytest.raises(RuntimeError, match="no loss to differentiate"):
        m.backward()
    with pytest.raises(RuntimeError, match="needs a forward call first"):
        BertModel(tiny_config()).backward(np.zeros((2, 4, 12)))


def test_dtype_argument_is_checked():
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        BertModel(tiny_config(), dtype=np.float16)
    with pytest.raises(TypeError, match="config must be a minibert.BertConfig"):
        BertModel({"hidden_size": 12})


def test_sizes_are_checked_before_allocating():
    """A config that cannot fit is refused from its parameter count, before any array exists."""
    with pytest.raises(MemoryError, match=r"this config has [\d,]+ parameters: its weights need about [\d,.]+ GiB"):
        BertModel(tiny_config(vocab_size=10 ** 9, hidden_size=1024, num_attention_heads=4, intermediate_size=64))
    with pytest.raises(MemoryError, match="GiB are available"):
        BertForPreTraining(tiny_config(num_hidden_layers=10 ** 6, hidden_size=256, num_attention_heads=4,
                                       intermediate_size=1024))
