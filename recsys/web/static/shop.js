// The demo shop: plain JavaScript over the public API, no build step.
// Views by URL hash: #/ (the grid), #/item/ID (a product page), #/search?q=... (search results),
// #/photo (the products that look like the photo the visitor chose).
"use strict";

const PAGE = 24;
const K_SIMILAR = 8;
const K_FEED = 8;
const PHOTO_SIDE = 512; // the browser shrinks a photo before it is sent: the towers use less
const state = { user: null, version: null, weightsTimer: null, photo: null };

// -- helpers ------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  const body = await response.json().catch(() => ({}));
  if (body.version) {
    state.version = body.version;
    document.getElementById("version").textContent = body.version;
  }
  if (!response.ok) {
    const message = body.error ? body.error.message : `HTTP ${response.status}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return body;
}

function price(value) {
  return value == null ? "" : `$${Number(value).toFixed(2)}`;
}

function card(item, { onClick, requestId } = {}) {
  const image = el("div", { class: "img" });
  if (item.image) image.style.backgroundImage = `url("${item.image}")`;
  else image.textContent = "no image";
  const node = el("a", { class: "card", href: `#/item/${encodeURIComponent(item.item_id)}`,
                         dataset: { itemId: item.item_id, category: item.category || "",
                                    colour: item.colour || "" } },
    image,
    el("div", { class: "title" }, item.title || item.item_id),
    el("div", { class: "meta" }, el("span", { class: "price" }, price(item.price)),
       el("span", { class: "category" }, (item.category || "").split("/").pop())));
  // why the item is there: a ranked feed's strongest reason (?explain=true), or the shop's rule
  // that moved it
  const why = item.why || {};
  const reasons = [...(why.reasons || []), ...(why.rules || [])].map((r) => r.text);
  if (reasons.length) node.append(el("div", { class: "why", title: reasons.join("; ") }, reasons[0]));
  node.addEventListener("click", () => { recordClick(item.item_id, requestId); if (onClick) onClick(item); });
  return node;
}

// the answer's items as cards; a click on one is posted with the answer's request id, so that an
// experiment's report counts it for the variant that showed it
function cards(container, items, requestId) {
  if (requestId) container.dataset.requestId = requestId;
  container.replaceChildren(...items.map((item) => card(item, { requestId })));
}

// -- the visitor ---------------------------------------------------------------------------------

function visitorId() {
  let id = localStorage.getItem("recsys-visitor");
  if (!id) {
    id = "visitor-" + Math.random().toString(36).slice(2, 10);
    localStorage.setItem("recsys-visitor", id);
  }
  return id;
}

function recentLocal() {
  return JSON.parse(localStorage.getItem("recsys-recent") || "[]");
}

async function recordClick(itemId, requestId) {
  // the click goes to the interaction log; a server that keeps writes behind the API key
  // refuses it, and the page then keeps the visitor's recent items itself
  const recent = [itemId, ...recentLocal().filter((i) => i !== itemId)].slice(0, 20);
  localStorage.setItem("recsys-recent", JSON.stringify(recent));
  try {
    await api("/v1/interactions", { method: "POST",
      body: JSON.stringify({ user_id: state.user, item_id: itemId, event: "click",
                             ...(requestId ? { request_id: requestId } : {}) }) });
    localStorage.setItem("recsys-logged", "1");
  } catch (error) {
    localStorage.setItem("recsys-logged", "0");
  }
  loadFeed();
}

async function setupUsers() {
  const select = document.getElementById("user-select");
  const visitor = visitorId();
  select.append(el("option", { value: visitor }, `anonymous visitor (${visitor})`));
  for (const user of (document.body.dataset.users || "").split(",").filter(Boolean)) {
    select.append(el("option", { value: user }, `user ${user}`));
  }
  const saved = localStorage.getItem("recsys-user");
  select.value = saved && [...select.options].some((o) => o.value === saved) ? saved : visitor;
  state.user = select.value;
  select.addEventListener("change", () => {
    state.user = select.value;
    localStorage.setItem("recsys-user", state.user);
    loadFeed();
  });
}

// -- the feed ------------------------------------------------------------------------------------

async function loadFeed() {
  const feed = document.getElementById("feed");
  const note = document.getElementById("feed-note");
  const user = state.user;
  try {
    let body;
    const recent = recentLocal();
    if (user.startsWith("visitor-") && localStorage.getItem("recsys-logged") === "0" && recent.length) {
      body = await api("/v1/recommendations", { method: "POST",
        body: JSON.stringify({ recent_items: recent, k: K_FEED, explain: true }) });
    } else {
      body = await api(`/v1/users/${encodeURIComponent(user)}/recommendations?k=${K_FEED}&explain=true`);
    }
    if (user !== state.user) return;  // another shopper was chosen meanwhile: their feed is on its way
    feed.dataset.user = user;
    feed.dataset.strategy = body.strategy;
    feed.dataset.recent = body.recent ?? recent.length;
    note.textContent = {
      ranked: "Picked for you from what you bought, what sells now and what looks alike.",
      collaborative: "From what shoppers like you chose.",
      "fold-in": "From what you just looked at.",
      popular: "Popular right now: click a few products and this adapts.",
    }[body.strategy] || "";
    cards(feed, body.items, body.request_id);
  } catch (error) {
    note.textContent = error.message;
    note.classList.add("error");
  }
}

// -- views ---------------------------------------------------------------------------------------

async function showGrid(params) {
  const view = document.getElementById("view");
  const offset = Number(params.get("offset") || 0);
  const category = params.get("category") || "";
  const query = new URLSearchParams({ limit: PAGE, offset });
  if (category) query.set("category", category);
  const body = await api(`/v1/items?${query}`);
  const grid = el("div", { id: "grid", class: "cards" });
  cards(grid, body.items);
  const pager = el("div", { class: "pager" });
  const link = (label, to) => {
    const q = new URLSearchParams({ offset: to });
    if (category) q.set("category", category);
    return el("a", { href: `#/?${q}` }, label);
  };
  if (offset > 0) pager.append(link("← previous", Math.max(0, offset - PAGE)));
  pager.append(el("span", {}, `${offset + 1}–${Math.min(offset + PAGE, body.total)} of ${body.total}`));
  if (offset + PAGE < body.total) pager.append(link("next →", offset + PAGE));
  const heading = el("h2", { class: "section" }, category ? `Category: ${category}` : "All products");
  view.replaceChildren(heading, grid, pager);
}

const SLIDERS = [
  ["image", "Looks (image)"],
  ["text", "Description (text)"],
  ["tabular", "Colour and price (tabular)"],
];

async function showItem(itemId) {
  const view = document.getElementById("view");
  const { item } = await api(`/v1/items/${encodeURIComponent(itemId)}`);
  const first = await api(`/v1/items/${encodeURIComponent(itemId)}/similar?k=${K_SIMILAR}` +
    (item.category ? `&category=${encodeURIComponent(item.category)}` : ""));
  const image = el("div", { class: "img" });
  image.style.backgroundImage = `url("/v1/items/${encodeURIComponent(itemId)}/image")`;
  const sliders = el("div", { class: "sliders" });
  for (const [modality, label] of SLIDERS) {
    const value = Math.round(100 * (first.weights[modality] || 0));
    const input = el("input", { type: "range", min: 0, max: 100, value, id: `w-${modality}`,
                                "aria-label": label });
    const shown = el("span", { id: `w-${modality}-value` }, String(value));
    input.addEventListener("input", () => { shown.textContent = input.value; scheduleSimilar(itemId); });
    if (!(modality in first.weights)) input.disabled = true;
    sliders.append(el("label", { for: `w-${modality}` }, label), input, shown);
  }
  const category = item.category || "";
  const sameCategory = el("input", { type: "checkbox", id: "same-category" });
  sameCategory.checked = Boolean(category);
  sameCategory.disabled = !category;
  sameCategory.addEventListener("change", () => loadSimilar(itemId));
  const product = el("div", { class: "product", id: "product", dataset: { itemId, category } },
    image,
    el("div", {},
      el("h1", {}, item.title || itemId),
      el("div", { class: "price" }, price(item.price)),
      el("p", {}, el("a", { href: `#/?category=${encodeURIComponent(category)}` }, category),
         item.colour ? ` · ${item.colour}` : ""),
      el("p", {}, item.description || ""),
      el("h2", { class: "section" }, "Similar items: what matters to you?"),
      sliders,
      el("label", {}, sameCategory, ` only in ${category.split("/").pop() || "this category"}`),
      el("p", { class: "note", id: "similar-note" }, "")));
  const similar = el("div", { id: "similar", class: "cards" });
  view.replaceChildren(product, el("h2", { class: "section" }, "Similar items"), similar);
  renderSimilar(first);
}

function scheduleSimilar(itemId) {
  clearTimeout(state.weightsTimer);
  state.weightsTimer = setTimeout(() => loadSimilar(itemId), 150);
}

async function loadSimilar(itemId) {
  const weights = SLIDERS.map(([m]) => document.getElementById(`w-${m}`))
    .filter((input) => input && !input.disabled && Number(input.value) > 0)
    .map((input) => `${input.id.slice(2)}:${(Number(input.value) / 100).toFixed(2)}`);
  const note = document.getElementById("similar-note");
  if (!weights.length) {
    note.textContent = "Give some weight to at least one slider.";
    return;
  }
  const product = document.getElementById("product");
  const category = product.dataset.category || "";
  const filter = document.getElementById("same-category").checked && category
    ? `&category=${encodeURIComponent(category)}` : "";
  try {
    renderSimilar(await api(`/v1/items/${encodeURIComponent(itemId)}/similar?k=${K_SIMILAR}&weights=${weights.join(",")}${filter}`));
  } catch (error) {
    note.textContent = error.message;
  }
}

function renderSimilar(body) {
  const similar = document.getElementById("similar");
  similar.dataset.weights = JSON.stringify(body.weights);
  document.getElementById("similar-note").textContent =
    "weights " + Object.entries(body.weights).map(([m, w]) => `${m} ${Number(w).toFixed(2)}`).join(", ");
  cards(similar, body.items, body.request_id);
}

async function showSearch(params) {
  const view = document.getElementById("view");
  const q = params.get("q") || "";
  document.getElementById("search-input").value = q;
  const body = await api(`/v1/search?${new URLSearchParams({ q, k: PAGE })}`);
  const results = el("div", { id: "results", class: "cards" });
  cards(results, body.items, body.request_id);
  view.replaceChildren(el("h2", { class: "section" }, `Results for “${q}”`), results);
}

// -- search by photo ------------------------------------------------------------------------------

async function shrink(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = el("canvas", { width: Math.round(bitmap.width * scale), height: Math.round(bitmap.height * scale) });
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

async function showPhotoSearch() {
  const view = document.getElementById("view");
  if (!state.photo) {
    view.replaceChildren(el("p", { class: "note" }, "Choose a photo with “Search by photo” above."));
    return;
  }
  const form = new FormData();
  form.append("image", state.photo, "photo.jpg");
  const body = await api(`/v1/search/image?k=${PAGE}`, { method: "POST", body: form, headers: {} });
  document.getElementById("search-input").value = "";
  const preview = el("img", { class: "query-photo", alt: "your photo", src: URL.createObjectURL(state.photo) });
  const results = el("div", { id: "results", class: "cards" });
  cards(results, body.items, body.request_id);
  view.replaceChildren(el("div", { class: "photo-query" }, preview,
                          el("h2", { class: "section" }, "Products that look like your photo")), results);
}

document.getElementById("photo-input").addEventListener("change", async (event) => {
  const [file] = event.target.files;
  if (!file) return;
  event.target.value = ""; // the same photo chosen again is a new search
  try {
    state.photo = await shrink(file);
  } catch (error) {
    state.photo = file; // a format this browser cannot draw: the server says whether it can read it
  }
  if (location.hash === "#/photo") route();
  else location.hash = "#/photo";
});

async function route() {
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const view = document.getElementById("view");
  try {
    if (path.startsWith("/item/")) await showItem(decodeURIComponent(path.slice(6)));
    else if (path === "/search") await showSearch(params);
    else if (path === "/photo") await showPhotoSearch();
    else await showGrid(params);
  } catch (error) {
    view.replaceChildren(el("p", { class: "error" }, error.message));
  }
  window.scrollTo(0, 0);
}

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = document.getElementById("search-input").value.trim();
  if (q) location.hash = `#/search?${new URLSearchParams({ q })}`;
});
window.addEventListener("hashchange", route);
setupUsers().then(() => { route(); loadFeed(); });
