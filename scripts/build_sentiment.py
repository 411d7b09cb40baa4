"""Rebuild data/sentiment/{train,dev,test}.tsv: movie-review sentences with human polarity labels.

    python scripts/build_sentiment.py                  # pip download the source distribution
    python scripts/build_sentiment.py --sdist FILE     # use vaderSentiment-3.3.2.tar.gz already here

Source: the sdist of the PyPI package vaderSentiment 3.3.2 holds
`additional_resources/hutto_ICWSM_2014.tar.gz`, and inside it
`movieReviewSnippets_GroundTruth.txt`: 10,605 Rotten Tomatoes review sentences, each with the mean
of human ratings on -4..4 ("id<TAB>rating<TAB>sentence").  We drop the 37 rated exactly 0, label
the rest `positive` (> 0) or `negative` (< 0), shuffle with a fixed seed and split 80/10/10.
The output is byte-identical from run to run.
"""

import argparse
import io
import random
import subprocess
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.3.2"
INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
SEED = 20140601


def read_ground_truth(sdist: Path) -> list[tuple[str, float]]:
    with tarfile.open(sdist) as outer:
        inner_bytes = outer.extractfile(f"vaderSentiment-{VERSION}/{INNER}").read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        text = inner.extractfile(MEMBER).read().decode("utf-8")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise SystemExit(f"error: {MEMBER}:{number} has {len(cols)} columns, expected 3")
        rows.append((" ".join(cols[2].split()), float(cols[1])))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", type=Path, help=f"vaderSentiment-{VERSION}.tar.gz (default: pip download it)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent.parent / "data" / "sentiment")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist
        if sdist is None:
            subprocess.run(["pip", "download", "--no-deps", "--no-binary", ":all:",
                            f"vadersentiment=={VERSION}", "-d", tmp], check=True)
            sdist = next(Path(tmp).glob("vaderSentiment-*.tar.gz"))
        rows = read_ground_truth(sdist)
    labelled = [(s, "positive" if r > 0 else "negative") for s, r in rows if r != 0]
    random.Random(SEED).shuffle(labelled)
    n = len(labelled)
    splits = {"train": labelled[: int(0.8 * n)], "dev": labelled[int(0.8 * n): int(0.9 * n)],
              "test": labelled[int(0.9 * n):]}
    args.output.mkdir(parents=True, exist_ok=True)
    for name, items in splits.items():
        (args.output / f"{name}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{s}\t{lab}\n" for s, lab in items), encoding="utf-8")
        positive = sum(lab == "positive" for _, lab in items)
        print(f"{name}: {len(items)} sentences, {positive / len(items):.1%} positive")
    print(f"dropped {len(rows) - n} sentences rated exactly 0; wrote {args.output}")


if __name__ == "__main__":
    main()
