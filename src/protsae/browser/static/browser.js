// protsae feature browser: renders the index and latent pages from data/*.js files that call
// protsaeIndex(...) / protsaeLatent(...). Works from file:// (no fetch, no network). Every
// value from the data is inserted as text (textContent / attributes), never as HTML.
"use strict";

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number" && !Number.isInteger(value)) return value.toPrecision(digits || 3);
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

function hashState() {
  return Object.fromEntries(new URLSearchParams(window.location.hash.slice(1)));
}

function setStatus(text) {
  const status = document.getElementById("status");
  status.textContent = text || "";
  status.className = text ? "" : "ok";
}

// Plain links to the public databases (followed only when clicked; nothing is loaded from them).
const ACCESSION = /^([OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9]([A-Z][A-Z0-9]{2}[0-9]){1,2})$/;
const UNIPROT = "https" + "://www.uniprot.org/uniprotkb/";
const INTERPRO = "https" + "://www.ebi.ac.uk/interpro/entry/InterPro/";

function sequenceLink(id) {
  if (!ACCESSION.test(id)) return el("span", { class: "seq-id" }, id);
  return el("a", { href: UNIPROT + encodeURIComponent(id) + "/entry", class: "uniprot", title: "UniProt entry " + id }, id);
}

function familyLink(family) {
  if (!/^IPR[0-9]{6}$/.test(family)) return el("span", {}, family);
  return el("a", { href: INTERPRO + family + "/", class: "interpro", title: "InterPro entry " + family }, family);
}

const CLASS_HELP = {
  dead: "never active on the evaluation sequences",
  not_enough_data: "active on too few sequences to classify",
  periodic: "fires at regular spacings along a sequence (e.g. helix turns)",
  point: "fires on one residue of a sequence",
  motif_short: "fires on a short contiguous stretch (a motif)",
  motif_medium: "fires on a stretch of medium length",
  motif_long: "fires on a long stretch (a domain)",
  whole: "fires across most of the sequence",
  other: "none of the patterns above",
};

function latentHref(sae, latent) {
  return "latent.html#" + new URLSearchParams({ sae: sae, latent: String(latent) }).toString();
}

// ---- index page -------------------------------------------------------------------------

const INDEX = { data: null, state: {} };

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1; // missing values sort last
  if (b === null || b === undefined) return -1;
  return a < b ? -1 : 1;
}

function matchingRows() {
  const { data, state } = INDEX;
  const col = Object.fromEntries(data.columns.map((name, i) => [name, i]));
  const family = (state.family || "").toLowerCase();
  let rows = data.rows.filter((row) =>
    (!state.sae || data.saes[row[col.sae]].name === state.sae) &&
    (!state.class || row[col.pattern_class] === state.class) &&
    (!state.specific || row[col.family_specific]) &&
    (!family || (row[col.family] || "").toLowerCase().includes(family) ||
      (row[col.family_name] || "").toLowerCase().includes(family) ||
      (row[col.description] || "").toLowerCase().includes(family)));
  const key = state.sort && state.sort in col ? col[state.sort] : null;
  if (key !== null) {
    const sign = state.desc === "1" ? -1 : 1;
    rows = rows.slice().sort((a, b) =>
      (a[key] === null || b[key] === null ? compare(a[key], b[key]) : sign * compare(a[key], b[key])) ||
      compare(a[col.sae], b[col.sae]) || compare(a[col.latent], b[col.latent]));
  }
  return rows;
}

function indexRow(row, col) {
  const sae = INDEX.data.saes[row[col.sae]].name;
  const tr = el("tr", { "data-latent": row[col.latent], "data-sae": sae });
  tr.appendChild(el("td", {}, sae));
  const cell = el("td", { class: "num" });
  cell.appendChild(el("a", { href: latentHref(sae, row[col.latent]) }, row[col.latent]));
  tr.appendChild(cell);
  tr.appendChild(el("td", { class: "description" }, row[col.description] || ""));
  tr.appendChild(el("td", { class: "pattern-class", title: CLASS_HELP[row[col.pattern_class]] || "" }, row[col.pattern_class]));
  const familyCell = el("td", { class: "family" });
  if (row[col.family]) {
    familyCell.appendChild(familyLink(row[col.family]));
    if (row[col.family_name]) familyCell.appendChild(document.createTextNode(" " + row[col.family_name]));
    if (row[col.family_specific]) familyCell.appendChild(el("span", { title: "family-specific: F1 at or above the threshold" }, " ✓"));
  } else familyCell.textContent = "–";
  tr.appendChild(familyCell);
  tr.appendChild(el("td", { class: "num" }, fmt(row[col.f1], 2)));
  tr.appendChild(el("td", { class: "num" }, fmt(row[col.max_act], 3)));
  tr.appendChild(el("td", { class: "num" }, row[col.n_active_sequences]));
  return tr;
}

function renderIndex() {
  const { data, state } = INDEX;
  const col = Object.fromEntries(data.columns.map((name, i) => [name, i]));
  const rows = matchingRows();
  const size = state.size === "all" ? Math.max(rows.length, 1) : parseInt(state.size || "100", 10) || 100;
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const page = Math.min(Math.max(1, parseInt(state.page || "1", 10) || 1), pages);
  const body = document.querySelector("#latents tbody");
  const fragment = document.createDocumentFragment();
  for (const row of rows.slice((page - 1) * size, page * size)) fragment.appendChild(indexRow(row, col));
  body.replaceChildren(fragment);
  document.getElementById("count").textContent = String(rows.length);
  document.getElementById("page").textContent = String(page);
  document.getElementById("pages").textContent = String(pages);
  document.getElementById("prev").disabled = page <= 1;
  document.getElementById("next").disabled = page >= pages;
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.classList.toggle("sorted-asc", th.dataset.sort === state.sort && state.desc !== "1");
    th.classList.toggle("sorted-desc", th.dataset.sort === state.sort && state.desc === "1");
  }
  document.getElementById("f-sae").value = state.sae || "";
  document.getElementById("f-class").value = state.class || "";
  document.getElementById("f-family").value = state.family || "";
  document.getElementById("f-specific").checked = Boolean(state.specific);
  document.getElementById("f-size").value = state.size || "100";
}

function updateIndex(changes) {
  const state = Object.assign({}, INDEX.state, changes);
  for (const key of Object.keys(state)) if (state[key] === "" || state[key] === null) delete state[key];
  INDEX.state = state;
  renderIndex();
  const hash = new URLSearchParams(state).toString();
  if (window.location.hash.slice(1) !== hash) window.location.hash = hash;
}

function bindIndexControls() {
  const on = (id, event, make) =>
    document.getElementById(id).addEventListener(event, (e) => updateIndex(Object.assign({ page: "" }, make(e.target))));
  on("f-sae", "change", (t) => ({ sae: t.value }));
  on("f-class", "change", (t) => ({ class: t.value }));
  on("f-family", "input", (t) => ({ family: t.value }));
  on("f-specific", "change", (t) => ({ specific: t.checked ? "1" : "" }));
  on("f-size", "change", (t) => ({ size: t.value }));
  const step = (delta) => () => updateIndex({ page: String((parseInt(INDEX.state.page || "1", 10) || 1) + delta) });
  document.getElementById("prev").addEventListener("click", step(-1));
  document.getElementById("next").addEventListener("click", step(1));
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      const same = INDEX.state.sort === th.dataset.sort;
      updateIndex({ sort: th.dataset.sort, desc: same && INDEX.state.desc !== "1" ? "1" : "", page: "" });
    });
  }
  window.addEventListener("hashchange", () => { INDEX.state = hashState(); renderIndex(); });
}

window.protsaeIndex = function (data) {
  INDEX.data = data;
  INDEX.state = hashState();
  const saeSelect = document.getElementById("f-sae");
  for (const sae of data.saes) saeSelect.appendChild(el("option", { value: sae.name }, sae.label));
  const classSelect = document.getElementById("f-class");
  for (const name of data.classes) classSelect.appendChild(el("option", { value: name }, name));
  if (data.title) document.getElementById("subtitle").prepend(el("strong", {}, data.title + ". "));
  bindIndexControls();
  renderIndex();
  setStatus("");
};

// ---- latent page ------------------------------------------------------------------------

// Human labels and one-line explanations of every statistic a latent page shows.
const STATS = {
  pattern_class: ["Activation pattern", "how the latent fires along a sequence (hover the class for its meaning)"],
  family: ["InterPro family tested", "the family whose members best match the sequences the latent fires on"],
  family_name: ["Family name", "InterPro's name of that family"],
  family_specific: ["Family-specific", "yes when the F1 below reaches the threshold of the method"],
  max_act: ["Largest activation", "the latent's highest value on any evaluation residue"],
  n_active_sequences: ["Active sequences", "evaluation sequences (both splits) with at least one active residue"],
  f1: ["F1 (test split)", "how well “activation above the threshold” picks out the family's members, on held-out sequences"],
  precision: ["Precision", "share of the sequences above the threshold that are family members"],
  recall: ["Recall", "share of the family's members that are above the threshold"],
  threshold: ["Activation threshold", "fraction of the latent's largest activation chosen on the training split"],
  train_f1: ["F1 (training split)", "the same F1 on the split the threshold was chosen on"],
  n_train_positive: ["Members (training)", "family members among the training sequences"],
  n_test_positive: ["Members (test)", "family members among the held-out test sequences"],
  n_sequences: ["Sequences classified", "active sequences the pattern class was decided on"],
  n_top: ["Top sequences used", "strongest sequences whose activation profiles decided the class"],
  median_top_region_length: ["Typical active stretch", "median length (residues) of the strongest contiguous active region"],
  mean_coverage: ["Coverage", "average share of a sequence's residues on which the latent is active"],
  mean_activations: ["Active residues per sequence", "average number of active residues in a top sequence"],
  periodic_fraction: ["Periodic share", "share of top sequences whose active residues repeat at a fixed spacing"],
  density: ["Density", "active residues per sequence, on average"],
  top_distances: ["Common spacings", "the two most common distances (residues) between the starts of active regions"],
  multiplier: ["Multiplier", "the latent clamped to this multiple of its largest activation"],
  bin_low: ["Conservation from", "lower edge of the conservation bin of the alignment columns"],
  bin_high: ["Conservation to", "upper edge of that bin"],
  n_positions: ["Positions", "residues in that bin"],
  fraction_unchanged: ["Unchanged when steered", "share of residues where steered ESM-2 still predicts the original residue"],
  fraction_baseline_unchanged: ["Unchanged without steering", "the same share for unsteered ESM-2 (the baseline)"],
  kept: ["Kept", "whether the latent passed the steering filter of the method"],
  skip_reason: ["Skipped because", "why the latent was not steered"],
  task: ["Probe task", "the prediction task of the linear probe"],
  output: ["Output", "the class (or value) the coefficient is for"],
  sign: ["Sign", "positive: the latent raises that output; negative: lowers it"],
  rank: ["Rank", "the latent's rank among the probe's largest coefficients"],
  coefficient: ["Coefficient", "the probe's weight on this latent"],
};

function label(key) { return (STATS[key] || [key.replace(/_/g, " ")])[0]; }
function explain(key) { return (STATS[key] || [null, ""])[1]; }

function kvTable(table, pairs) {
  const body = table.tBodies[0] || table.appendChild(el("tbody"));
  for (const [key, value] of pairs) {
    const tr = el("tr", { "data-key": key });
    tr.appendChild(el("th", { title: explain(key) }, label(key)));
    const td = tr.appendChild(el("td", {}));
    if (key === "family" && value) td.appendChild(familyLink(value));
    else td.textContent = fmt(value, 3);
    tr.appendChild(el("td", { class: "explain" }, explain(key)));
    body.appendChild(tr);
  }
}

function rowsTable(sectionId, table, rows) {
  if (!rows || !rows.length) return;
  document.getElementById(sectionId).hidden = false;
  const keys = Object.keys(rows[0]);
  const head = table.appendChild(el("thead")).appendChild(el("tr"));
  for (const key of keys) head.appendChild(el("th", { title: explain(key), "data-key": key }, label(key)));
  const body = table.appendChild(el("tbody"));
  for (const row of rows) {
    const tr = body.appendChild(el("tr"));
    for (const key of keys) tr.appendChild(el("td", {}, fmt(row[key], 3)));
  }
}

const SVG = "http" + "://www.w3.org/2000/svg"; // the SVG namespace name, never fetched

function svgText(svg, x, y, text, attrs) {
  const node = document.createElementNS(SVG, "text");
  node.setAttribute("x", x);
  node.setAttribute("y", y);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  node.textContent = text;
  svg.appendChild(node);
  return node;
}

function histogram(target, hist) {
  const width = 460, height = 160, left = 48, right = 12, bottom = 40;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height + bottom);
  svg.setAttribute("role", "img");
  const top = Math.max(1, ...hist.in_family, ...hist.other);
  const bins = hist.in_family.length, bw = (width - left - right) / bins;
  const bar = (i, count, kind) => {
    const rect = document.createElementNS(SVG, "rect");
    const h = (count / top) * (height - 8);
    rect.setAttribute("x", left + i * bw);
    rect.setAttribute("y", height - h);
    rect.setAttribute("width", bw - 1);
    rect.setAttribute("height", h);
    rect.setAttribute("class", "bar " + kind);
    rect.setAttribute("data-count", count);
    rect.setAttribute("fill", kind === "in-family" ? "rgba(31,119,180,0.6)" : "none");
    rect.setAttribute("stroke", kind === "in-family" ? "none" : "#333");
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${kind} ${hist.edges[i]}–${hist.edges[i + 1]} × max: ${count} sequences`;
    rect.appendChild(title);
    svg.appendChild(rect);
  };
  hist.in_family.forEach((c, i) => bar(i, c, "in-family"));
  hist.other.forEach((c, i) => bar(i, c, "other"));
  const axis = document.createElementNS(SVG, "path");
  axis.setAttribute("d", `M${left},0 V${height} H${width - right}`);
  axis.setAttribute("stroke", "#333");
  axis.setAttribute("fill", "none");
  svg.appendChild(axis);
  svgText(svg, left, height + 14, "0", { "text-anchor": "middle" });
  svgText(svg, (left + width - right) / 2, height + 14, "0.5", { "text-anchor": "middle" });
  svgText(svg, width - right, height + 14, "1", { "text-anchor": "end" });
  svgText(svg, left - 4, 10, String(top), { "text-anchor": "end" });
  svgText(svg, left - 4, height, "0", { "text-anchor": "end" });
  svgText(svg, (left + width - right) / 2, height + 32, "sequence's largest activation ÷ latent's largest", { "text-anchor": "middle", class: "axis-label x" });
  svgText(svg, 12, height / 2, "sequences", { "text-anchor": "middle", class: "axis-label y", transform: `rotate(-90 12 ${height / 2})` });
  target.appendChild(svg);
}

// ---- sequences: residues coloured by activation, annotation tracks, position ruler -------

function shade(value, maxAct) {
  const alpha = Math.min(1, value / (maxAct || value));
  return `rgba(214, 39, 40, ${(0.15 + 0.85 * alpha).toFixed(3)})`;
}

function residueCells(track, letters, values, maxAct, peak) {
  let residue = 0;
  for (const letter of letters) {
    if (letter === "-") { track.appendChild(el("span", { class: "res gap" }, "-")); continue; }
    const value = values.get(residue) || 0;
    const isPeak = residue === peak;
    const span = el("span", {
      class: "res" + (value > 0 ? " act" : "") + (isPeak ? " peak" : ""),
      title: `${letter}${residue + 1}: ${fmt(value, 3)}${isPeak ? " (peak)" : ""}`,
    }, letter);
    if (value > 0) {
      span.style.backgroundColor = shade(value, maxAct);
      span.dataset.value = String(value);
    }
    track.appendChild(span);
    residue += 1;
  }
}

const PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
const TRACK_COLOURS = new Map();
function trackColour(name) {
  if (!TRACK_COLOURS.has(name)) TRACK_COLOURS.set(name, PALETTE[TRACK_COLOURS.size % PALETTE.length]);
  return TRACK_COLOURS.get(name);
}

function trackRows(seq) {
  // one row per annotation label, cells on the alignment's columns (1-based inclusive ranges)
  const columns = [];
  [...seq.aligned].forEach((letter, i) => { if (letter !== "-") columns.push(i); });
  const byLabel = new Map();
  for (const f of seq.features || []) {
    if (!byLabel.has(f.label)) byLabel.set(f.label, []);
    byLabel.get(f.label).push(f);
  }
  const rows = [];
  for (const [name, features] of byLabel) {
    const row = el("div", { class: "msa-row track-row", "data-track": name });
    row.appendChild(el("span", { class: "msa-id track-name", title: features[0].type }, name));
    const cells = el("span", { class: "msa-seq" });
    const covered = new Array(seq.aligned.length).fill(null);
    for (const f of features) {
      for (let p = f.start; p <= f.end && p <= columns.length; p++) covered[columns[p - 1]] = f;
    }
    covered.forEach((f) => {
      const cell = el("span", { class: f ? "res track on" : "res track" }, f ? " " : " ");
      if (f) {
        cell.style.backgroundColor = trackColour(name);
        cell.title = `${name} (${f.type}) ${f.start}–${f.end}`;
      }
      cells.appendChild(cell);
    });
    row.appendChild(cells);
    rows.push(row);
  }
  return rows;
}

function rulerRow(length) {
  const row = el("div", { class: "msa-row ruler" });
  row.appendChild(el("span", { class: "msa-id" }, "column"));
  const cells = el("span", { class: "msa-seq" });
  for (let i = 1; i <= length; i++) {
    const tick = i % 10 === 0;
    cells.appendChild(el("span", { class: tick ? "res tick" : "res", "data-column": i }, tick ? "|" : (i % 5 === 0 ? "·" : " ")));
  }
  row.appendChild(cells);
  const numbers = el("div", { class: "msa-row ruler-numbers" });
  numbers.appendChild(el("span", { class: "msa-id" }, ""));
  const nums = el("span", { class: "msa-seq" });
  for (let i = 10; i <= length; i += 10) nums.appendChild(el("span", { class: "num-tick", style: `left: ${(i - 1) * 8}px` }, String(i)));
  numbers.appendChild(nums);
  return [numbers, row];
}

function alignmentRow(seq, maxAct) {
  const row = el("div", { class: "msa-row", "data-id": seq.id });
  const name = el("span", { class: "msa-id", title: `${seq.split} split, max ${fmt(seq.max_act, 3)}` });
  name.appendChild(sequenceLink(seq.id));
  row.appendChild(name);
  const track = el("span", { class: "msa-seq" });
  residueCells(track, seq.aligned, new Map(seq.positions.map((p, i) => [p, seq.values[i]])), maxAct, -1);
  row.appendChild(track);
  return row;
}

function drawAlignment(data) {
  const msa = document.getElementById("msa");
  if (!data.sequences.length) { msa.textContent = "No evaluation sequence activates this latent."; return; }
  for (const node of rulerRow(data.sequences[0].aligned.length)) msa.appendChild(node);
  for (const seq of data.sequences) {
    msa.appendChild(alignmentRow(seq, data.max_act));
    for (const track of trackRows(seq)) msa.appendChild(track);
  }
  const legend = document.getElementById("track-legend");
  if (!TRACK_COLOURS.size) {
    legend.textContent = "No residue annotations (Swiss-Prot features) on these sequences.";
    return;
  }
  legend.appendChild(el("span", {}, "Annotation tracks: "));
  for (const [name, colour] of TRACK_COLOURS) {
    const item = el("span", { class: "legend-item", "data-track": name });
    const swatch = el("span", { class: "swatch" }, " ");
    swatch.style.backgroundColor = colour;
    item.append(swatch, document.createTextNode(" " + name));
    legend.appendChild(item);
  }
}

// ---- examples across the activation range and the residues at the peaks ----------------

function drawQuantiles(data) {
  const target = document.getElementById("quantiles");
  const bins = data.quantiles || [];
  if (!bins.length) { target.textContent = "No active sequences beyond the top ones."; return; }
  for (const bin of bins) {
    const section = el("div", { class: "quantile", "data-label": bin.label });
    section.appendChild(el("h3", {}, `Sequences ranked ${bin.label} by activation · largest activation ${fmt(bin.low, 3)}–${fmt(bin.high, 3)} · ${bin.n} sequences`));
    const box = section.appendChild(el("div", { class: "msa" }));
    for (const ex of bin.examples) {
      const row = el("div", { class: "msa-row", "data-id": ex.id });
      const name = el("span", { class: "msa-id", title: `${ex.split} split, ${ex.n_active} active residues, peak at ${ex.argmax + 1}` });
      name.appendChild(sequenceLink(ex.id));
      name.appendChild(document.createTextNode(` ${fmt(ex.max_act, 3)}`));
      row.appendChild(name);
      const track = el("span", { class: "msa-seq" });
      const values = ex.positions ? new Map(ex.positions.map((p, i) => [p, ex.values[i]])) : new Map([[ex.argmax, ex.max_act]]);
      residueCells(track, ex.sequence, values, data.max_act, ex.argmax);
      row.appendChild(track);
      box.appendChild(row);
    }
    target.appendChild(section);
  }
}

function drawEnrichment(data) {
  const target = document.getElementById("enrichment");
  const info = data.enrichment;
  if (!info || !info.residues.length) { target.textContent = "No peaks to count."; return; }
  document.getElementById("enrichment-note").textContent =
    `The residue at the peak (largest activation) of each of the ${info.n_peaks} active sequences, against how common that residue is in those sequences.`;
  const head = target.appendChild(el("thead")).appendChild(el("tr"));
  for (const name of ["amino acid", "peaks", "share of peaks", "share in the sequences", "log2 enrichment"]) head.appendChild(el("th", {}, name));
  const body = target.appendChild(el("tbody"));
  for (const r of info.residues) {
    const tr = body.appendChild(el("tr", { "data-aa": r.aa }));
    tr.appendChild(el("td", { class: "aa" }, r.aa));
    tr.appendChild(el("td", { class: "num" }, r.peaks));
    tr.appendChild(el("td", { class: "num" }, fmt(r.fraction, 2)));
    tr.appendChild(el("td", { class: "num" }, fmt(r.background, 2)));
    tr.appendChild(el("td", { class: "num" }, fmt(r.log2_enrichment, 2)));
  }
}

// ---- steering: steered sequences against the original and the family consensus ----------

function steeredRow(name, text, original, consensus, kind) {
  const row = el("div", { class: "msa-row steer-" + kind, "data-row": name });
  row.appendChild(el("span", { class: "msa-id" }, name));
  const cells = el("span", { class: "msa-seq" });
  [...text].forEach((letter, i) => {
    let cls = "res";
    let title = `${letter}${i + 1}`;
    if (kind === "steered" && letter !== original[i]) {
      const toConsensus = letter === consensus[i];
      cls += toConsensus ? " changed to-consensus" : " changed";
      title += ` (original ${original[i]}, consensus ${consensus[i]})`;
    }
    cells.appendChild(el("span", { class: cls, title }, letter));
  });
  row.appendChild(cells);
  return row;
}

function drawSteering(data) {
  const steered = data.steered || [];
  rowsTable("steering-section", document.getElementById("steering"), data.steering);
  if (!steered.length) return;
  document.getElementById("steering-section").hidden = false;
  const target = document.getElementById("steered");
  for (const ex of steered) {
    const box = el("div", { class: "msa steered", "data-id": ex.id });
    const title = el("p", {}, "Sequence ");
    title.appendChild(sequenceLink(ex.id));
    target.appendChild(title);
    box.appendChild(steeredRow("original", ex.original, ex.original, ex.consensus, "original"));
    box.appendChild(steeredRow("family consensus", ex.consensus, ex.original, ex.consensus, "consensus"));
    box.appendChild(steeredRow("ESM-2, unsteered", ex.baseline, ex.original, ex.consensus, "steered"));
    for (const s of ex.steered) box.appendChild(steeredRow(`× ${s.multiplier}`, s.sequence, ex.original, ex.consensus, "steered"));
    target.appendChild(box);
  }
}

// ---- the 3D structure, coloured by activation (3Dmol.js, loaded from assets/) -----------

const VIEWER = { data: null, viewer: null };

function activationColour(value, maxAct) {
  const t = Math.max(0, Math.min(1, (value || 0) / (maxAct || 1)));
  const mix = (a, b) => Math.round(a + (b - a) * t);
  return "#" + [mix(255, 214), mix(255, 39), mix(255, 40)].map((c) => c.toString(16).padStart(2, "0")).join("");
}

function drawStructurePicker(data) {
  const section = document.getElementById("structure-section");
  const picker = document.getElementById("structure-pick");
  const note = document.getElementById("structure-note");
  const usable = data.sequences.filter((s) => s.structure && s.structure.status === "ok");
  const lacking = data.sequences.filter((s) => s.structure && s.structure.status !== "ok");
  if (!usable.length && !lacking.length) return; // no structure stage for this browser
  section.hidden = false;
  for (const seq of lacking) {
    const line = el("li", { "data-id": seq.id }, `${seq.id}: no structure (${seq.structure.reason || seq.structure.status})`);
    document.getElementById("structure-missing").appendChild(line);
  }
  if (!usable.length) { note.textContent = "No structure for any top sequence."; return; }
  for (const seq of usable) picker.appendChild(el("option", { value: seq.id }, `${seq.id} (max ${fmt(seq.max_act, 3)})`));
  picker.addEventListener("change", () => loadStructure(data, picker.value));
  const lib = el("script", { src: "assets/3Dmol-min.js" });
  lib.onload = () => loadStructure(data, usable[0].id);
  lib.onerror = () => { note.textContent = "The 3D viewer (assets/3Dmol-min.js) is missing from this browser."; };
  document.body.appendChild(lib);
}

function loadStructure(data, id) {
  const seq = data.sequences.find((s) => s.id === id);
  VIEWER.data = { latent: data, seq };
  const script = el("script", { src: `${data.sae}/${seq.structure.file}` });
  script.onerror = () => { document.getElementById("structure-note").textContent = `Structure file of ${id} missing.`; };
  document.body.appendChild(script);
}

window.protsaeStructure = function (structure) {
  const { latent, seq } = VIEWER.data;
  if (structure.accession !== seq.id) return;
  const box = document.getElementById("viewer");
  box.replaceChildren();
  const viewer = window.$3Dmol.createViewer(box, { backgroundColor: "white" });
  const model = viewer.addModel(structure.text, structure.format === "cif" ? "cif" : "pdb");
  const values = new Map(seq.positions.map((p, i) => [p, seq.values[i]]));
  // residues in file order = Swiss-Prot positions (the structure stage checked the sequence)
  const chains = new Map();
  for (const atom of model.selectedAtoms({ atom: "CA", hetflag: false })) {
    if (!chains.has(atom.chain)) chains.set(atom.chain, []);
    chains.get(atom.chain).push(atom);
  }
  const sequenceOf = (atoms) => atoms.map((a) => ONE_LETTER[a.resn] || "X").join("");
  const wanted = seq.aligned.replace(/-/g, "");
  const [chain, cas] = [...chains].find(([, atoms]) => sequenceOf(atoms) === wanted) || [...chains][0];
  const position = new Map(cas.map((a, i) => [`${a.resi}${a.icode || ""}`, i]));
  const where = (atom) => (atom.chain === chain ? position.get(`${atom.resi}${atom.icode || ""}`) : undefined);
  const colour = (atom) => activationColour(values.get(where(atom)) || 0, latent.max_act);
  viewer.setStyle({}, { cartoon: { colorfunc: colour } });
  viewer.setHoverable({}, true, (atom) => {
    const p = where(atom);
    if (p === undefined) return;
    document.getElementById("viewer-hover").textContent =
      `${atom.resn} ${p + 1} (${ONE_LETTER[atom.resn] || "?"}): activation ${fmt(values.get(p) || 0, 3)}`;
  }, () => {});
  viewer.zoomTo();
  viewer.render();
  VIEWER.viewer = viewer;
  const applied = cas.map((a, i) => ({ position: i, resn: a.resn, value: values.get(i) || 0, colour: colour(a) }));
  const record = document.getElementById("viewer-data");
  record.textContent = JSON.stringify({ accession: seq.id, max_act: latent.max_act, residues: applied });
  box.dataset.rendered = seq.id;
  document.getElementById("structure-note").textContent =
    `${seq.id}: residues coloured from white (0) to red (the latent's largest activation, ${fmt(latent.max_act, 3)}). Hover a residue for its position and value.`;
};

const ONE_LETTER = {
  ALA: "A", ARG: "R", ASN: "N", ASP: "D", CYS: "C", GLN: "Q", GLU: "E", GLY: "G", HIS: "H", ILE: "I",
  LEU: "L", LYS: "K", MET: "M", PHE: "F", PRO: "P", SER: "S", THR: "T", TRP: "W", TYR: "Y", VAL: "V",
};

function latentNav(data) {
  const nav = document.getElementById("nav");
  if (data.latent > 0) nav.appendChild(el("a", { href: latentHref(data.sae, data.latent - 1), rel: "prev" }, ` · ‹ latent ${data.latent - 1}`));
  if (data.latent + 1 < data.width) nav.appendChild(el("a", { href: latentHref(data.sae, data.latent + 1), rel: "next" }, ` · latent ${data.latent + 1} ›`));
  nav.appendChild(el("a", { href: "index.html#" + new URLSearchParams({ sae: data.sae }).toString() }, ` · all latents of ${data.sae}`));
}

window.protsaeLatent = function (data) {
  document.title = `${data.sae} latent ${data.latent} · protsae feature browser`;
  document.getElementById("title").textContent = `${data.sae} · latent ${data.latent}`;
  document.getElementById("description").textContent = data.description || "";
  const summary = document.getElementById("summary");
  summary.append(el("span", { title: CLASS_HELP[data.pattern_class] || "" }, data.pattern_class), " · ");
  if (data.family) {
    summary.appendChild(familyLink(data.family));
    if (data.family_name) summary.append(` (${data.family_name})`);
  } else summary.append("no family tested");
  summary.append(`${data.family_specific ? " · family-specific" : ""} · largest activation ${fmt(data.max_act, 3)} on ${data.n_active_sequences} sequences`);
  latentNav(data);
  const stats = document.getElementById("stats");
  kvTable(stats, [["pattern_class", data.pattern_class], ["family", data.family], ["family_name", data.family_name],
    ["family_specific", data.family_specific], ["max_act", data.max_act], ["n_active_sequences", data.n_active_sequences]]);
  kvTable(stats, Object.entries(data.family_stats));
  kvTable(stats, Object.entries(data.class_stats));
  histogram(document.getElementById("histogram"), data.histogram);
  drawAlignment(data);
  drawStructurePicker(data);
  drawEnrichment(data);
  drawQuantiles(data);
  rowsTable("probes-section", document.getElementById("probes"), data.probes);
  drawSteering(data);
  setStatus("");
};

function loadLatent() {
  const state = hashState();
  if (!/^[A-Za-z0-9_-]+$/.test(state.sae || "") || !/^[0-9]+$/.test(state.latent || "")) {
    setStatus("No latent named in the address (expected latent.html#sae=…&latent=…).");
    return;
  }
  const script = el("script", { src: `${state.sae}/${state.latent}.js` });
  script.onerror = () => setStatus(`No data for latent ${state.latent} of ${state.sae}.`);
  document.body.appendChild(script);
  window.addEventListener("hashchange", () => window.location.reload());
}

if (document.body.dataset.page === "latent") loadLatent();
