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
      (row[col.family_name] || "").toLowerCase().includes(family)));
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
  tr.appendChild(el("td", { class: "pattern-class" }, row[col.pattern_class]));
  const family = row[col.family] ? row[col.family] + (row[col.family_name] ? " " + row[col.family_name] : "") : "–";
  tr.appendChild(el("td", { class: "family" }, family + (row[col.family_specific] ? " ✓" : "")));
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

function kvTable(table, pairs) {
  const body = table.tBodies[0] || table.appendChild(el("tbody"));
  for (const [key, value] of pairs) {
    const tr = el("tr");
    tr.appendChild(el("th", {}, key));
    tr.appendChild(el("td", {}, fmt(value, 3)));
    body.appendChild(tr);
  }
}

function rowsTable(sectionId, table, rows) {
  if (!rows || !rows.length) return;
  document.getElementById(sectionId).hidden = false;
  const keys = Object.keys(rows[0]);
  const head = table.appendChild(el("thead")).appendChild(el("tr"));
  for (const key of keys) head.appendChild(el("th", {}, key));
  const body = table.appendChild(el("tbody"));
  for (const row of rows) {
    const tr = body.appendChild(el("tr"));
    for (const key of keys) {
      const td = tr.appendChild(el("td"));
      if (key === "latent_link") td.appendChild(el("a", { href: row[key].href }, row[key].text));
      else td.textContent = fmt(row[key], 3);
    }
  }
}

const SVG = "http" + "://www.w3.org/2000/svg"; // the SVG namespace name, never fetched

function histogram(target, hist) {
  const width = 420, height = 160, pad = 28;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height + pad);
  svg.setAttribute("role", "img");
  const top = Math.max(1, ...hist.in_family, ...hist.other);
  const bins = hist.in_family.length, bw = (width - 2 * pad) / bins;
  const bar = (i, count, kind) => {
    const rect = document.createElementNS(SVG, "rect");
    const h = (count / top) * height;
    rect.setAttribute("x", pad + i * bw);
    rect.setAttribute("y", height - h);
    rect.setAttribute("width", bw - 1);
    rect.setAttribute("height", h);
    rect.setAttribute("class", "bar " + kind);
    rect.setAttribute("data-count", count);
    rect.setAttribute("fill", kind === "in-family" ? "rgba(31,119,180,0.6)" : "none");
    rect.setAttribute("stroke", kind === "in-family" ? "none" : "#333");
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${kind} ${hist.edges[i]}–${hist.edges[i + 1]}: ${count}`;
    rect.appendChild(title);
    svg.appendChild(rect);
  };
  hist.in_family.forEach((c, i) => bar(i, c, "in-family"));
  hist.other.forEach((c, i) => bar(i, c, "other"));
  for (const [x, label, anchor] of [[pad, "0", "start"], [width - pad, "1 × max", "end"], [2, String(top), "start"]]) {
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("x", x);
    text.setAttribute("y", label === String(top) ? 10 : height + 16);
    text.setAttribute("text-anchor", anchor);
    text.textContent = label;
    svg.appendChild(text);
  }
  target.appendChild(svg);
}

function alignmentRow(seq, maxAct) {
  const row = el("div", { class: "msa-row", "data-id": seq.id });
  row.appendChild(el("span", { class: "msa-id", title: `${seq.split} split, max ${fmt(seq.max_act, 3)}` }, seq.id));
  const values = new Map(seq.positions.map((p, i) => [p, seq.values[i]]));
  const track = el("span", { class: "msa-seq" });
  let residue = 0;
  for (const letter of seq.aligned) {
    if (letter === "-") { track.appendChild(el("span", { class: "res gap" }, "-")); continue; }
    const value = values.get(residue) || 0;
    const span = el("span", { class: value > 0 ? "res act" : "res", title: `${letter}${residue + 1}: ${fmt(value, 3)}` }, letter);
    if (value > 0) {
      const alpha = Math.min(1, value / (maxAct || value));
      span.style.backgroundColor = `rgba(214, 39, 40, ${(0.15 + 0.85 * alpha).toFixed(3)})`;
      span.dataset.value = String(value);
    }
    track.appendChild(span);
    residue += 1;
  }
  row.appendChild(track);
  return row;
}

function latentNav(data) {
  const nav = document.getElementById("nav");
  if (data.latent > 0) nav.appendChild(el("a", { href: latentHref(data.sae, data.latent - 1), rel: "prev" }, ` · ‹ latent ${data.latent - 1}`));
  if (data.latent + 1 < data.width) nav.appendChild(el("a", { href: latentHref(data.sae, data.latent + 1), rel: "next" }, ` · latent ${data.latent + 1} ›`));
  nav.appendChild(el("a", { href: "index.html#" + new URLSearchParams({ sae: data.sae }).toString() }, ` · all latents of ${data.sae}`));
}

window.protsaeLatent = function (data) {
  document.title = `${data.sae} latent ${data.latent} · protsae feature browser`;
  document.getElementById("title").textContent = `${data.sae} · latent ${data.latent}`;
  const family = data.family ? `${data.family}${data.family_name ? " (" + data.family_name + ")" : ""}` : "no family tested";
  document.getElementById("summary").textContent =
    `${data.pattern_class} · ${family}${data.family_specific ? " · family-specific" : ""} · max activation ${fmt(data.max_act, 3)} on ${data.n_active_sequences} sequences`;
  latentNav(data);
  const stats = document.getElementById("stats");
  kvTable(stats, [["pattern class", data.pattern_class], ["family", data.family], ["family name", data.family_name],
    ["family-specific", data.family_specific], ["max activation", data.max_act], ["active sequences (both splits)", data.n_active_sequences]]);
  kvTable(stats, Object.entries(data.family_stats));
  kvTable(stats, Object.entries(data.class_stats));
  histogram(document.getElementById("histogram"), data.histogram);
  const msa = document.getElementById("msa");
  if (!data.sequences.length) msa.textContent = "No evaluation sequence activates this latent.";
  for (const seq of data.sequences) msa.appendChild(alignmentRow(seq, data.max_act));
  rowsTable("probes-section", document.getElementById("probes"), data.probes);
  rowsTable("steering-section", document.getElementById("steering"), data.steering);
  setStatus("");
};

function loadLatent() {
  const state = hashState();
  if (!/^[A-Za-z0-9_-]+$/.test(state.sae || "") || !/^[0-9]+$/.test(state.latent || "")) {
    setStatus("No latent named in the address (expected latent.html#sae=…&latent=…).");
    return;
  }
  const script = el("script", { src: `data/${state.sae}/${state.latent}.js` });
  script.onerror = () => setStatus(`No data for latent ${state.latent} of ${state.sae}.`);
  document.body.appendChild(script);
  window.addEventListener("hashchange", () => window.location.reload());
}

if (document.body.dataset.page === "latent") loadLatent();
