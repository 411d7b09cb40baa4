"""The attention explorer in a real browser: headless Chromium (Debian's package, installed by
scripts/install_browser.sh, which the README's test command runs), driven by Playwright.  The
page is opened from disk with every network request refused; each test reads back what is drawn
(each line's opacity, the arithmetic's numbers) and holds it to what the model computed, to the
rounding the file uses (tools/explore.py: probabilities to 0.5 / 65535, the rest float16)."""

import numpy as np
import pytest

from minibert import BertModel
from minibert.states import encoder_trace
from minibert.tools.explore import PROB_SCALE, explore

TEXT = "The cat sat on the mat because it was tired."
PAIR = "Then it slept for a long time on the warm mat."
PAD_TO = 40
F16 = 2.0 ** -11
PROB_TOL = dict(rtol=1e-4, atol=0.5 / PROB_SCALE)      # the 16-bit rounding, and the trace's 1e-4 to the model


@pytest.fixture(scope="module")
def models(minilm_dir):
    """all-MiniLM-L6-v2, and the same architecture with random weights (the slider's second)."""
    minilm = BertModel.from_pretrained(minilm_dir)
    random = BertModel(minilm.config, seed=3)
    random.tokenizer = minilm.tokenizer
    return minilm, random.eval()                                  # no dropout: the page shows eval mode


@pytest.fixture(scope="module")
def numbers(models):
    """What each model computed on the padded pair: its attention maps and the step-by-step trace."""
    out = []
    for model in models:
        enc = model.tokenizer(TEXT, PAIR, padding="max_length", truncation=True, max_length=PAD_TO)
        trace = encoder_trace(model.params, model.config, enc.input_ids, enc.token_type_ids, enc.attention_mask)
        att = model(enc.input_ids, enc.attention_mask, enc.token_type_ids, output_attentions=True).attentions
        out.append(dict(mask=enc.attention_mask[0], trace=trace, attentions=np.stack([a[0] for a in att])))
    return out


@pytest.fixture(scope="module")
def page_file(models, tmp_path_factory):
    minilm, random = models
    path = tmp_path_factory.mktemp("explore") / "attention.html"
    explore([("all-MiniLM-L6-v2", minilm), ("random weights", random)], TEXT, pair=PAIR, pad_to=PAD_TO).save(path)
    return path


class Opened:
    """A page opened offline, with what it logged and what it tried to fetch."""

    def __init__(self, browser, url=None, html=None):
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.errors, self.requests = [], []

        def route(r):
            if r.request.url.startswith(("file:", "data:", "about:")):
                r.continue_()
            else:
                self.requests.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        if url:
            self.page.goto(url)
            self.page.wait_for_selector("body[data-ready=true]")
        else:
            self.page.set_content(html)

    def close(self):
        assert self.errors == [] and self.requests == [], (self.errors, self.requests)
        self.context.close()


@pytest.fixture
def opened(browser, page_file):
    o = Opened(browser, url=page_file.as_uri())
    yield o
    o.close()


def lines(page, panel="panel-a"):
    """Every line drawn in a panel: (head, query, key) -> its opacity, and its signed weight."""
    rows = page.eval_on_selector_all(f"#{panel} svg g.lines line", "ls => ls.map(l => [+l.dataset.h, +l.dataset.i, "
                                     "+l.dataset.j, +l.getAttribute('stroke-opacity'), +l.dataset.weight])")
    return {(h, i, j): (opacity, weight) for h, i, j, opacity, weight in rows}


def expected_lines(att_layer, mask, heads=None, keep=lambda i, j: True):
    """The lines the heads view should draw for one layer: every head shown, every real query."""
    H, T, _ = att_layer.shape
    return {(h, i, j): att_layer[h, i, j] for h in (heads if heads is not None else range(H))
            for i in range(T) if mask[i] for j in range(T) if keep(i, j)}


def assert_drawn(drawn, expected):
    assert sorted(drawn) == sorted(expected)
    keys = sorted(expected)
    np.testing.assert_allclose([drawn[k][0] for k in keys], [expected[k] for k in keys], **PROB_TOL)


def test_the_heads_view_draws_every_weight_the_model_computed(opened, numbers):
    page, n = opened.page, numbers[0]
    assert "layer 1 of 6, heads all of 12" in page.inner_text("#where")
    assert TEXT in page.inner_text("#what") and "all-MiniLM-L6-v2" in page.inner_text("#where")
    assert_drawn(lines(page), expected_lines(n["attentions"][0], n["mask"]))
    page.select_option("#layer", value="4")
    assert "layer 5 of 6" in page.inner_text("#where")
    assert_drawn(lines(page), expected_lines(n["attentions"][4], n["mask"]))


def test_hovering_a_token_keeps_only_its_lines(opened, numbers):
    page, n = opened.page, numbers[0]
    every = expected_lines(n["attentions"][0], n["mask"])
    page.hover("#panel-a .token[data-side=query][data-index='3']")
    assert_drawn(lines(page), {k: v for k, v in every.items() if k[1] == 3})
    page.hover("#panel-a .token[data-side=key][data-index='5']")
    assert_drawn(lines(page), {k: v for k, v in every.items() if k[2] == 5})
    page.mouse.move(5, 5)
    assert len(lines(page)) == len(every)
    # by keyboard: focus keeps a token's lines, Enter pins them after the focus has moved on
    page.focus("#panel-a .token[data-side=query][data-index='2']")
    assert {k[1] for k in lines(page)} == {2}
    page.keyboard.press("Enter")
    page.focus("#layer")
    assert {k[1] for k in lines(page)} == {2}
    assert page.get_attribute("#panel-a .token[data-side=query][data-index='2']", "class").endswith("active")


def test_heads_go_on_and_off_and_special_tokens_can_be_hidden(opened, numbers):
    page, n = opened.page, numbers[0]
    page.click(".head-toggle[data-h='0']")
    assert page.get_attribute(".head-toggle[data-h='0']", "aria-pressed") == "false"
    assert_drawn(lines(page), expected_lines(n["attentions"][0], n["mask"], heads=range(1, 12)))
    page.click("#heads-all")                                         # all back on
    page.click("#heads-all")                                         # all off
    assert lines(page) == {} and "heads none of 12" in page.inner_text("#where")
    page.click(".head-toggle[data-h='7']")
    page.check("#hide-special")
    tokens = page.eval_on_selector_all("#panel-a .token[data-side=query]", "ts => ts.map(t => t.textContent)")
    special = {i for i, t in enumerate(tokens) if t in ("[CLS]", "[SEP]", "[PAD]")}
    assert_drawn(lines(page), expected_lines(n["attentions"][0], n["mask"], heads=[7],
                                             keep=lambda i, j: i not in special and j not in special))


def test_the_model_view_opens_a_head(opened, numbers):
    page, n = opened.page, numbers[0]
    page.keyboard.press("2")
    assert page.is_visible("#view-model") and not page.is_visible("#view-heads")
    assert page.eval_on_selector_all(".thumbnail", "bs => bs.length") == 6 * 12
    page.click(".thumbnail[data-layer='3'][data-h='6']")
    assert page.is_visible("#view-heads") and page.get_attribute("#tab-heads", "aria-selected") == "true"
    assert "layer 4 of 6, heads 7 of 12" in page.inner_text("#where")
    assert_drawn(lines(page), expected_lines(n["attentions"][3], n["mask"], heads=[6]))
    page.keyboard.press("2")                                         # by keyboard: focus one, Enter
    page.focus(".thumbnail[data-layer='5'][data-h='11']")
    page.keyboard.press("Enter")
    assert_drawn(lines(page), expected_lines(n["attentions"][5], n["mask"], heads=[11]))


def test_the_arithmetic_view_shows_the_numbers_of_one_row(opened, numbers):
    page, n = opened.page, numbers[0]
    layer, head, query = 2, 4, 7
    page.keyboard.press("3")
    page.select_option("#layer", value=str(layer))
    page.select_option("#arith-head", value=str(head))
    page.select_option("#arith-query", value=str(query))
    assert f"layer {layer + 1} of 6, head {head + 1} of 12, query \"because\"" in page.inner_text("#where")
    column = lambda cls: np.array(page.eval_on_selector_all(f"#arith-table td.{cls}", "ts => ts.map(t => +t.dataset.value)"))
    q = n["trace"][f"layer.{layer}.attention.q"][0, head].astype(np.float64)           # (T, D)
    k = n["trace"][f"layer.{layer}.attention.k"][0, head].astype(np.float64)
    v = n["trace"][f"layer.{layer}.attention.v"][0, head].astype(np.float64)
    D = q.shape[-1]
    np.testing.assert_allclose(column("score"), k @ q[query] / np.sqrt(D), rtol=F16, atol=6e-8)
    masked = n["mask"] == 0
    assert np.all(column("mask")[masked] == -np.inf) and np.all(column("mask")[~masked] == 0)
    assert np.all(column("total")[masked] == -np.inf)
    p = n["attentions"][layer, head, query]
    np.testing.assert_allclose(column("prob"), p, **PROB_TOL)
    # the softmax done in the page from float16 scores: |dp| <= p (e^(2 max|ds|) - 1)
    ds = 2 * F16 * np.abs(k @ q[query] / np.sqrt(D)).max()
    np.testing.assert_allclose(column("softmax"), p, rtol=np.expm1(2 * ds) + 1e-4, atol=1e-7)
    # the head's output: sum_j p_j v_j of the page's numbers against the model's own context
    context = np.array(page.eval_on_selector("#arith-context", "e => JSON.parse(e.dataset.values)"))
    want = n["trace"][f"layer.{layer}.attention.context"][0, query, head * D:(head + 1) * D]
    bound = (0.5 / PROB_SCALE + 1e-4 * p.max()) * np.abs(v).sum(0) + F16 * np.abs(v).max(0) + 1e-6
    assert np.all(np.abs(context - want) <= bound), np.abs(context - want).max()
    shown_q = page.inner_text("#arith-q")
    assert shown_q.count(",") == D - 1


def test_the_slider_moves_through_models_and_shows_the_difference(opened, numbers):
    page = opened.page
    trained, random = numbers
    assert page.is_visible("#snapshot")
    page.focus("#snapshot")
    page.keyboard.press("ArrowRight")                                # to the second model, by keyboard
    assert page.inner_text("#snapshot-label") == "random weights"
    assert_drawn(lines(page), expected_lines(random["attentions"][0], random["mask"]))
    page.select_option("#compare", value="1")                              # beside it: all-MiniLM-L6-v2
    assert "model: random weights beside all-MiniLM-L6-v2" in page.inner_text("#where")
    assert_drawn(lines(page, "panel-b"), expected_lines(trained["attentions"][0], trained["mask"]))
    diff = lines(page, "panel-diff")
    want = expected_lines(random["attentions"][0] - trained["attentions"][0], trained["mask"])
    assert sorted(diff) == sorted(want)
    keys = sorted(want)
    np.testing.assert_allclose([diff[k][1] for k in keys], [want[k] for k in keys],
                               rtol=0, atol=2 * PROB_TOL["atol"] + 2e-4 * 1.0)
    np.testing.assert_allclose([diff[k][0] for k in keys], np.abs([diff[k][1] for k in keys]))


def test_a_notebook_frame_runs_the_same_page(browser, models):
    page = explore(models[0], "I love Korea", pair="Seoul is big")
    o = Opened(browser, html=f"<!DOCTYPE html><html><body>{page._repr_html_()}</body></html>")
    frame = o.page.frame_locator("iframe")
    frame.locator("body[data-ready=true]").wait_for()
    assert frame.locator("#panel-a g.lines line").count() == 12 * len(page.data["tokens"]) ** 2
    o.close()
