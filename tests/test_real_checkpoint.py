"""The real all-MiniLM-L6-v2 checkpoint: minibert against transformers on real sentences (the
hidden states on both tiers of layers).

Tolerance: 1e-5 relative to the value scale (the largest |value| of the reference tensor), in
float32.  Both sides compute the same float32 arithmetic in a different order; through six
layers of a 384-wide model we measure a few 1e-7.
"""

import json

import numpy as np
import pytest
import torch
import transformers

from minibert import BertModel
from minibert.tools.features import l2_normalize, sentence_embeddings, token_embeddings

LONG = ("The history of natural language processing generally started in the 1950s, although "
        "work can be found from earlier periods. In 1950, Alan Turing published an article titled "
        "'Computing Machinery and Intelligence' which proposed what is now called the Turing test "
        "as a criterion of intelligence. ") * 5

SENTENCES = [
    "I love Korea",
    "Hi!",
    "The quick brown fox jumps over the lazy dog.",
    "BERT stands for Bidirectional Encoder Representations from Transformers.",
    "In 2018, Google released BERT-base with 110,000,000 parameters (12 layers, 768 hidden).",
    "Wait... what?! No way -- that's (really) amazing; isn't it?",
    "Price: $1,234.56 on 03/04/2025 at 10:30pm, ref #A-77.",
    "naïve café résumé — Ångström, Zürich, São Paulo",
    "서울은 한국의 수도입니다.",
    "東京は日本の首都です。",
    "Emoji test 🤗 and math: x² + y² = z²",
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "The stock market fell sharply today.",
    LONG,
    "unbelievably antidisestablishmentarianism supercalifragilisticexpialidocious",
]
PAIRS = [("How old are you?", "I am six years old."),
         ("Where is the station?", "Turn left at the second light and walk 200 m."),
         ("Is it raining?", LONG)]


@pytest.fixture(scope="module")
def models(minilm_dir):
    ours = BertModel.from_pretrained(minilm_dir)
    ref = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="eager").eval()
    tok = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    return ours, ref, tok


def scale_err(ours, ref, mask=None):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    diff = np.abs(ours - ref)
    if mask is not None:
        diff = diff[mask.astype(bool)]
    return diff.max() / np.abs(ref).max()


def run_both(models, texts, pairs=None):
    ours, ref, tok = models
    enc = ours.tokenizer(texts, pairs, padding=True, truncation=True, max_length=256)
    out = ours(enc.input_ids, enc.attention_mask, enc.token_type_ids, output_hidden_states=True)
    with torch.no_grad():
        r = ref(input_ids=torch.tensor(enc.input_ids), attention_mask=torch.tensor(enc.attention_mask),
                token_type_ids=torch.tensor(enc.token_type_ids), output_hidden_states=True)
    return enc, out, r


@pytest.mark.parametrize("kind", ["single", "pairs"])
def test_hidden_states_match_transformers(models, kind, tier):
    texts, pairs = (SENTENCES, None) if kind == "single" else ([a for a, _ in PAIRS], [b for _, b in PAIRS])
    enc, out, r = run_both(models, texts, pairs)
    lengths = enc.attention_mask.sum(1)
    assert lengths.max() == 256 and lengths.min() < 20      # long ones truncated at 256, padding used
    if kind == "pairs":
        assert enc.token_type_ids.max() == 1
    real = enc.attention_mask                                # compare on real tokens
    for i, (a, b) in enumerate(zip(out.hidden_states, r.hidden_states)):
        assert scale_err(a, b.numpy(), real) < 1e-5, f"hidden_states[{i}]"
    assert scale_err(out.last_hidden_state, r.last_hidden_state.numpy(), real) < 1e-5
    assert scale_err(out.pooler_output, r.pooler_output.numpy()) < 1e-5


def test_sentence_embeddings_match_the_sentence_transformers_recipe(models):
    """Mean pooling over real tokens, then L2 normalisation (all-MiniLM-L6-v2's own recipe)."""
    ours, ref, tok = models
    emb = sentence_embeddings(ours, SENTENCES, normalize=True, batch_size=5, max_length=256)
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        h = ref(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1).numpy()
    assert emb.shape == (16, 384)
    assert np.abs(emb - expected).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)

    # Similar sentences rank as the reference ranks them.
    sims, ref_sims = emb @ emb.T, expected @ expected.T
    for i in range(len(SENTENCES)):
        assert list(np.argsort(-sims[i])[:5]) == list(np.argsort(-ref_sims[i])[:5])
    guitar, instrument, stocks = 11, 12, 13
    assert sims[guitar, instrument] > sims[guitar, stocks] + 0.2


def test_cls_and_token_features(models):
    ours, ref, tok = models
    texts = ["I love Korea", "A man is playing a guitar."]
    cls = sentence_embeddings(ours, texts, pooling="cls")
    vectors, tokens = token_embeddings(ours, texts, return_tokens=True)
    assert tokens[0] == ["[CLS]", "i", "love", "korea", "[SEP]"]
    assert vectors[0].shape == (5, 384)
    np.testing.assert_allclose(cls, np.stack([v[0] for v in vectors]), rtol=1e-6)
    last4 = token_embeddings(ours, texts, layer="last4")
    every = token_embeddings(ours, texts, layer="all")
    assert last4[1].shape == (len(tokens[1]), 4 * 384) and every[1].shape == (7, len(tokens[1]), 384)
    np.testing.assert_allclose(last4[1][:, -384:], vectors[1], rtol=1e-6)
    np.testing.assert_allclose(every[1][-1], vectors[1], rtol=1e-6)
    # Batched and padded or one by one: the same numbers on the real tokens.
    alone = token_embeddings(ours, texts[:1])[0]
    np.testing.assert_allclose(alone, vectors[0], atol=1e-5)
    # The features equal what transformers gives for the same layer.
    enc = tok(texts[:1], return_tensors="pt")
    with torch.no_grad():
        h = ref(**enc, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(every[0][3], h[3][0].numpy(), atol=1e-5)
    assert l2_normalize(np.array([[3.0, 4.0]])).tolist() == [[0.6, 0.8]]


@pytest.fixture(scope="module")
def st_reference(minilm_dir):
    import sentence_transformers
    return sentence_transformers.SentenceTransformer(str(minilm_dir), device="cpu")


def cosine_distance(a, b):
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    return 1 - (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_encode_equals_sentence_transformers(minilm_dir, st_reference):
    """The model directory's own recipe (max_seq_length 256, mean pooling, Normalize), short and long
    texts (LONG is over 256 tokens: cut where sentence-transformers cuts it), within 1e-5 cosine."""
    from minibert.tools.sentence_encoder import SentenceEncoder
    encoder = SentenceEncoder.from_pretrained(minilm_dir)
    assert (encoder.pooling, encoder.normalize, encoder.max_seq_length) == (("mean",), True, 256)
    texts = SENTENCES + [LONG, LONG[:900], LONG + " And more."]
    ours = encoder.encode(texts, batch_size=4)
    ref = st_reference.encode(texts, batch_size=4)
    assert ours.shape == ref.shape == (len(texts), 384)
    assert cosine_distance(ours, ref).max() < 1e-5
    np.testing.assert_allclose(ours, ref, atol=2e-6)
    one = encoder.encode("I love Korea")                                # a single text: one vector
    assert one.shape == (384,) and cosine_distance(one, st_reference.encode("I love Korea")).max() < 1e-5
    # reading the text to 512 tokens instead of the directory's 256 misses by over 10x the tolerance
    bare = sentence_embeddings(encoder.model, [LONG], normalize=True)
    assert cosine_distance(bare, ref[len(SENTENCES)]).max() > 1e-4


@pytest.mark.parametrize("modes", [("cls",), ("max",), ("mean_sqrt_len_tokens",), ("cls", "max", "mean")])
def test_encode_follows_the_pooling_config(minilm_dir, tmp_path, modes):
    """Other pooling modes (new-style "pooling_mode" and old-style flags), without Normalize, and
    do_lower_case: each against sentence-transformers on the same directory."""
    import shutil

    import sentence_transformers

    from minibert.tools.sentence_encoder import LEGACY_POOLING_FLAGS, SentenceEncoder
    path = tmp_path / "st"
    shutil.copytree(minilm_dir, path)
    modules = [m for m in json.loads((path / "modules.json").read_text()) if not m["type"].endswith("Normalize")]
    (path / "modules.json").write_text(json.dumps(modules))
    flags = {flag: mode in modes for flag, mode in LEGACY_POOLING_FLAGS.items()}
    pooling = {"word_embedding_dimension": 384, **flags} if len(modes) > 1 else \
        {"embedding_dimension": 384, "pooling_mode": modes[0]}
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 40, "do_lower_case": True}))
    texts = ["I love KOREA", "A man is playing a guitar.", LONG]
    ours = SentenceEncoder.from_pretrained(path).encode(texts, normalize_embeddings=True)
    ref = sentence_transformers.SentenceTransformer(str(path), device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == ref.shape == (3, 384 * len(modes))
    assert cosine_distance(ours, ref).max() < 1e-5


def test_feature_errors_are_clear(models):
    ours = models[0]
    with pytest.raises(TypeError, match="list of strings"):
        sentence_embeddings(ours, "one text")
    with pytest.raises(ValueError, match="pooling must be one of"):
        sentence_embeddings(ours, ["a"], pooling="lasttoken")
    with pytest.raises(ValueError, match="layer must be an index"):
        token_embeddings(ours, ["a"], layer=7)


def test_walkthrough_script_runs(minilm_dir):
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).parent.parent / "scripts" / "walkthrough.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    assert "['[CLS]', 'i', 'love', 'korea', '[SEP]', '[PAD]', '[PAD]']" in out
    assert "[1, 1, 1, 1, 1, 0, 0]" in out and "[101, 1045, 2293, 4420, 102, 0, 0]" in out
    assert "layer 6 output       (1, 7, 384)" in out and "pooler_output        (1, 384)" in out
