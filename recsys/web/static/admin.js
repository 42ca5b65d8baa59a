// The admin page: plain JavaScript over the admin API (docs/curation.md, docs/rules.md,
// docs/experiments.md), no build step.
// Views by URL hash: #/review, #/outliers, #/duplicates, #/clusters, #/subset, #/labels, #/rules,
// #/experiments.
"use strict";

const KEY = "recsys-admin-key";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

function status(text, error = false) {
  const node = document.getElementById("status");
  node.textContent = text;
  node.classList.toggle("error", error);
}

async function admin(path, options = {}) {
  const headers = { "Content-Type": "application/json", "X-API-Key": sessionStorage.getItem(KEY) || "",
                    "X-Recsys-Actor": "admin page" };
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (body.version) document.getElementById("version").textContent = body.version;
  if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  return body;
}

function card(itemId, catalog = {}) {
  const item = catalog[itemId] || { item_id: itemId };
  const image = el("div", { class: "img" });
  image.style.backgroundImage = `url("/v1/items/${encodeURIComponent(itemId)}/image")`;
  return el("a", { class: "card", href: `/#/item/${encodeURIComponent(itemId)}`, "data-item-id": itemId },
    image,
    el("div", { class: "title" }, item.title || itemId),
    el("div", { class: "meta" }, el("span", {}, itemId), el("span", { class: "category" }, item.category || "")));
}

// a distinct colour per cluster, the same on every load
function colour(cluster) {
  return `hsl(${(cluster * 137.508) % 360}, 65%, 50%)`;
}

// a flagged check in words, with its evidence
function flagged(name, check) {
  const z = check.z == null ? "" : ` (z ${check.z.toFixed(1)})`;
  if (name === "duplicate") {
    return check.of.map((d) => `duplicate of ${d.item_id}: image ${d.image ?? "–"}, pixels ${d.pixels ?? "–"}, ` +
                                `text ${d.text ?? "–"}${d.exact ? ", the same photo" : ""}`).join("; ");
  }
  if (name === "quality") return `photo: ${check.reasons.join(", ")}`;
  return (check.reason || name) + z;
}

// a saved tagger's label of a queued item, and a reviewer's choice among its labels or none of them
function labelControl(id, name, labels, current, refresh) {
  const none = "(none of these)";
  const select = el("select", { "data-tagger": name },
    ...[...labels, none].map((label) => el("option", { value: label }, label)));
  select.value = current ?? none;
  return el("div", { class: "label-control" }, `${name}: `, select, el("button", { onclick: async () => {
    try {
      await admin(`/v1/admin/labels/${id}/${encodeURIComponent(name)}`,
                  { method: "PUT", body: JSON.stringify({ label: select.value === none ? null : select.value }) });
      await refresh();
    } catch (error) { status(error.message, true); }
  } }, `Set ${name}`));
}

const views = {
  async review(view) {
    const body = await admin("/v1/admin/queue?limit=50");
    status(`${body.items.length} flagged items: put items, newest first, then what the build's checks found in ` +
           "the whole catalog; beside each, the listing it duplicates. A dismissed flag does not come back; a held " +
           "item is out of every read until released; a merged listing leaves every result and its reads answer " +
           "for the one kept.");
    const act = (label, path, method = "POST", payload = undefined) => el("button", { onclick: async () => {
      try {
        await admin(path, { method, body: payload === undefined ? undefined : JSON.stringify(payload) });
        await views.review(view);
      } catch (error) { status(error.message, true); }
    } }, label);
    view.replaceChildren(el("div", { class: "rows", id: "review" }, ...body.items.map((row) => {
      const source = row.checks.duplicate ? [card(row.checks.duplicate.of[0].item_id, body.catalog)] : [];
      const id = encodeURIComponent(row.item_id);
      return el("div", { class: "row", "data-item-id": row.item_id, "data-source": row.source },
        card(row.item_id, body.catalog), ...source,
        el("div", { class: "facts" },
          el("div", { class: "score" }, row.source === "build" ? "found at build"
            : row.held.length ? `put, held by ${row.held.join(", ")}` : "put, served"),
          el("ul", {}, ...Object.entries(row.checks).map(([name, check]) => el("li", {}, flagged(name, check)))),
          act("Dismiss", `/v1/admin/queue/${id}/dismiss`),
          row.held.length ? act("Release", `/v1/items/${id}/release`) : "",
          row.checks.duplicate ? act(`Merge into ${row.checks.duplicate.of[0].item_id}`, "/v1/admin/merges", "POST",
                                     { keep: row.checks.duplicate.of[0].item_id, merge: [row.item_id] }) : "",
          row.checks.off_category && row.checks.off_category.suggested_category
            ? act(`Set category ${row.checks.off_category.suggested_category}`, `/v1/admin/queue/${id}/category`) : "",
          act("Hide", `/v1/items/${id}`, "DELETE"),
          ...Object.entries(body.taggers).map(([name, labels]) => labelControl(id, name, labels,
            ((body.catalog[row.item_id] || {}).labels || {})[name], () => views.review(view)))));
    })));
  },

  async outliers(view) {
    const body = await admin("/v1/admin/outliers?top=50");
    status(`The 50 items most likely to be wrong, highest score first (${body.items.length} shown).`);
    view.replaceChildren(el("div", { class: "rows", id: "outliers" }, ...body.items.map((item) =>
      el("div", { class: "row", "data-item-id": item.item_id }, card(item.item_id, body.catalog),
        el("div", { class: "facts" },
          el("div", { class: "score" }, `score ${item.score.toFixed(1)}`),
          el("ul", {}, ...item.reasons.map((reason) => el("li", {}, reason))),
          item.suggested_category ? el("div", {}, `looks like: ${item.suggested_category}`) : "")))));
  },

  async duplicates(view) {
    const sellers = el("input", { type: "checkbox", name: "sellers" });
    const form = el("form", { class: "controls" },
      el("label", {}, sellers, " also the same product from another seller (other words, another photo; " +
         "about one pair in three is a look-alike)"));
    const out = el("div", { class: "rows", id: "duplicates" });
    const run = async () => {
      const body = await admin(`/v1/admin/duplicates?sellers=${sellers.checked}`);
      const shown = body.groups.slice(0, 50);
      status(`${body.groups.length} groups of duplicate listings at threshold ${body.threshold}` +
             `${body.sellers ? ", other sellers' listings too" : ""}; the ${shown.length} strongest are shown, ` +
             "the first item of each group is the one to keep.");
      out.replaceChildren(...shown.map((group) => el("div", { class: "row strip" },
        ...group.map((id) => card(id, body.catalog)))));
    };
    sellers.addEventListener("change", () => run().catch((e) => status(e.message, true)));
    view.replaceChildren(form, out);
    await run();
  },

  async clusters(view) {
    const body = await admin("/v1/admin/clusters?map=true");
    status(`${body.clusters.length} clusters of the ${body.modality} vectors, largest first; ` +
           "the map shows the items' two principal components.");
    view.replaceChildren(map(body.map, body.clusters), el("div", { class: "rows", id: "clusters" },
      ...body.clusters.map((c) => el("div", { class: "row" },
        el("div", { class: "facts" },
          el("div", { class: "score" }, el("span", { class: "swatch", style: "" }), c.name || `cluster ${c.id}`),
          el("div", {}, `${c.size} items, cohesion ${c.cohesion.toFixed(2)}`)),
        el("div", { class: "strip" }, ...c.representatives.map((id) => card(id, body.catalog)))))));
    view.querySelectorAll("#clusters .swatch").forEach((node, k) => { node.style.background = colour(k); });
  },

  async subset(view) {
    const form = el("form", { class: "controls" },
      el("label", {}, "items ", el("input", { name: "n", type: "number", value: "24", min: "1", max: "5000" })),
      el("label", {}, "balance by ", el("select", { name: "balance" },
        el("option", { value: "" }, "nothing"), el("option", { value: "category" }, "category"))),
      el("button", { type: "submit" }, "Choose"));
    const out = el("div", { class: "cards", id: "subset" });
    const run = async () => {
      const params = new URLSearchParams({ n: form.n.value });
      if (form.balance.value) params.set("balance", form.balance.value);
      const body = await admin(`/v1/admin/subset?${params}`);
      status(`${body.items.length} items that cover the catalog (coverage radius ${body.radius.toFixed(3)}).`);
      out.replaceChildren(...body.items.slice(0, 200).map((id) => card(id, body.catalog)));
    };
    form.addEventListener("submit", (event) => { event.preventDefault(); run().catch((e) => status(e.message, true)); });
    view.replaceChildren(form, out);
    await run();
  },

  async labels(view) {
    const text = el("textarea", { name: "prompts" },
      "label,text\ntops,a shirt, t-shirt or top\ntrousers,trousers, jeans or shorts\ndresses,a dress or skirt\n" +
      "shoes,a pair of shoes\nbags,a handbag or backpack");
    const form = el("form", { class: "controls" },
      el("div", { class: "note" }, "One line per label: label,text (zero-shot) or label,item_id (examples)."),
      text, el("button", { type: "submit" }, "Label the catalog"));
    const out = el("div", { id: "labels" });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const lines = text.value.trim().split("\n").map((l) => l.split(",").map((p) => p.trim()));
      const header = lines.shift();
      const kind = header[1] === "item_id" ? "examples" : "prompts";
      const rows = lines.filter((l) => l.length >= 2).map((l) => ({ label: l[0], [header[1]]: l.slice(1).join(",") }));
      try {
        const body = await admin("/v1/admin/labels", { method: "POST", body: JSON.stringify({ [kind]: rows }) });
        const byLabel = {};
        for (const item of body.items) (byLabel[item.label] ||= []).push(item);
        status(`${body.items.length} items labelled from ${body.method}; the most confident of each label:`);
        out.replaceChildren(...Object.entries(byLabel).map(([label, items]) => el("div", { class: "row" },
          el("div", { class: "facts" }, el("div", { class: "score" }, label), `${items.length} items`),
          el("div", { class: "strip" }, ...items.sort((a, b) => b.confidence - a.confidence).slice(0, 8)
            .map((item) => card(item.item_id, body.catalog))))));
      } catch (error) { status(error.message, true); }
    });
    view.replaceChildren(form, out);
  },

  async rules(view) {
    const body = await admin("/v1/rules");
    status(`${body.rules.length} rules (version ${body.rules_version}), applied in this order to every read of ` +
           "their scope; each moved item says so in its why.");
    const form = el("form", { class: "controls", id: "rule-form" },
      el("label", {}, "action ", el("select", { name: "action" }, ...["boost", "bury", "pin", "exclude"].map(
        (a) => el("option", { value: a }, a)))),
      el("label", {}, "scope ", el("select", { name: "scope" }, ...["all", "feeds", "similar", "search"].map(
        (a) => el("option", { value: a }, a)))),
      el("label", {}, "position ", el("input", { name: "position", type: "number", min: "1", max: "1000" })),
      el("label", {}, "factor ", el("input", { name: "factor", type: "number", step: "0.5", min: "1.5" })),
      el("label", {}, "from ", el("input", { name: "start", type: "datetime-local" })),
      el("label", {}, "to ", el("input", { name: "end", type: "datetime-local" })),
      el("label", {}, "note ", el("input", { name: "note", placeholder: "what it is for" })),
      el("textarea", { name: "match" }, '{"category": "ladieswear"}'),
      el("button", { type: "submit" }, "Add rule"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const rule = { action: form.action.value, scope: form.scope.value, note: form.note.value };
      for (const name of ["position", "factor"]) if (form[name].value) rule[name] = Number(form[name].value);
      for (const name of ["start", "end"]) if (form[name].value) rule[name] = new Date(form[name].value).toISOString();
      try {
        rule.match = JSON.parse(form.match.value);
        await admin("/v1/rules", { method: "POST", body: JSON.stringify(rule) });
        await views.rules(view);
      } catch (error) { status(error.message, true); }
    });
    const rows = body.rules.map((rule) => el("div", { class: "row rule", "data-rule-id": rule.id },
      el("div", { class: "facts" },
        el("div", { class: "score" }, `${rule.id} ${rule.action}${rule.position ? " at " + rule.position : ""}` +
           `${rule.factor ? " ×" + rule.factor : ""}`),
        el("div", {}, `match ${JSON.stringify(rule.match)} · scope ${rule.scope} · ${rule.matches} items`),
        el("div", {}, `${rule.active ? "active now" : "not active now"}${rule.start ? " · from " + rule.start : ""}` +
           `${rule.end ? " · until " + rule.end : ""}`),
        rule.note ? el("div", { class: "note" }, rule.note) : ""),
      el("button", { onclick: async () => {
        try { await admin(`/v1/rules/${rule.id}`, { method: "DELETE" }); await views.rules(view); }
        catch (error) { status(error.message, true); }
      } }, "Remove")));
    view.replaceChildren(form, el("div", { class: "rows", id: "rules" }, ...rows));
  },

  async experiments(view) {
    const body = await admin("/v1/experiments");
    status(`${body.experiments.length} experiments; each report gives 95% intervals per variant and the ` +
           "difference against the control (the first variant).");
    const form = el("form", { class: "controls", id: "experiment-form" },
      el("textarea", { name: "spec" }, JSON.stringify({ name: "diverse feeds", target: "feeds",
        variants: [{ name: "control" }, { name: "diverse", diversity: 0.3 }] }, null, 1)),
      el("button", { type: "submit" }, "Start experiment"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await admin("/v1/experiments", { method: "POST", body: form.spec.value });
        await views.experiments(view);
      } catch (error) { status(error.message, true); }
    });
    const sections = [];
    for (const experiment of body.experiments.slice().reverse()) {
      const report = await admin(`/v1/experiments/${experiment.id}/report`);
      sections.push(experimentSection(experiment, report, view));
    }
    view.replaceChildren(form, el("div", { class: "rows", id: "experiments" }, ...sections));
  },
};

const METRICS = [["ctr", "CTR"], ["conversion", "conversion"], ["revenue_per_user", "revenue per user"]];

function interval(m) {
  if (!m || m.value === null) return "–";
  const digits = Math.abs(m.value) < 1 ? 4 : 2;
  return m.low === null ? m.value.toFixed(digits) :
    `${m.value.toFixed(digits)} [${m.low.toFixed(digits)}, ${m.high.toFixed(digits)}]`;
}

function experimentSection(experiment, report, view) {
  const names = Object.keys(report.variants);
  const table = el("table", { class: "report" },
    el("tr", {}, ...["variant", "users", "impressions", "clicks", ...METRICS.map((m) => m[1])].map((h) => el("th", {}, h))),
    ...names.map((name) => {
      const row = report.variants[name];
      return el("tr", { "data-variant": name }, el("td", {}, name), el("td", {}, row.users),
        el("td", {}, row.impressions), el("td", {}, row.clicks),
        ...METRICS.map(([key]) => {
          const diff = row[`${key}_vs_control`];
          return el("td", { class: diff && diff.significant ? (diff.value > 0 ? "up" : "down") : "" },
            interval(row[key]), diff ? el("div", { class: "diff" }, `vs control ${interval(diff)}`) : "");
        }));
    }));
  const srm = report.srm.mismatch
    ? el("div", { class: "error" }, `sample ratio mismatch (p = ${report.srm.p_value}): do not trust the differences`)
    : el("div", { class: "note" }, `split as configured (sample-ratio p = ${report.srm.p_value ?? "–"})`);
  const stop = experiment.status === "running" ? el("button", { onclick: async () => {
    try { await admin(`/v1/experiments/${experiment.id}/stop`, { method: "POST" }); await views.experiments(view); }
    catch (error) { status(error.message, true); }
  } }, "Stop") : el("span", { class: "note" }, `stopped ${experiment.stopped}`);
  return el("div", { class: "row experiment", "data-experiment-id": experiment.id },
    el("div", { class: "facts" },
      el("div", { class: "score" }, `${experiment.id} ${experiment.name} (${experiment.status}, ${experiment.target})`),
      table, srm, el("div", { class: "plots" }, ...METRICS.map(([key, label]) => plot(report.timeline, names, key, label))),
      el("div", { class: "legend" }, "over the experiment's time: ", ...names.map((name, k) => el("span", {},
        el("span", { class: "swatch", style: `background: ${colour(k)}` }), `${name} `))),
      stop));
}

// a metric's path per variant over the experiment's time (the report's timeline)
function plot(timeline, names, key, label) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 280, height = 120, pad = 18;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "plot");
  const values = timeline.flatMap((p) => names.map((n) => p[n] && p[n][key]).filter((v) => v !== null && v !== undefined));
  const top = Math.max(...values, 1e-9);
  const text = document.createElementNS(ns, "text");
  text.setAttribute("x", pad); text.setAttribute("y", 12); text.textContent = `${label} (max ${top.toPrecision(3)})`;
  svg.append(text);
  names.forEach((name, k) => {
    const points = timeline.map((p, i) => [pad + (i / Math.max(timeline.length - 1, 1)) * (width - 2 * pad),
      height - pad - ((p[name] && p[name][key]) || 0) / top * (height - 2 * pad)]);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.map((q) => q.join(",")).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colour(k));
    line.setAttribute("stroke-width", "2");
    const title = document.createElementNS(ns, "title");
    title.textContent = name;
    line.append(title);
    svg.append(line);
  });
  return svg;
}

function map(points, clusters) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 900, height = 420, pad = 12;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("id", "map");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", "100%");
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  for (const p of points) {
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", pad + ((p.x - x0) / (x1 - x0 || 1)) * (width - 2 * pad));
    dot.setAttribute("cy", pad + ((p.y - y0) / (y1 - y0 || 1)) * (height - 2 * pad));
    dot.setAttribute("r", 2.5);
    dot.setAttribute("fill", colour(p.cluster));
    const title = document.createElementNS(ns, "title");
    title.textContent = `${p.item_id}: ${clusters[p.cluster].name || "cluster " + p.cluster}`;
    dot.append(title);
    svg.append(dot);
  }
  return svg;
}

async function route() {
  const name = (location.hash.replace(/^#\//, "") || "outliers").split("?")[0];
  document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.hash === `#/${name}`));
  const view = document.getElementById("view");
  view.dataset.view = name;
  if (!sessionStorage.getItem(KEY)) {
    status("Enter the API key (RECSYS_API_KEY) to read the curation views.");
    view.replaceChildren();
    return;
  }
  status("Computing...");
  view.replaceChildren();
  try {
    await (views[name] || views.outliers)(view);
    view.dataset.ready = "1";
  } catch (error) {
    status(error.message, true);
  }
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, document.getElementById("key-input").value.trim());
  route();
});
window.addEventListener("hashchange", route);
route();
