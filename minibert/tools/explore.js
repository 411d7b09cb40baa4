// The attention explorer's script: no library, nothing fetched; the data is the JSON block of this
// page (minibert/tools/explore.py's docstring says what it holds and how it is rounded).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("minibert-data").textContent);
  const L = data.layers, H = data.heads, D = data.head_size, T = data.tokens.length;
  const SVG = "http://www.w3.org/2000/svg";

  // ---- the arrays: base64 of little-endian uint16 (probabilities) and float16 ----------------
  function bytesOf(b64) {
    const s = atob(b64), u = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
    return new DataView(u.buffer);
  }
  function half(h) {                                 // IEEE 754 binary16 -> number
    const sign = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    if (e === 0) return sign * Math.pow(2, -14) * (f / 1024);
    if (e === 31) return f ? NaN : sign * Infinity;
    return sign * Math.pow(2, e - 15) * (1 + f / 1024);
  }
  function decode(b64, scale) {
    const dv = bytesOf(b64), out = new Float64Array(dv.byteLength / 2);
    for (let i = 0; i < out.length; i++) {
      const word = dv.getUint16(2 * i, true);
      out[i] = scale ? word / scale : half(word);
    }
    return out;
  }
  const models = data.models.map(m => ({
    label: m.label, probs: decode(m.probs, data.prob_scale), scores: decode(m.scores),
    q: decode(m.q), k: decode(m.k), v: decode(m.v)
  }));
  const prob = (m, l, h, i, j) => m.probs[((l * H + h) * T + i) * T + j];
  const score = (m, l, h, i, j) => m.scores[((l * H + h) * T + i) * T + j];
  const vec = (a, l, h, i) => a.subarray(((l * H + h) * T + i) * D, ((l * H + h) * T + i + 1) * D);

  // ---- heads: a colour (Okabe & Ito's palette, safe for colour-blind readers) and a dash each ----
  const COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"];
  const DASHES = ["", "6 3", "2 2", "9 3 2 3"];
  const colour = h => COLOURS[h % COLOURS.length];
  const dash = h => DASHES[Math.floor(h / COLOURS.length) % DASHES.length];
  const UP = "#D55E00", DOWN = "#0072B2";            // the difference: grew / shrank

  const state = {
    view: "heads", layer: 0, heads: new Set([...Array(H).keys()]), hover: null, pinned: null,
    hideSpecial: false, snap: 0, compare: -1, head: 0, query: 0
  };
  const $ = id => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const fmt = x => !isFinite(x) ? (x < 0 ? "\u2212\u221e" : "\u221e") : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3)
    ? x.toExponential(2) : x.toFixed(4);

  // ---- what the page shows, said in words ---------------------------------------------------
  function describe() {
    $("what").textContent = `${data.model}, on "${data.text}"` + (data.pair ? ` + "${data.pair}"` : "")
      + ` (${T} tokens, ${data.mask.filter(m => !m).length} of them padding)`;
    const heads = [...state.heads].sort((a, b) => a - b).map(h => h + 1);
    let where = `layer ${state.layer + 1} of ${L}`;
    if (state.view === "heads") where += `, heads ${heads.length === H ? "all" : heads.join(", ") || "none"} of ${H}`;
    if (state.view === "arithmetic") where += `, head ${state.head + 1} of ${H}, query "${data.tokens[state.query]}" (position ${state.query})`;
    if (models.length > 1) where += `; model: ${models[state.snap].label}`
      + (state.compare >= 0 && state.view === "heads" ? ` beside ${models[state.compare].label}` : "");
    $("where").textContent = where;
  }

  // ---- heads view: two columns of tokens, a line from each query to each key -------------------
  const ROW = 18, LEFT = 100, RIGHT = 250;
  const focusOf = () => state.hover || state.pinned;
  function lineShown(i, j) {
    if (!data.mask[i]) return false;               // a padded query: computed, but read by nothing
    if (state.hideSpecial && (data.special[i] || data.special[j])) return false;
    const f = focusOf();
    return !f || (f.side === "query" ? f.index === i : f.index === j);
  }
  function drawLines(group, weight, stroke) {    // weight(h, i, j) -> drawn opacity (signed for a difference)
    group.replaceChildren();
    const frag = document.createDocumentFragment();
    for (const h of [...state.heads].sort((a, b) => a - b)) {
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          if (!lineShown(i, j)) continue;
          const w = weight(h, i, j), style = stroke(h, w);
          frag.appendChild(el("svg:line", {
            x1: LEFT + 4, y1: 20 + i * ROW - 4, x2: RIGHT - 4, y2: 20 + j * ROW - 4,
            stroke: style.colour, "stroke-dasharray": style.dash, "stroke-width": 2,
            "stroke-opacity": String(Math.abs(w)), "data-h": h, "data-i": i, "data-j": j, "data-weight": String(w)
          }));
        }
      }
    }
    group.appendChild(frag);
    for (const t of group.parentNode.querySelectorAll(".token")) {
      const f = focusOf();
      t.classList.toggle("active", !!f && f.side === t.dataset.side && f.index === +t.dataset.index);
    }
  }
  function tokenColumn(svg, side, x, anchor) {
    data.tokens.forEach((tok, i) => {
      const t = el("svg:text", {
        x: x, y: 20 + i * ROW, "text-anchor": anchor, tabindex: 0, role: "button", "data-side": side, "data-index": i,
        "aria-label": `${side} ${i}: ${tok}`,
        class: "token" + (data.special[i] ? " special" : "") + (data.mask[i] ? "" : " padding")
      }, tok);
      const enter = () => { state.hover = { side: side, index: i }; redrawLines(); };
      const leave = () => { state.hover = null; redrawLines(); };
      t.addEventListener("mouseenter", enter);
      t.addEventListener("mouseleave", leave);
      t.addEventListener("focus", enter);
      t.addEventListener("blur", leave);
      t.addEventListener("keydown", e => {
        if (e.key !== "Enter" && e.key !== " ") return;
        e.preventDefault();
        const p = state.pinned;
        state.pinned = p && p.side === side && p.index === i ? null : { side: side, index: i };
        redrawLines();
      });
      t.addEventListener("click", () => {
        const p = state.pinned;
        state.pinned = p && p.side === side && p.index === i ? null : { side: side, index: i };
        redrawLines();
      });
      svg.appendChild(t);
    });
  }
  let panels = [];
  function panelSpecs() {
    const a = state.snap, b = state.compare, l = state.layer;
    const headStroke = h => ({ colour: colour(h), dash: dash(h) });
    const specs = [{ id: "panel-a", title: models.length > 1 ? models[a].label : "attention",
                     weight: (h, i, j) => prob(models[a], l, h, i, j), stroke: headStroke }];
    if (b >= 0) {
      specs.push({ id: "panel-b", title: models[b].label, weight: (h, i, j) => prob(models[b], l, h, i, j), stroke: headStroke });
      specs.push({ id: "panel-diff", title: `difference: ${models[a].label} \u2212 ${models[b].label}`,
                   weight: (h, i, j) => prob(models[a], l, h, i, j) - prob(models[b], l, h, i, j),
                   stroke: (h, w) => ({ colour: w >= 0 ? UP : DOWN, dash: w >= 0 ? "" : "4 2" }) });
    }
    return specs;
  }
  function drawHeads() {
    const box = $("panels");
    box.replaceChildren();
    panels = panelSpecs().map(spec => {
      const div = el("div", { class: "panel", id: spec.id });
      div.appendChild(el("h2", {}, spec.title));
      const svg = el("svg:svg", { width: RIGHT + 90, height: 20 + T * ROW, role: "img",
                                  "aria-label": `attention lines of layer ${state.layer + 1}, ${spec.title}` });
      const group = el("svg:g", { class: "lines" });
      svg.appendChild(group);
      tokenColumn(svg, "query", LEFT, "end");
      tokenColumn(svg, "key", RIGHT, "start");
      div.appendChild(svg);
      if (spec.id === "panel-diff") div.appendChild(el("p", { class: "legend" },
        "solid vermillion: the weight grew; dashed blue: it shrank; opacity = the size of the change"));
      box.appendChild(div);
      return { spec: spec, group: group };
    });
    redrawLines();
  }
  function redrawLines() {
    for (const p of panels) drawLines(p.group, p.spec.weight, p.spec.stroke);
  }
  function drawToggles() {
    const box = $("head-toggles");
    box.replaceChildren();
    const all = el("button", { id: "heads-all", "aria-pressed": String(state.heads.size === H) }, "all heads");
    all.addEventListener("click", () => {
      state.heads = state.heads.size === H ? new Set() : new Set([...Array(H).keys()]);
      render();
    });
    box.appendChild(all);
    for (let h = 0; h < H; h++) {
      const b = el("button", { class: "head-toggle", "data-h": h, "aria-pressed": String(state.heads.has(h)),
                               "aria-label": `head ${h + 1}` });
      const swatch = el("svg:svg", { width: 26, height: 10, "aria-hidden": "true" });
      swatch.appendChild(el("svg:line", { x1: 1, y1: 5, x2: 25, y2: 5, stroke: colour(h), "stroke-width": 3,
                                          "stroke-dasharray": dash(h) }));
      b.appendChild(swatch);
      b.appendChild(document.createTextNode(`head ${h + 1}`));
      b.addEventListener("click", () => {
        if (state.heads.has(h)) state.heads.delete(h); else state.heads.add(h);
        render();
      });
      box.appendChild(b);
    }
  }

  // ---- model view: every layer x head as a thumbnail -------------------------------------------
  function drawModel() {
    const box = $("thumbnails"), m = models[state.snap], S = 84;
    box.replaceChildren();
    box.style.gridTemplateColumns = `4.5em repeat(${H}, ${S + 6}px)`;
    box.appendChild(el("span"));
    for (let h = 0; h < H; h++) box.appendChild(el("span", { class: "rowlabel" }, `head ${h + 1}`));
    for (let l = 0; l < L; l++) {
      box.appendChild(el("span", { class: "rowlabel" }, `layer ${l + 1}`));
      for (let h = 0; h < H; h++) {
        const b = el("button", { class: "thumbnail", "data-layer": l, "data-h": h,
                                 "aria-label": `layer ${l + 1}, head ${h + 1}: open in the heads view` });
        const c = el("canvas", { width: S, height: S });
        const g = c.getContext("2d"), y = i => 4 + (T > 1 ? i * (S - 8) / (T - 1) : (S - 8) / 2);
        g.strokeStyle = colour(h);
        g.lineWidth = 1;
        for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
          if (!data.mask[i] || state.hideSpecial && (data.special[i] || data.special[j])) continue;
          g.globalAlpha = prob(m, l, h, i, j);
          g.beginPath(); g.moveTo(10, y(i)); g.lineTo(S - 10, y(j)); g.stroke();
        }
        b.appendChild(c);
        b.addEventListener("click", () => {
          state.layer = l; state.heads = new Set([h]); state.head = h; state.view = "heads";
          render();
          $("tab-heads").focus();
        });
        box.appendChild(b);
      }
    }
  }

  // ---- arithmetic view: one row of attention, number by number ---------------------------------
  function vectorText(v) { return "[" + Array.from(v, fmt).join(", ") + "]"; }
  function drawArithmetic() {
    const m = models[state.snap], l = state.layer, h = state.head, i = state.query, box = $("arithmetic");
    box.replaceChildren();
    const q = vec(m.q, l, h, i);
    box.appendChild(el("p", {}, `q = the query's projection in head ${h + 1} (D = ${D} numbers):`));
    box.appendChild(el("p", { class: "vector", id: "arith-q" }, vectorText(q)));
    const rows = [];
    let best = -Infinity;
    for (let j = 0; j < T; j++) {
      const s = score(m, l, h, i, j), masked = !data.mask[j];
      const total = masked ? -Infinity : s;
      if (total > best) best = total;
      rows.push({ j: j, s: s, masked: masked, total: total });
    }
    let sum = 0;
    for (const r of rows) { r.e = r.masked ? 0 : Math.exp(r.total - best); sum += r.e; }
    const table = el("table", { id: "arith-table" });
    const head = el("tr");
    for (const t of ["j", "key token", "k_j (first 4 of D)", "q\u00b7k_j / \u221aD", "mask", "score",
                     "exp(score \u2212 max)", "softmax = exp / \u03a3", "the model's weight p_j"]) head.appendChild(el("th", {}, t));
    table.appendChild(head);
    for (const r of rows) {
      const p = prob(m, l, h, i, r.j), k = vec(m.k, l, h, r.j);
      const tr = el("tr", { class: r.masked ? "masked" : "", "data-j": r.j });
      const cells = [[String(r.j)], [data.tokens[r.j], "tok"], [vectorText(k.subarray(0, 4)).replace("]", ", \u2026]"), "vector"],
        [fmt(r.s), "score", r.s], [r.masked ? "\u2212\u221e (padding)" : "0", "mask", r.masked ? -Infinity : 0],
        [fmt(r.total), "total", r.total], [fmt(r.e), "exp", r.e], [fmt(r.e / sum), "softmax", r.e / sum], [fmt(p), "prob", p]];
      for (const [text, cls, value] of cells) {
        const td = el("td", cls ? { class: cls } : {}, text);
        if (value !== undefined) td.dataset.value = String(value);
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
    box.appendChild(el("p", {}, `score_j = q\u00b7k_j / \u221a${D} + mask_j (0 for a real token, \u2212\u221e for padding); ` +
      `p_j = exp(score_j \u2212 max) / \u03a3 exp(score \u2212 max), \u03a3 = ${fmt(sum)}. ` +
      `The last column is what the model computed; the one before it is the same softmax done here from the rounded scores.`));
    box.appendChild(table);
    const out = new Float64Array(D);
    for (let j = 0; j < T; j++) {
      const p = prob(m, l, h, i, j), v = vec(m.v, l, h, j);
      for (let d = 0; d < D; d++) out[d] += p * v[d];
    }
    box.appendChild(el("p", {}, `the head's output for this query, \u03a3_j p_j v_j (the model's weights times each key's v), ` +
      `which goes on to the output projection:`));
    const ctx = el("p", { class: "vector", id: "arith-context" }, vectorText(out));
    ctx.dataset.values = JSON.stringify(Array.from(out));
    box.appendChild(ctx);
  }

  // ---- controls and keys --------------------------------------------------------------------
  function fillSelect(select, labels, value) {
    select.replaceChildren(...labels.map((t, i) => el("option", { value: i }, t)));
    select.value = String(value);
  }
  function setup() {
    fillSelect($("layer"), [...Array(L).keys()].map(l => `${l + 1} of ${L}`), state.layer);
    fillSelect($("arith-head"), [...Array(H).keys()].map(h => `head ${h + 1}`), state.head);
    fillSelect($("arith-query"), data.tokens.map((t, i) => `${i}: ${t}`), state.query);
    $("layer").addEventListener("change", e => { state.layer = +e.target.value; render(); });
    $("arith-head").addEventListener("change", e => { state.head = +e.target.value; render(); });
    $("arith-query").addEventListener("change", e => { state.query = +e.target.value; render(); });
    $("hide-special").addEventListener("change", e => { state.hideSpecial = e.target.checked; render(); });
    if (models.length > 1) {
      $("snapshot-controls").hidden = false;
      $("snapshot").max = String(models.length - 1);
      $("snapshot").addEventListener("input", e => { state.snap = +e.target.value; render(); });
      fillSelect($("compare"), ["(none)"].concat(models.map(m => m.label)), 0);
      $("compare").addEventListener("change", e => { state.compare = +e.target.value - 1; render(); });
    }
    for (const b of document.querySelectorAll("[role=tab]")) {
      b.addEventListener("click", () => { state.view = b.dataset.view; render(); });
    }
    document.addEventListener("keydown", e => {
      const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName);
      if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
      const view = { "1": "heads", "2": "model", "3": "arithmetic" }[e.key];
      if (view) { state.view = view; render(); $("tab-" + view).focus(); }
    });
  }
  function render() {
    for (const b of document.querySelectorAll("[role=tab]")) {
      const on = b.dataset.view === state.view;
      b.setAttribute("aria-selected", String(on));
      $("view-" + b.dataset.view).hidden = !on;
    }
    $("layer").value = String(state.layer);
    $("arith-head").value = String(state.head);
    $("arith-query").value = String(state.query);
    if (models.length > 1) {
      $("snapshot").value = String(state.snap);
      $("snapshot-label").textContent = models[state.snap].label;
      $("compare").value = String(state.compare + 1);
    }
    if (state.view === "heads") { drawToggles(); drawHeads(); }
    if (state.view === "model") drawModel();
    if (state.view === "arithmetic") drawArithmetic();
    describe();
    document.body.dataset.ready = "true";
  }
  setup();
  render();
})();
