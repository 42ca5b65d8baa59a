// recsys similar-items widget: drop into any product page.
//
//   <div data-recsys-similar="SKU-000123" data-k="6"></div>
//   <script src="https://RECSYS-HOST/widget.js" async></script>
//
// Optional attributes: data-weights="image:0.7,text:0.2,tabular:0.1", data-title="You may also like",
// data-link="/products/{item_id}" (where a click goes; {item_id} is replaced). The API server must
// allow the page's origin (RECSYS_API__CORS_ORIGINS).
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script ? new URL(script.src, location.href).origin : "";

  function node(tag, style, text) {
    var n = document.createElement(tag);
    if (style) n.setAttribute("style", style);
    if (text != null) n.textContent = text;
    return n;
  }

  function render(container, body) {
    var link = container.getAttribute("data-link");
    var box = node("div", "font:14px/1.3 system-ui,sans-serif");
    box.appendChild(node("div", "font-weight:600;margin:0 0 .5em",
                         container.getAttribute("data-title") || "Similar items"));
    var row = node("div", "display:grid;grid-template-columns:repeat(auto-fill,minmax(8em,1fr));gap:.6em");
    body.items.forEach(function (item) {
      var card = node(link ? "a" : "div", "display:block;color:inherit;text-decoration:none");
      card.className = "recsys-item";
      card.setAttribute("data-item-id", item.item_id);
      if (link) card.href = link.replace("{item_id}", encodeURIComponent(item.item_id));
      var img = node("div", "aspect-ratio:1;background:#eee center/cover no-repeat;border-radius:4px");
      if (item.image) img.style.backgroundImage = 'url("' + base + item.image + '")';
      card.appendChild(img);
      card.appendChild(node("div", "font-size:.85em;margin-top:.3em", item.title || item.item_id));
      if (item.price != null) card.appendChild(node("div", "font-weight:600", "$" + Number(item.price).toFixed(2)));
      row.appendChild(card);
    });
    box.appendChild(row);
    container.replaceChildren(box);
    container.setAttribute("data-recsys-version", body.version);
  }

  function load(container) {
    var id = container.getAttribute("data-recsys-similar");
    var query = "k=" + encodeURIComponent(container.getAttribute("data-k") || "6");
    var weights = container.getAttribute("data-weights");
    if (weights) query += "&weights=" + encodeURIComponent(weights);
    fetch(base + "/v1/items/" + encodeURIComponent(id) + "/similar?" + query)
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error ? body.error.message : "HTTP " + response.status);
          return body;
        });
      })
      .then(function (body) { render(container, body); })
      .catch(function (error) {
        container.setAttribute("data-recsys-error", error.message);  // the host page stays intact
      });
  }

  function start() {
    document.querySelectorAll("[data-recsys-similar]").forEach(load);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
