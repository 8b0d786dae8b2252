// lookalike web page: search by upload, paste, drop, URL or text (on libraries whose model embeds
// text); browse by clicking results.
// State lives in the address bar (?id=N, ?url=… or ?text=…, plus filters), so every view can be shared
// and the back button works. Everything shown comes from /api/v1; text is set with
// textContent, never parsed as HTML.
"use strict";

const PAGE = 24;
const $ = (id) => document.getElementById(id);
const uploads = new Map(); // history token -> {file, page} for upload searches
let current = null; // {kind, value, offset, token}

// -- talking to the API ---------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

function filters() {
  const f = {
    licence: $("f-licence").value.trim(), site: $("f-site").value.trim(),
    author: $("f-author").value.trim(), format: $("f-format").value,
    min_width: $("f-min-width").value.trim(),
  };
  return Object.fromEntries(Object.entries(f).filter(([, v]) => v !== ""));
}

function setFilters(params) {
  $("f-licence").value = params.get("licence") || "";
  $("f-site").value = params.get("site") || "";
  $("f-author").value = params.get("author") || "";
  $("f-format").value = params.get("format") || "";
  $("f-min-width").value = params.get("min_width") || "";
  if ([...params.keys()].some((k) => !["id", "url", "text"].includes(k))) $("filters").open = true;
}

async function runQuery(query, offset) {
  const f = filters();
  if (query.kind === "id") {
    const qs = new URLSearchParams({ k: PAGE, offset, ...f });
    return api(`/api/v1/images/${query.value}/similar?${qs}`);
  }
  if (query.kind === "url" || query.kind === "text") {
    return api("/api/v1/search", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ [query.kind]: query.value, k: PAGE, offset, ...f }),
    });
  }
  const form = new FormData();
  form.append("file", query.file);
  for (const [k, v] of Object.entries({ k: PAGE, offset, ...f })) form.append(k, v);
  return api("/api/v1/search", { method: "POST", body: form });
}

// -- navigation -----------------------------------------------------------------------------

function urlFor(query) {
  const params = new URLSearchParams(filters());
  if (query.kind === "id") params.set("id", query.value);
  if (query.kind === "url") params.set("url", query.value);
  if (query.kind === "text") params.set("text", query.value);
  const qs = params.toString();
  return qs ? `/?${qs}` : "/";
}

function go(query) {
  const token = query.kind === "upload" ? String(Date.now()) : null;
  if (token) uploads.set(token, query);
  history.pushState({ token }, "", query.kind === "upload" ? "/?upload" : urlFor(query));
  show({ ...query, token });
}

async function show(query) {
  current = { ...query, offset: 0 };
  $("results").replaceChildren();
  $("more").hidden = true;
  status("Searching…");
  renderQuery(query);
  await loadPage();
}

async function loadPage() {
  const query = current;
  try {
    const page = await runQuery(query, query.offset);
    if (current !== query) return; // the user moved on meanwhile
    for (const hit of page.results) $("results").append(card(hit));
    query.offset += page.results.length;
    $("more").hidden = !page.has_more;
    const n = $("results").children.length;
    status(n ? "" : "No results. Try fewer filters, or another image.");
  } catch (error) {
    status(error.message, true);
  }
}

function fromAddress() {
  const params = new URLSearchParams(location.search);
  setFilters(params);
  const token = history.state && history.state.token;
  if (token && uploads.has(token)) return show(uploads.get(token));
  if (params.has("id")) return show({ kind: "id", value: params.get("id") });
  if (params.has("url")) {
    $("url").value = params.get("url");
    return show({ kind: "url", value: params.get("url") });
  }
  if (params.has("text")) {
    $("text").value = params.get("text");
    return show({ kind: "text", value: params.get("text") });
  }
  if (params.has("upload")) status("Uploads are not kept in the address: drop the image again.");
  $("query").hidden = true;
  $("results").replaceChildren();
  $("more").hidden = true;
}

// -- rendering ------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

function thumb(hit, size = 256) {
  const img = el("img", { src: `${hit.thumbnail}?size=${size}`, alt: hit.title || fileName(hit), loading: "lazy" });
  img.addEventListener("load", () => {
    if (img.naturalWidth < 96) img.classList.add("pixelated"); // pixel art stays crisp
  });
  return img;
}

function fileName(hit) {
  const path = hit.member || hit.source || "";
  return path.split(/[!/]/).filter(Boolean).pop() || `image ${hit.id}`;
}

function isLink(text) {
  return typeof text === "string" && /^https?:\/\//.test(text);
}

function sourceLine(hit) {
  const label = hit.title || fileName(hit);
  const href = hit.page_url || (isLink(hit.source) && !hit.member ? hit.source : null);
  const title = href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: label })
                     : el("span", { text: label, title: hit.source + (hit.member ? `!${hit.member}` : "") });
  return el("div", { class: "source" }, title);
}

function card(hit) {
  const open = (event) => { event.preventDefault(); go({ kind: "id", value: String(hit.id) }); };
  const meta = el("div", { class: "meta" },
    el("span", { class: `tier tier-${hit.tier}`, text: hit.tier }),
    el("span", { class: "score", text: `${(hit.score * 100).toFixed(1)}%` }),
    el("span", { class: "size", text: hit.width ? `${hit.width}×${hit.height}` : "" }),
  );
  const credits = [hit.author, hit.licence].filter(Boolean).join(" · ");
  const node = el("article", { class: "card", "data-id": hit.id },
    el("a", { class: "pic", href: `/?id=${hit.id}`, title: "Find images like this one", onclick: open }, thumb(hit)),
    meta,
    sourceLine(hit),
    credits ? el("div", { class: "credits", text: credits }) : null,
    hit.places > 1 ? el("div", { class: "places", text: `found in ${hit.places} places` }) : null,
  );
  if (hit.duplicates && hit.duplicates.length) {
    const list = el("div", { class: "dups", hidden: "" },
      ...hit.duplicates.map((d) => el("a", {
        href: `/?id=${d.id}`, title: `${fileName(d)} (${(d.score * 100).toFixed(1)}%)`,
        onclick: (e) => { e.preventDefault(); go({ kind: "id", value: String(d.id) }); },
      }, thumb(d, 64))));
    const toggle = el("button", {
      class: "dup-toggle", type: "button", text: `+${hit.duplicates.length} near-duplicate${hit.duplicates.length > 1 ? "s" : ""}`,
      onclick: () => { list.hidden = !list.hidden; },
    });
    node.append(toggle, list);
  }
  return node;
}

async function renderQuery(query) {
  const box = $("query");
  box.hidden = false;
  if (query.kind === "upload") {
    const img = el("img", { alt: "your image", src: URL.createObjectURL(query.file) });
    box.replaceChildren(img, el("div", { class: "query-text" },
      el("strong", { text: "Your image" }), el("div", { text: query.file.name || "pasted image" })));
    return;
  }
  if (query.kind === "url") {
    box.replaceChildren(el("img", { alt: "the image at the URL", src: query.value }),
      el("div", { class: "query-text" }, el("strong", { text: "Image at" }), el("div", { class: "break", text: query.value })));
    return;
  }
  if (query.kind === "text") {
    box.replaceChildren(el("div", { class: "query-text" },
      el("strong", { text: "Described as" }), el("div", { class: "break", text: query.value })));
    return;
  }
  box.replaceChildren(el("div", { class: "query-text", text: "Loading…" }));
  try {
    const image = await api(`/api/v1/images/${query.value}`);
    const places = image.places.map((p) => {
      const where = p.member ? `${p.source} ! ${p.member}` : p.source;
      const label = [p.title, p.author, p.licence].filter(Boolean).join(" · ");
      const link = p.page_url ? el("a", { href: p.page_url, target: "_blank", rel: "noopener noreferrer", text: label || p.page_url }) : null;
      return el("li", {}, el("span", { class: "break", text: where }), link ? el("div", {}, link) : (label ? el("div", { text: label }) : null));
    });
    box.replaceChildren(
      thumb({ ...image, thumbnail: image.thumbnail }, 256),
      el("div", { class: "query-text" },
        el("strong", { text: `Image ${image.id}` }),
        el("div", { text: `${image.width}×${image.height} ${image.format || ""}` }),
        el("div", {}, el("a", { href: image.file, target: "_blank", rel: "noopener", text: "original file" })),
        el("ul", { class: "place-list" }, ...places)));
  } catch (error) {
    box.replaceChildren(el("div", { class: "query-text", text: error.message }));
  }
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// -- input ----------------------------------------------------------------------------------

function searchFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) return status(`${file.name} is not an image`, true);
  go({ kind: "upload", file });
}

function setup() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => searchFile(e.target.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); searchFile(e.dataTransfer.files[0]); });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) searchFile(item.getAsFile());
  });
  $("url-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const url = $("url").value.trim();
    if (url) go({ kind: "url", value: url });
  });
  $("text-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (text) go({ kind: "text", value: text });
  });
  $("random").addEventListener("click", async () => {
    try {
      const image = await api("/api/v1/random");
      go({ kind: "id", value: String(image.id) });
    } catch (error) { status(error.message, true); }
  });
  $("apply-filters").addEventListener("click", () => { if (current) go({ ...current }); });
  $("more").addEventListener("click", loadPage);
  window.addEventListener("popstate", fromAddress);
  api("/healthz").then((h) => {
    $("library-info").textContent = `${h.images.toLocaleString()} images · ${h.model}`;
    $("text-form").hidden = !h.text; // only models that embed text can search by it
  }).catch(() => {});
  fromAddress();
}

document.addEventListener("DOMContentLoaded", setup);
