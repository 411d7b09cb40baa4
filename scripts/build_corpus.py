"""Rebuild data/kjv.txt.gz, the shipped pretraining corpus, from Debian's King James Bible.

    python scripts/build_corpus.py                     # apt-get download the two packages
    python scripts/build_corpus.py --deb-dir DIR       # use bible-kjv*.deb already in DIR

Steps: `apt-get download bible-kjv bible-kjv-text`, unpack both with `dpkg-deb -x`, dump the
whole text with the packaged `bible` program (one verse a line, "Ge1:1 In the beginning ..."),
then write BERT's pretraining format: one verse a line, a blank line between chapters (each
chapter is a document).  The gzip header carries no time stamp, so the output is byte-identical
from run to run.
"""

import argparse
import gzip
import re
import subprocess
import tempfile
from pathlib import Path

VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.+)$")      # book, chapter, verse, text
PACKAGES = ("bible-kjv", "bible-kjv-text")


def dump_bible(deb_dir: Path, work: Path) -> list[str]:
    debs = sorted(deb_dir.glob("bible-kjv*.deb"))
    if len(debs) < 2:
        raise SystemExit(f"error: expected the .deb files of {PACKAGES} in {deb_dir}")
    root = work / "root"
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    lib = root / "usr" / "lib"
    out = subprocess.run([str(root / "usr" / "bin" / "bible"), "-p", str(lib), "-f", "gen1:1-rev22:21"],
                         check=True, capture_output=True, text=True).stdout
    return out.splitlines()


def to_documents(lines: list[str]) -> list[list[str]]:
    """Group verses by (book, chapter): one document per chapter."""
    documents, current_key = [], None
    for n, line in enumerate(lines, start=1):
        m = VERSE.match(line)
        if m is None:
            raise SystemExit(f"error: line {n} of the bible dump is not a verse: {line[:80]!r}")
        book, chapter, _, text = m.groups()
        if (book, chapter) != current_key:
            documents.append([])
            current_key = (book, chapter)
        documents[-1].append(text.strip())
    return documents


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deb-dir", type=Path, help="directory holding the two .deb files")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent.parent / "data" / "kjv.txt.gz")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        deb_dir = args.deb_dir
        if deb_dir is None:
            deb_dir = work
            subprocess.run(["apt-get", "download", *PACKAGES], cwd=work, check=True)
        documents = to_documents(dump_bible(deb_dir, work))
    text = "\n\n".join("\n".join(doc) for doc in documents) + "\n"
    with open(args.output, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        f.write(text.encode("utf-8"))
    n_lines = sum(len(d) for d in documents)
    print(f"wrote {args.output}: {len(documents)} documents (chapters), {n_lines} verses, "
          f"{len(text.encode('utf-8')):,} bytes of text, {args.output.stat().st_size:,} compressed")


if __name__ == "__main__":
    main()
