"""Build data/kjv-vocab.txt: the WordPiece vocabulary the default pretraining run uses.

    python scripts/build_vocab.py [--output data/kjv-vocab.txt]

It is trained exactly as `minibert pretrain` trains one (minibert.tokenization, `tokenizers`'
WordPiece trainer, 8000 tokens, lower-cased) on the training documents of the shipped corpus
under the default split (3% of the documents held out, seed 0), so the held-out text stays unseen.

Why it was shipped: the `tokenizers` trainer broke ties between equally frequent pairs in
hash-map order, which changed from run to run (huggingface/tokenizers#1794), and so would every
model trained on top.  Training is now the same in every process (minibert.tokenization fixes
the ids the ties are broken by), but the file stays, so that the default run keeps its numbers.
Rebuilding gives an equally good vocabulary, the same on every rebuild, not this file.
"""

import argparse
from pathlib import Path

from minibert.data.pretraining import read_documents, split_documents
from minibert.tokenization import BertTokenizer
from minibert.training.pretrain import DEFAULT_CORPUS, PretrainArgs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(Path(DEFAULT_CORPUS).with_name("kjv-vocab.txt")))
    a = parser.parse_args()
    d = PretrainArgs()
    train_docs, _ = split_documents(read_documents(DEFAULT_CORPUS), d.eval_fraction, d.seed)
    tokenizer = BertTokenizer.train_from_texts([s for doc in train_docs for s in doc], d.vocab_size,
                                               show_progress=False)
    tokens = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    Path(a.output).write_text("".join(t + "\n" for t, _ in tokens), encoding="utf-8")
    print(f"wrote {len(tokens)} tokens to {a.output}")


if __name__ == "__main__":
    main()
