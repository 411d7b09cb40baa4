"""Faults a hostile user meets, through the command line in a subprocess as a user runs it: nothing
changed before a run is sure to start, nothing left behind, files with the usual modes, no wrong
answer with exit status 0, no traceback, and messages that name the real cause."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import tiny_config

from minibert import BertModel
from minibert.data.pretraining import read_documents
from minibert.tokenization import BertTokenizer
from minibert.training.pretrain import DEFAULT_CORPUS


def cli(*argv, env=None, umask=None, timeout=180, **kw):
    """`python -m minibert ARGV` in a subprocess, with `umask` set first when given."""
    code = "import os, sys\n"
    if umask is not None:
        code += f"os.umask({umask})\n"
    code += "from minibert.__main__ import main\nsys.exit(main())\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, **kw)


def one_line(done, *needles):
    """The CLI's promise for an expected failure: exit 2, one line "minibert: error: ..." (after any
    notice of loading, such as a head made fresh), never a traceback."""
    err = done.stderr
    last = err.rstrip("\n").split("\n")[-1]
    assert done.returncode == 2 and last.startswith("minibert: error: ") and "Traceback" not in err, err
    assert err.count("minibert: error") == 1, err
    for needle in needles:
        assert needle in last, err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text("\n\n".join("\n".join(d) for d in read_documents(DEFAULT_CORPUS)[:20]) + "\n")
    return path


@pytest.fixture(scope="module")
def tokenizer_dir(corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("tokenizer")
    BertTokenizer.train([corpus], vocab_size=300, show_progress=False).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "config.json"
    tiny_config(hidden_size=16, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=64).to_json_file(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tokenizer_dir, tmp_path_factory):
    """A small random encoder with the corpus's tokenizer, for fine-tuning."""
    tok = BertTokenizer.from_pretrained(tokenizer_dir)
    model = BertModel(tiny_config(vocab_size=tok.vocab_size, hidden_size=16, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=64), seed=0)
    model.tokenizer = tok
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "encoder")


def pretrain_args(corpus, config_file, tokenizer_dir, out, *extra):
    return ["pretrain", "--corpus", corpus, "--config", config_file, "--tokenizer", tokenizer_dir,
            "--max-seq-length", "32", "--batch-size", "4", "--output", out, "--quiet", *extra]


def write_tsv(path, rows):
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def classify_rows(n=24):
    return [("and god said let there be light" if i % 2 else "the earth was without form", i % 2)
            for i in range(n)]


# ---- 2. nothing changes before the run is sure to start -------------------------------------

def test_a_typo_does_not_cost_the_run_it_would_replace(model_dir, tmp_path):
    """finetune --overwrite-output-dir with a --train that does not exist: refused, and the old run's
    checkpoint, best model and options are all still there (it resumes)."""
    train = write_tsv(tmp_path / "train.tsv", classify_rows())
    out = tmp_path / "run"
    common = ["finetune", "--model", model_dir, "--task", "classify", "--eval", train, "--output", out,
              "--epochs", "1", "--batch-size", "4", "--quiet"]
    assert cli(*common, "--train", train).returncode == 0
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    one_line(cli(*common, "--train", tmp_path / "trian.tsv", "--overwrite-output-dir"), "trian.tsv")
    after = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before and any(p.parts[0].startswith("checkpoint-") for p in after)


def test_a_refused_resume_changes_nothing(corpus, config_file, tokenizer_dir, tmp_path):
    """A resume refused for its number of processes leaves args.json as it was: the next resume
    trains to the run's own --steps, not to the refused value."""
    out = tmp_path / "run"
    assert cli(*pretrain_args(corpus, config_file, tokenizer_dir, out, "--steps", "4", "--save-every", "2")
               ).returncode == 0
    state_file = sorted(out.glob("checkpoint-*"))[-1] / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "world_size": 2}))     # as a 2-rank run would have written
    args_before = (out / "args.json").read_bytes()
    one_line(cli("pretrain", "--resume", "--output", out, "--steps", "40"), "mpirun -np 2")
    assert (out / "args.json").read_bytes() == args_before


def test_a_resume_needs_no_init_from_directory(corpus, model_dir, tmp_path):
    """Continued pretraining, interrupted: the --init-from directory moves away, and the run resumes
    from its own checkpoint and tokenizer."""
    init = tmp_path / "init"
    init.mkdir()
    for f in Path(model_dir).iterdir():
        (init / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "run"
    argv = ["pretrain", "--corpus", corpus, "--init-from", init, "--max-seq-length", "32", "--batch-size", "4",
            "--output", out, "--quiet"]
    assert cli(*argv, "--steps", "2").returncode == 0
    init.rename(tmp_path / "moved")
    done = cli("pretrain", "--resume", "--output", out, "--steps", "4", "--quiet")
    assert done.returncode == 0 and "done: 4 steps" in done.stdout, done.stderr


# ---- 3. leftovers -------------------------------------------------------------------------------

def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_what_killed_processes_left_is_swept(corpus, config_file, tokenizer_dir, tmp_path):
    """An example store and a token-cache build whose processes are gone (kill -9, MPI abort) are
    removed by the next run; a live process's, or another host's, are left alone; the run's own
    store goes when it ends."""
    tmp, cache = tmp_path / "tmp", tmp_path / "cache"
    (cache / "tokens").mkdir(parents=True)
    tmp.mkdir()
    host = socket.gethostname().replace("-", "_")
    dead, alive = dead_pid(), os.getpid()
    stale = [tmp / f"minibert-examples-{host}-{dead}-abc", cache / "tokens" / f".build.{host}-{dead}-abc.tmp"]
    kept = [tmp / f"minibert-examples-{host}-{alive}-abc", tmp / f"minibert-examples-otherhost-{dead}-abc",
            cache / "tokens" / f".build.{host}-{alive}-abc.tmp"]
    for path in stale + kept:
        path.mkdir()
        (path / "ids.bin").write_bytes(b"x" * 100)
    done = cli(*pretrain_args(corpus, config_file, tokenizer_dir, tmp_path / "run", "--steps", "2"),
               env={"TMPDIR": str(tmp), "MINIBERT_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert sorted(p.name for p in tmp.iterdir()) == sorted(p.name for p in kept[:2])


def test_sigterm_saves_and_leaves_nothing_behind(corpus, config_file, tokenizer_dir, tmp_path):
    """SIGTERM (what a scheduler sends before it kills) to a one-process run: it finishes its step,
    saves, exits 143, and its example store is gone."""
    tmp, out = tmp_path / "tmp", tmp_path / "run"
    tmp.mkdir()
    code = "import sys\nfrom minibert.__main__ import main\nsys.exit(main())\n"
    argv = pretrain_args(corpus, config_file, tokenizer_dir, out, "--steps", "100000", "--save-every", "100000")
    run = subprocess.Popen([sys.executable, "-c", code, *map(str, argv)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp)})
    deadline = time.time() + 120
    while not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text().count("\n") >= 2):
        assert time.time() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.05)
    assert list(tmp.glob("minibert-examples-*"))                     # the store exists while it trains
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 143, stderr
    assert "interrupted at step" in stderr and "saved" in stderr
    assert list(out.glob("checkpoint-*")) and not list(out.glob(".*.tmp")) and not list(tmp.iterdir())


# ---- 4. files respect the umask --------------------------------------------------------------

def modes(root: Path) -> dict:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]
            if not p.name.startswith(".")}


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_files_follow_the_umask(corpus, config_file, tokenizer_dir, tmp_path, umask, file_mode, dir_mode):
    """Models, checkpoints, args.json, the tokenizer and a state dump get 0666 / 0777 less the
    umask, as any other tool's files (not the 0600 / 0700 of temporary files)."""
    out = tmp_path / "run"
    done = cli(*pretrain_args(corpus, config_file, tokenizer_dir, out, "--steps", "2"), umask=umask)
    assert done.returncode == 0, done.stderr
    dump = cli("dump", "--model", out / "model", "in the beginning", "--output", tmp_path / "state.safetensors",
               umask=umask)
    assert dump.returncode == 0, dump.stderr
    found = modes(out)
    found["state.safetensors"] = stat.S_IMODE((tmp_path / "state.safetensors").stat().st_mode)
    for name in ("args.json", "model/model.safetensors", "model/config.json", "model/vocab.txt",
                 "tokenizer/tokenizer.json", "checkpoint-0000002/optimizer.safetensors",
                 "checkpoint-0000002/trainer_state.json", "state.safetensors"):
        assert found[name] == file_mode, (name, oct(found[name]))
    for name in ("model", "tokenizer", "checkpoint-0000002"):
        assert found[name] == dir_mode, (name, oct(found[name]))


# ---- 5. no wrong answer with exit status 0 ---------------------------------------------------

def test_ranks_that_read_different_corpora_are_refused(corpus, config_file, tokenizer_dir, tmp_path):
    """The same --corpus path with other content on rank 1 (a copy per machine that differs): the job
    stops naming the rank, before anything trains."""
    import shutil
    other = tmp_path / "other.txt"
    other.write_text(corpus.read_text().replace("God", "Gods"))
    script = tmp_path / "two_corpora.py"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "import minibert.training.pretraining_corpus as p\n"
        "from minibert.training.distributed import world\n"
        "real = p.corpus_files\n"
        f"p.corpus_files = lambda spec: [Path({str(other)!r})] if world().rank == 1 else real(spec)\n"
        "from minibert.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    launcher = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    done = subprocess.run([launcher, "-n", "2", sys.executable, str(script),
                           *map(str, pretrain_args(corpus, config_file, tokenizer_dir, tmp_path / "run", "--steps", "2"))],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "MINIBERT_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert "is not the same file(s) on every MPI process: rank(s) 1 read other content" in done.stderr, done.stderr
    assert not list((tmp_path / "run").glob("checkpoint-*"))


def test_compare_refuses_what_it_cannot_compare(model_dir, tmp_path):
    """No tensor name in common, a file with no tensors, an 'order' that is not a list, and
    tolerances that are negative, NaN or inf: each one line, never "agree"."""
    import numpy as np
    from safetensors.numpy import save_file
    state = tmp_path / "state.safetensors"
    assert cli("dump", "--model", model_dir, "in the beginning", "--output", state).returncode == 0
    save_file({"something.else": np.zeros(3)}, str(tmp_path / "other.safetensors"))
    save_file({}, str(tmp_path / "empty.safetensors"))
    save_file({"x": np.zeros(3)}, str(tmp_path / "order.safetensors"), metadata={"order": '{"x": 1}'})
    one_line(cli("compare", state, tmp_path / "other.safetensors"), "share no tensor name")
    one_line(cli("compare", tmp_path / "empty.safetensors", state), "share no tensor name")
    one_line(cli("compare", tmp_path / "order.safetensors", state), "'order' metadata is not a JSON list")
    for flag, value in (("--rtol", "-1"), ("--atol", "nan"), ("--rtol", "inf")):
        one_line(cli("compare", state, state, flag, value), f"{flag[2:]} must be a finite number >= 0")
    assert cli("compare", state, state).returncode == 0


def test_compare_live_checks_the_state_it_reruns(model_dir, tmp_path):
    """--live on a state with NaN weights, an id outside the vocabulary or an unknown dtype: one
    line naming it."""
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open
    state = tmp_path / "state.safetensors"
    assert cli("dump", "--model", model_dir, "in the beginning", "--output", state).returncode == 0
    with safe_open(str(state), framework="np") as f:
        metadata = dict(f.metadata())
    tensors = load_file(str(state))
    name = next(k for k in tensors if k.startswith("param.") and k.endswith("weight"))
    damaged = {"nan": ({**tensors, name: tensors[name] * float("nan")}, metadata, "holds NaN or inf"),
               "ids": ({**tensors, "inputs.input_ids": tensors["inputs.input_ids"] + 10 ** 6}, metadata,
                       "outside the vocabulary"),
               "dtype": (tensors, {**metadata, "dtype": "float16"}, "dtype 'float16'")}
    for key, (t, meta, needle) in damaged.items():
        save_file(t, str(tmp_path / f"{key}.safetensors"), metadata=meta)
        one_line(cli("compare", tmp_path / f"{key}.safetensors", "--live", "minibert"), needle)


def test_dump_checks_its_ids_and_never_masks_a_special_token(model_dir, tmp_path):
    """--ids outside the vocabulary, longer than the positions, beyond int64 or not integers: one
    line each.  A pair's middle [SEP] is never a masked position, and a single text among pairs is
    a single text, not one with a literal '|||'."""
    from minibert.states import load_state
    out = tmp_path / "state.safetensors"
    for ids, needle in (("[[2, 99999]]", "holds 99999"), ("[[2, 3.5]]", "holds 3.5"),
                        ("[[2, 99999999999999999999999]]", "holds 99999999999999999999999"),
                        (f"[{[2] * 65}]", "65 tokens, more than the model's 64 positions"),
                        ("[[2, true]]", "holds True")):
        one_line(cli("dump", "--model", model_dir, "--ids", ids, "--output", out), needle)
    done = cli("dump", "--model", model_dir, "--head", "pretraining", "one two three four five six ||| seven eight",
               "and light", "--output", out)
    assert done.returncode == 0, done.stderr
    state = load_state(out)
    tok = BertTokenizer.from_pretrained(model_dir)
    ids, labels = state["inputs.input_ids"], state["inputs.labels"]
    special = set(tok.all_special_ids) - {tok.mask_token_id}
    assert ((labels != -100) & (labels >= 0)).any()
    assert not any(int(label) in special for label in labels[labels != -100])
    sep_rows = (ids == tok.sep_token_id).sum(1)
    assert sep_rows.tolist() == [2, 1]                        # the pair has its two [SEP]s, the single text one
    assert "|" not in tok.decode(ids[1].tolist())


def test_a_closed_pipe_ends_quietly(model_dir, tmp_path):
    """`minibert fill-mask ... | head -1`: the reader goes away; no traceback."""
    script = tmp_path / "minibert_cli.py"
    script.write_text("import sys\nfrom minibert.__main__ import main\nsys.exit(main())\n")
    texts = [f"in the [MASK] {i}" for i in range(300)]
    pipeline = subprocess.run(f"{sys.executable} {script} fill-mask --top-k 50 --model {model_dir} "
                              + " ".join(f"'{t}'" for t in texts) + " | head -1",
                              shell=True, capture_output=True, text=True, timeout=120)
    assert pipeline.stdout.count("\n") == 1 and "Traceback" not in pipeline.stderr
    assert "BrokenPipe" not in pipeline.stderr and "error" not in pipeline.stderr, pipeline.stderr


def test_a_library_error_for_a_full_disk_names_the_file(tmp_path):
    """safetensors reports a full disk as its own error: the write reports it as the OSError it is,
    naming the file, and leaves no temporary file."""
    import errno
    from minibert.files import write_atomic

    def full(tmp):
        from safetensors import SafetensorError
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')
    with pytest.raises(OSError) as caught:
        write_atomic(tmp_path / "model.safetensors", full)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "model.safetensors")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def classifier(model_dir, tmp_path_factory):
    """A classifier fine-tuned for one epoch on labels "dark" / "light" (its quality is beside the point)."""
    root = tmp_path_factory.mktemp("classifier")
    rows = [(text, "light" if gold else "dark") for text, gold in classify_rows()]
    train = write_tsv(root / "train.tsv", rows)
    done = cli("finetune", "--model", model_dir, "--task", "classify", "--train", train, "--eval", train,
               "--output", root / "run", "--epochs", "1", "--batch-size", "8", "--quiet")
    assert done.returncode == 0, done.stderr
    return root / "run" / "best", rows


def test_predict_reads_csv_and_jsonl_by_column_name(classifier, tmp_path):
    """A .csv (quoted commas inside) and a .jsonl file give the predictions of the same rows as TSV;
    the datasets library's integer labels are read as the model's label names."""
    import csv
    best, rows = classifier
    rows = [(text.replace("said", "said, quietly,"), gold) for text, gold in rows]
    tsv = write_tsv(tmp_path / "in.tsv", rows)
    with open(tmp_path / "in.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    names = {"dark": 0, "light": 1}                     # the model's ids (labels sorted)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t, "label": names[g]}) + "\n" for t, g in rows))
    outputs = {}
    for name in ("in.tsv", "in.csv", "in.jsonl"):
        done = cli("predict", "--model", best, "--input", tmp_path / name, "--output", tmp_path / f"{name}.out", "--quiet")
        assert done.returncode == 0, done.stderr
        outputs[name] = [json.loads(line) for line in (tmp_path / f"{name}.out").read_text().splitlines()]
        assert "accuracy" in done.stderr
    assert outputs["in.csv"] == outputs["in.tsv"] == outputs["in.jsonl"]
    assert [r["text"] for r in outputs["in.csv"]] == [t for t, _ in rows] and tsv.is_file()


def test_predict_refuses_what_would_be_a_wrong_answer(classifier, model_dir, tmp_path):
    """Labels that are not the model's, a batch size or max length that cannot work, a sentence TSV
    given to a tagging model: one line each, not "accuracy 0.0000", not a run on empty batches."""
    best, rows = classifier
    other = write_tsv(tmp_path / "other.tsv", [(t, "pos" if g == "light" else "neg") for t, g in rows])
    one_line(cli("predict", "--model", best, "--input", other, "--quiet"), "are not the model's (dark, light)")
    some = write_tsv(tmp_path / "some.tsv", rows[:-1] + [(rows[-1][0], "grey")])
    done = cli("predict", "--model", best, "--input", some, "--quiet")
    assert done.returncode == 0 and "labels the model does not know (grey): 1 examples count as wrong" in done.stderr
    good = write_tsv(tmp_path / "good.tsv", rows)
    for flags, needle in ((["--batch-size", "0"], "batch_size must be a positive integer"),
                          (["--batch-size", "-3"], "batch_size must be a positive integer"),
                          (["--max-length", "0"], "max_length must be between 4"),
                          (["--max-length", "1"], "max_length must be between 4"),
                          (["--max-length", "100000"], "max_length must be between 4")):
        one_line(cli("predict", "--model", best, "--input", good, *flags), needle)
    one_line(cli("predict", "--model", best, "--input", good, "--task", "tag"), "does not do the 'tag' task")
    conll = tmp_path / "tags.conll"
    conll.write_text("in B-X\nthe I-X\nbeginning O\n\ngod B-X\n")
    tagger = tmp_path / "tagger"
    done = cli("finetune", "--model", model_dir, "--task", "tag", "--train", conll, "--eval", conll,
               "--output", tagger, "--epochs", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    one_line(cli("predict", "--model", tagger / "best", "--input", good, "--quiet"),
             "a whole sentence in the first column", "good.tsv:1")


# ---- 7. messages that name the real cause; 8. the fill-mask hint -----------------------------

def test_corpus_messages_name_the_real_cause(config_file, tmp_path):
    """A Latin-1 byte at its line and offset in the file, a FIFO as a FIFO, a directory given for a
    file as a directory, and --objective mlm suggested only where it would work."""
    latin = tmp_path / "latin.txt"
    latin.write_bytes(("ascii line\n" * 5000).encode() + b"caf\xe9\n\nmore\n")
    out = tmp_path / "run"
    one_line(cli("pretrain", "--corpus", latin, "--output", out, "--quiet"),
             f"line 5001, byte {5000 * 11 + 3} of the file is 0xe9")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_line(cli("pretrain", "--corpus", fifo, "--output", out, "--quiet"), "is not a regular file (a FIFO")
    one_line(cli("predict", "--model", tmp_path, "--input", tmp_path), "is not a checkpoint directory: it has no config.json")
    one_line(cli("dump", "--config", config_file, "--ids", "[[1, 2]]", "--output", tmp_path), "is a directory")
    one = tmp_path / "one.txt"
    one.write_text("A single line of text.\n")
    one_line(cli("pretrain", "--corpus", one, "--output", out, "--quiet"), "has 1 document(s)", "blank line")
    assert "--objective mlm" not in cli("pretrain", "--corpus", one, "--output", out, "--quiet").stderr
    two = tmp_path / "two.txt"
    two.write_text("A first line of text.\n\nA second document.\n")
    one_line(cli("pretrain", "--corpus", two, "--output", out, "--quiet"), "or use --objective mlm")


def test_the_fill_mask_hint_is_a_sentence_of_the_run(config_file, tmp_path):
    """The command printed at the end of pretraining masks a word of the run's own held-out text,
    not a Bible verse, and runs."""
    corpus = tmp_path / "recipes.txt"
    corpus.write_text("\n\n".join(f"Whisk the eggs with sugar for batch {i} until pale.\nFold in the flour "
                                  f"gently and bake the cake for thirty minutes." for i in range(60)) + "\n")
    done = cli("pretrain", "--corpus", corpus, "--config", config_file, "--vocab-size", "120", "--max-seq-length",
               "32", "--batch-size", "4", "--steps", "2", "--output", tmp_path / "run", "--quiet")
    assert done.returncode == 0, done.stderr
    hint = done.stdout.strip().splitlines()[-1]
    assert hint.startswith(f"try: minibert fill-mask --model {tmp_path / 'run' / 'model'} \"") and "[MASK]" in hint
    sentence = hint.split('"')[1]
    assert "God" not in sentence and sentence.replace("[MASK]", "").split()[0] in ("whisk", "fold")
    filled = cli("fill-mask", "--model", tmp_path / "run" / "model", sentence)
    assert filled.returncode == 0 and filled.stdout.startswith(sentence), filled.stderr


def test_a_file_given_for_an_output_directory_is_named(model_dir, tmp_path):
    """--output that is a file (or /dev/null), for pretraining and fine-tuning; --resume where no run
    was started: the cause, not "File exists" or a missing args.json's errno."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    train = write_tsv(tmp_path / "train.tsv", classify_rows())
    one_line(cli("finetune", "--model", model_dir, "--task", "classify", "--train", train, "--eval", train,
                 "--output", afile), "output", "is a file, not a directory")
    one_line(cli("pretrain", "--output", "/dev/null", "--quiet"), "output /dev/null is a file, not a directory")
    one_line(cli("finetune", "--resume", "--output", tmp_path / "nothing"), "nothing to resume", "no args.json")


def test_quiet_hides_chatter_not_results(corpus, config_file, tokenizer_dir, model_dir, tmp_path):
    """--quiet drops the progress bar and the running commentary; evaluation results, warnings
    (a max length clamped to the model's positions) and the final summary still print."""
    done = cli(*pretrain_args(corpus, config_file, tokenizer_dir, tmp_path / "pt", "--steps", "4", "--eval-every", "2"))
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    assert "step 2: held-out MLM accuracy" in printed and "step 4: held-out MLM accuracy" in printed
    assert "done: 4 steps" in done.stdout and "pretraining:" not in printed and "model: 2 layers" not in printed
    train = write_tsv(tmp_path / "train.tsv", classify_rows())
    done = cli("finetune", "--model", model_dir, "--task", "classify", "--train", train, "--eval", train,
               "--output", tmp_path / "ft", "--epochs", "2", "--batch-size", "8", "--max-length", "100", "--quiet")
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    assert "max_length 100 is longer than the model's 64 positions: using 64" in printed
    assert printed.count("(epoch 1.00): train loss") == 1 and printed.count("(epoch 2.00): train loss") == 1
    assert "done: best accuracy" in done.stdout and "fine-tuning:" not in printed


# ---- 6. no raw traceback ---------------------------------------------------------------------

@pytest.mark.parametrize("edit, needle", [({"max_steps": "forty"}, "max_steps is 'forty', not int"),
                                          ({"learning_rate": [1]}, "learning_rate is [1], not float"),
                                          ({"dynamic_masking": 1}, "dynamic_masking is 1, not bool")])
def test_a_resume_with_a_wrong_type_in_args_json_is_one_line(corpus, config_file, tokenizer_dir, tmp_path,
                                                             edit, needle):
    out = tmp_path / "run"
    assert cli(*pretrain_args(corpus, config_file, tokenizer_dir, out, "--steps", "2")).returncode == 0
    stored = json.loads((out / "args.json").read_text())
    (out / "args.json").write_text(json.dumps({**stored, **edit}))
    one_line(cli("pretrain", "--resume", "--output", out, "--quiet"), needle, "args.json")


def test_a_full_temporary_directory_names_the_file():
    """An example store whose disk is full (/dev/full answers every write with ENOSPC): the error
    names the file, not just "No space left on device"."""
    import errno
    from minibert.data.example_store import RaggedStore
    store = RaggedStore(Path("/dev/full"))
    with pytest.raises(OSError) as caught:
        for _ in range(10_000):
            store.append(list(range(64)))
        store.close()
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == "/dev/full"


def test_sigterm_to_fine_tuning_saves_and_resumes(model_dir, tmp_path):
    """Fine-tuning stops on SIGTERM as on Ctrl-C: the step finishes, a checkpoint is saved, exit 143,
    and --resume goes on to the end."""
    train = write_tsv(tmp_path / "train.tsv", classify_rows(64))
    out = tmp_path / "run"
    code = "import sys\nfrom minibert.__main__ import main\nsys.exit(main())\n"
    argv = ["finetune", "--model", model_dir, "--task", "classify", "--train", train, "--eval", train, "--output", out,
            "--epochs", "400", "--batch-size", "4", "--eval-steps", "5", "--quiet"]
    run = subprocess.Popen([sys.executable, "-c", code, *map(str, argv)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text().count("\n") >= 1):
        assert time.time() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 143 and "interrupted at step" in stderr, stderr
    args = json.loads((out / "args.json").read_text())
    (out / "args.json").write_text(json.dumps({**args, "epochs": 1}))       # a short end to the test
    done = cli("finetune", "--resume", "--output", out, "--quiet")
    assert done.returncode == 0 and "done: best accuracy" in done.stdout, done.stderr


# ---- the run lock where the platform has no flock ----------------------------------------------

def test_the_run_lock_without_flock(tmp_path, monkeypatch):
    """Without fcntl (nor msvcrt) the lock is an owner file: a second run is refused while its owner
    lives, the file goes with the run, and a crashed owner's file is taken over."""
    import minibert.files as files
    monkeypatch.setattr(files, "fcntl", None)
    monkeypatch.setattr(files, "msvcrt", None)
    with files.RunLock(tmp_path):
        owner = (tmp_path / ".lock.owner").read_text().strip()
        assert owner == files.owner_tag() + "-"
        with pytest.raises(files.RunDirectoryInUse, match=f"in use by another minibert run \\(process {owner}\\)"):
            with files.RunLock(tmp_path):
                pass
    assert not (tmp_path / ".lock.owner").exists()
    (tmp_path / ".lock.owner").write_text(f"{socket.gethostname().replace('-', '_')}-{dead_pid()}-\n")
    with files.RunLock(tmp_path):                         # the crashed run's lock is taken over
        assert (tmp_path / ".lock.owner").read_text().strip() == files.owner_tag() + "-"
    (tmp_path / ".lock.owner").write_text("otherhost-1-\n")   # another machine's run: never taken for gone
    with pytest.raises(files.RunDirectoryInUse):
        with files.RunLock(tmp_path):
            pass
