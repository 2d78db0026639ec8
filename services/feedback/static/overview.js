// The overview page of `lift feedback serve`: coverage, annotators and throughput, agreement
// (Fleiss' κ per dimension, Cohen's κ per annotator pair) and the flags. Server text only ever
// goes through textContent.
"use strict";

(function () {
  const DIMENSIONS = [
    ["semantic_consistency", "semantic consistency"],
    ["motion_smoothness", "motion smoothness"],
    ["video_fidelity", "video fidelity"],
  ];
  const TOKEN_KEY = "lift.feedback.admin";
  const $ = (id) => document.getElementById(id);
  const state = { auth: null, token: null };

  const { showStatus, request, tokensOn } = window.LiftFeedback;

  function api(path) {
    const headers = {};
    if (state.auth && state.token) headers.Authorization = "Bearer " + state.token;
    return request("GET", path, headers);
  }

  function kappaText(k) {
    return typeof k === "number" && Number.isFinite(k) ? k.toFixed(3) : "n/a";
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function clear(tbody) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
  }

  function emptyRow(tbody, columns, text) {
    const tr = document.createElement("tr");
    const td = cell(tr, text, "empty");
    td.colSpan = columns;
    tbody.appendChild(tr);
  }

  function render(o) {
    $("stat-items").textContent = String(o.items);
    $("stat-complete").textContent = String(o.complete);
    $("stat-coverage").textContent = (100 * (Number(o.coverage) || 0)).toFixed(1) + " %";
    $("stat-overlap").textContent = String(o.overlap);
    $("stat-ratings").textContent = String(o.ratings);

    const ann = $("annotators").tBodies[0];
    clear(ann);
    for (const a of o.annotators || []) {
      const tr = document.createElement("tr");
      tr.dataset.annotator = a.name;
      cell(tr, a.name);
      cell(tr, String(a.rated), "num");
      cell(tr, String(a.skipped), "num");
      cell(tr, String(a.flagged), "num");
      cell(tr, typeof a.per_hour === "number" ? a.per_hour.toFixed(1) : "n/a", "num");
      ann.appendChild(tr);
    }
    if (!ann.rows.length) emptyRow(ann, 5, "no annotator has rated yet");

    const agreement = o.agreement || {};
    const fleiss = $("fleiss").tBodies[0];
    clear(fleiss);
    for (const [dim, title] of DIMENSIONS) {
      const d = agreement[dim] || {};
      const tr = document.createElement("tr");
      tr.dataset.dimension = dim;
      cell(tr, title);
      const k = cell(tr, kappaText(d.fleiss_kappa), "num kappa");
      k.dataset.kappa = d.fleiss_kappa === null || d.fleiss_kappa === undefined ? "" :
        String(d.fleiss_kappa);
      cell(tr, String(d.items ?? 0), "num");
      fleiss.appendChild(tr);
    }

    // One row per annotator pair, one column per dimension: "κ (n)".
    const head = $("cohen").tHead.rows[0];
    while (head.firstChild) head.removeChild(head.firstChild);
    ["annotator A", "annotator B"].concat(DIMENSIONS.map((d) => d[1])).forEach((text, i) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      if (i >= 2) th.className = "num";
      head.appendChild(th);
    });
    const pairs = new Map();
    for (const [dim] of DIMENSIONS) {
      for (const p of (agreement[dim] || {}).cohen_kappa || []) {
        const key = JSON.stringify([p.a, p.b]);
        if (!pairs.has(key)) pairs.set(key, { a: p.a, b: p.b, dims: {} });
        pairs.get(key).dims[dim] = p;
      }
    }
    const cohen = $("cohen").tBodies[0];
    clear(cohen);
    for (const pair of pairs.values()) {
      const tr = document.createElement("tr");
      tr.dataset.a = pair.a;
      tr.dataset.b = pair.b;
      cell(tr, pair.a);
      cell(tr, pair.b);
      for (const [dim] of DIMENSIONS) {
        const p = pair.dims[dim];
        const td = cell(tr, p ? kappaText(p.kappa) + " (n " + p.items + ")" : "—", "num kappa");
        td.dataset.dimension = dim;
        td.dataset.kappa = p && typeof p.kappa === "number" ? String(p.kappa) : "";
        td.dataset.items = p ? String(p.items) : "0";
      }
      cohen.appendChild(tr);
    }
    if (!cohen.rows.length) emptyRow(cohen, 5, "no two annotators have rated the same item yet");

    const flags = $("flags").tBodies[0];
    clear(flags);
    for (const f of o.flags || []) {
      const tr = document.createElement("tr");
      cell(tr, f.item_id);
      cell(tr, f.annotator);
      cell(tr, f.note || "");
      cell(tr, f.at || "");
      flags.appendChild(tr);
    }
    if (!flags.rows.length) emptyRow(flags, 4, "no flags");
  }

  async function refresh() {
    try {
      const o = await api("v1/overview");
      if (state.auth) sessionStorage.setItem(TOKEN_KEY, state.token);
      $("signin").hidden = true;
      $("report").hidden = false;
      $("refresh").hidden = false;
      $("who").hidden = !state.auth;
      render(o);
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.loaded = String(Date.now());
      showStatus("");
    } catch (e) {
      if (state.auth && (e.status === 401 || e.status === 403)) {
        sessionStorage.removeItem(TOKEN_KEY);
        state.token = null;
        showSignIn();
      }
      showStatus(e.message, "error");
    }
  }

  function showSignIn() {
    $("report").hidden = true;
    $("refresh").hidden = true;
    $("who").hidden = true;
    $("signin").hidden = false;
    $("token-input").value = "";
    $("token-input").focus();
  }

  async function start() {
    $("refresh").addEventListener("click", refresh);
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = null;
      showSignIn();
    });
    $("signin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) {
        showStatus("enter an admin token", "error");
        return;
      }
      state.token = token;
      refresh();
    });
    const auth = await tokensOn(() => api("v1/info"));
    if (auth === null) return;
    state.auth = auth;
    state.token = sessionStorage.getItem(TOKEN_KEY);
    if (state.auth && !state.token) showSignIn();
    else await refresh();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
