"""The package's shape: imports flow one way, importing changes nothing in the process, process
settings come from one explicit call, and one switch picks the tier of layers."""

import ast
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import minibert
from minibert import kernels, layers, ops

PACKAGE = pathlib.Path(minibert.__file__).parent

# Units from the bottom up: a module may import from its own unit and from the units before it.
FLOW = [
    "minibert.config", "minibert.runtime", "minibert.files",       # plain foundations
    "minibert.layers",                                             # the textbook layers
    "minibert.kernels",                                            # the fast ones, naming those
    "minibert.ops",                                                # the switch between the two
    "minibert.data", "minibert.tokenization", "minibert.checkpoints",
    "minibert.models",                                             # BERT from the layers
    "minibert.tools",                                              # features, fill-mask, pictures
    "minibert.training",                                           # optimizer, pretraining, fine-tuning
    "minibert.states", "minibert.testing",                         # reference states for other BERTs
    "minibert.tools.explore",                                      # the attention explorer: draws the
                                                                   # states' step-by-step trace, reads runs
    "minibert.cli", "minibert.__main__", "minibert",               # programs; the package's names
]


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(name):
    matches = [u for u in FLOW if name == u or name.startswith(u + ".")]
    assert matches, f"{name} belongs to no unit of FLOW: place it there"
    return max(matches, key=len)


def imports_of(path):
    """Every minibert module that `path` imports, at the top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "minibert")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "minibert":
                target = node.module
            else:
                continue
            for alias in node.names:      # `from . import ops` names a module; `from .x import f` does not
                sub = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists() or \
                    (PACKAGE.parent / sub.replace(".", "/") / "__init__.py").exists()
                found.add(sub if is_module else target)
    return name, found


def import_graph():
    return dict(imports_of(p) for p in sorted(PACKAGE.rglob("*.py")))


def test_imports_flow_one_way():
    graph = import_graph()
    assert "minibert.models.bert" in graph and "minibert.ops" in graph["minibert.models.encoder"]
    bad = []
    for name, targets in graph.items():
        for target in targets:
            if FLOW.index(unit_of(target)) > FLOW.index(unit_of(name)):
                bad.append(f"{name} imports {target} ({unit_of(target)} comes after {unit_of(name)})")
    assert not bad, "imports against the flow:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = import_graph()
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", "import cycle: " + " -> ".join(trail + [node])
        state[node] = "open"
        for target in graph.get(node, ()):
            if target != node:
                visit(target, trail + [node])
        state[node] = "done"

    for node in graph:
        visit(node, [])


def test_the_checker_sees_an_import_against_the_flow(tmp_path, monkeypatch):
    """A layer importing a model is reported (the test above can fail)."""
    fake = PACKAGE / "layers" / "linear.py"
    name, targets = imports_of(fake)
    assert name == "minibert.layers.linear" and targets == set()
    source = tmp_path / "minibert" / "layers"
    source.mkdir(parents=True)
    (source / "bad.py").write_text("from ..models.bert import BertModel\nfrom .. import ops\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "minibert")
    (tmp_path / "minibert" / "ops.py").write_text("")
    name, targets = imports_of(source / "bad.py")
    assert targets == {"minibert.models.bert", "minibert.ops"}
    assert FLOW.index(unit_of("minibert.models.bert")) > FLOW.index(unit_of(name))


# ---- importing changes nothing; configure_runtime() is the one explicit call -----------------

PROBE = r"""
import ctypes, json, os, sys

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def served_by_mmap(n):
    before = libc.mallinfo2().hblkhd
    p = libc.malloc(n)
    mapped = libc.mallinfo2().hblkhd > before
    libc.free(p)
    return mapped

CONFIGURE = sys.argv[1] == "configure"
if CONFIGURE:
    from minibert.runtime import configure_runtime
    applied = configure_runtime()
import numpy
from threadpoolctl import threadpool_info
env_before = dict(os.environ)
blas_before = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}
import importlib, pkgutil, minibert
for m in pkgutil.walk_packages(minibert.__path__, "minibert."):
    importlib.import_module(m.name)
for name in minibert.__all__:
    getattr(minibert, name)
print(json.dumps({
    "env_unchanged": dict(os.environ) == env_before,
    # libraries loaded before keep their thread counts (scipy may load a BLAS of its own)
    "blas_unchanged": {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
                       if lib["filepath"] in blas_before} == blas_before,
    "blas_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
    "big_block_from_mmap": served_by_mmap(64 << 20),
    "applied": applied if CONFIGURE else None,
}))
"""


def probe(mode, **env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_THREAD_TIMEOUT", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         env={**clean, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallinfo2 is glibc's")
def test_importing_minibert_changes_nothing_in_the_process():
    """Every module imported and every public name touched: the environment, the BLAS thread
    counts and malloc's settings (a 64 MiB block still comes from mmap, glibc's default) are as
    they were."""
    result = probe("import")
    assert result["env_unchanged"] and result["blas_unchanged"]
    assert result["blas_timeout"] is None
    assert result["big_block_from_mmap"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallinfo2 is glibc's")
def test_configure_runtime_makes_both_settings_before_numpy():
    """The explicit call does change the process: the same probe then sees the heap serve the
    64 MiB block and OpenBLAS's spin shortened; a user's own value is kept."""
    result = probe("configure", MINIBERT_NUM_THREADS="3")
    assert result["applied"] == {"malloc_reuse": True, "blas_short_spin": True, "threads": 3}
    assert result["blas_timeout"] == "18"
    assert not result["big_block_from_mmap"]
    assert probe("configure", OPENBLAS_THREAD_TIMEOUT="25")["blas_timeout"] == "25"


def test_runtime_settings_after_numpy_say_they_are_too_late():
    code = ("import numpy; from minibert.runtime import configure_runtime; import os; "
            "print(configure_runtime()['blas_short_spin'], os.environ.get('OPENBLAS_THREAD_TIMEOUT'))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "None"]


def test_one_thread_count_for_blas_and_numba():
    """configure_runtime gives NumPy's BLAS and Numba's kernels the same count: the cores this
    process may run on, or MINIBERT_NUM_THREADS; a count the user gave either library is kept."""
    code = ("from minibert.runtime import configure_runtime; configure_runtime(); import numba; "
            "from threadpoolctl import threadpool_info; "
            "print(numba.get_num_threads(), [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'][0])")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS")}

    def counts(**extra):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**env, **extra})
        return out.stdout.split()
    cores = str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else str(os.cpu_count())
    assert counts() == [cores, cores]
    assert counts(MINIBERT_NUM_THREADS="1") == ["1", "1"]
    assert counts(MINIBERT_NUM_THREADS="1", NUMBA_NUM_THREADS="2") == ["2", "1"]


def test_without_numba_the_textbook_layers_run_and_say_so_once():
    """Where numba cannot be imported, every op is the textbook one, a model still trains, and one
    warning names the reason."""
    code = ("import sys, warnings; sys.modules['numba'] = None; warnings.simplefilter('always'); "
            "import numpy as np; from minibert import ops, layers, BertModel, BertConfig; "
            "print(ops.tier(), ops.layer_norm_forward is layers.layer_norm_forward, ops.tier()); "
            "m = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, "
            "intermediate_size=12)); out = m(np.array([[2, 5, 7, 0]]), np.array([[1, 1, 1, 0]])); "
            "print(set(m.backward(np.ones_like(out.last_hidden_state))) == set(m.params))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["reference", "True", "reference", "True"]
    assert out.stderr.count("RuntimeWarning: minibert runs on its textbook layers") == 1
    assert "numba" in out.stderr


def test_import_minibert_loads_no_numpy_and_the_command_configures_first():
    """`import minibert` is light (the public names load on first use), so the `minibert` command
    (minibert.__main__:main) can make the settings before NumPy loads."""
    code = ("import sys, minibert, minibert.runtime; print('numpy' in sys.modules); "
            "import minibert.runtime as r, minibert.__main__ as m; calls = []; "
            "r.configure_runtime = lambda: calls.append('numpy' in sys.modules) or {}; "
            "sys.argv = ['minibert', 'info', 'tiny']; code = m.main(); print(calls, code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "False"
    assert lines[-1] == "[False] 0"                    # called once, before NumPy was loaded
    assert "parameters" in out.stdout


# ---- the switch between the two tiers ------------------------------------------------------

def test_every_op_exists_in_both_tiers_with_one_signature():
    import inspect
    for name in ops.OPS:
        ref, fast = getattr(layers, name), getattr(kernels, name)
        assert inspect.signature(ref) == inspect.signature(fast), name
    assert len(set(ops.OPS)) == len(ops.OPS)
    with pytest.raises(AttributeError, match="no attribute 'softmax_forwad'"):
        ops.softmax_forwad


def test_the_switch_by_call_and_by_environment():
    assert not ops.is_reference()                          # the default: fast kernels
    assert ops.layer_norm_forward is kernels.layer_norm_forward
    with ops.reference_layers():
        assert ops.tier() == "reference" and ops.layer_norm_forward is layers.layer_norm_forward
    assert ops.tier() == "fast"
    code = "from minibert import ops, layers; print(ops.tier(), ops.adam_update is layers.adam_update)"
    for value, expected in (("1", "reference True"), ("0", "fast False"), ("", "fast False")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "MINIBERT_REFERENCE": value})
        assert out.stdout.strip() == expected, value


def test_a_backward_in_the_other_tier_is_refused():
    from helpers import tiny_config

    from minibert import BertModel
    model = BertModel(tiny_config(), dtype=np.float64)
    out = model(np.array([[2, 5, 7, 3]]))
    with ops.reference_layers():
        with pytest.raises(RuntimeError, match="ran on the fast layers"):
            model.backward(np.ones_like(out.last_hidden_state))
    assert set(model.backward(np.ones_like(out.last_hidden_state))) == set(model.params)
