// The page of `mmrec serve`: search (text, file, weights, filters, moments), item pages
// (player, segment timeline, similar items) and recommendations with like / skip /
// dislike, all over the service's JSON API. Plain ES module, no build step, no CDN.
//
// Stable hooks for tests and scripts: #q, #file, #results[data-state][data-seq] (seq
// counts answered searches), .hit[data-item-id], .bar[data-modality], .play-moment,
// .moment-player[data-seeked-to], #item[data-state][data-seq], #player, .seg[data-start],
// #similar .hit, #user-select, #recs[data-state][data-seq], .rec[data-item-id],
// button[data-event], #message, #random-note.

const ALL_MODALITIES = ["visual", "audio", "text", "multilingual"];
let MODALITIES = ["visual", "audio", "text"];  // this catalog's blocks, from /api/stats
const REC_K = 6;
const SIMILAR_K = 8;

const state = {
  random: new Set(),      // modalities whose vectors come from random weights
  randomNames: {},        // modality -> extractor preset name
  kind: "",               // kind filter chip
  tags: [],               // tag filter chips
  last: null,             // the last search: {type: "text"} or {type: "file", file}
  lastKey: null,          // what the last search asked, to skip re-running the same one
  titles: new Map(),      // item id -> title (Promise while being fetched)
  seq: { search: 0, item: 0, recs: 0 },
  weightsTouched: false,  // until a slider moves, the server's honest defaults apply
};

// -- small helpers -----------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);

/** Build an element: h("a", {class: "x", href, dataset: {...}, onclick}, ...children). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") {
      for (const [dk, dv] of Object.entries(v)) if (dv !== null && dv !== undefined) el.dataset[dk] = dv;
    } else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  play: "M8 5.5v13l11-6.5z",
  video: "M4 6h11a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1zm12 4 5-3v10l-5-3z",
  audio: "M9 18V6l11-2v12M9 18a3 3 0 1 1-3-3 3 3 0 0 1 3 3zm11-2a3 3 0 1 1-3-3 3 3 0 0 1 3 3z",
  media: "M5 4h14a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm5 4.5v7l6-3.5z",
};

function icon(name, cls = "icon") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `${cls} icon-${name}`);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name] || ICONS.media);
  path.setAttribute("fill-rule", "evenodd");
  svg.append(path);
  return svg;
}

function fmtTime(seconds) {
  const s = Math.max(0, Number(seconds) || 0);
  const m = Math.floor(s / 60);
  const rest = s - m * 60;
  const whole = Math.abs(rest - Math.round(rest)) < 0.05;
  const sec = whole ? String(Math.round(rest)).padStart(2, "0") : rest.toFixed(1).padStart(4, "0");
  return `${m}:${sec}`;
}

const fmtScore = (x) => (Number.isFinite(Number(x)) ? Number(x).toFixed(2) : "–");
const itemHref = (id, t) => `#/item/${id}` + (t > 0 ? `?t=${t}` : "");

// -- the API -----------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message, fields = []) {
    super(message);
    this.status = status;
    this.fields = fields;
  }
}

/** fetch JSON; any non-2xx answer becomes an ApiError with the service's message. */
async function api(path, { method = "GET", json, form } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `the service did not answer (${e.message})`);
  }
  const raw = await res.text();
  let body = null;
  try {
    body = raw ? JSON.parse(raw) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    let message = body && typeof body.error === "string" ? body.error : null;
    if (!message && body && Array.isArray(body.rejected) && body.rejected.length) {
      message = "rejected: " + body.rejected.map((r) => r.reason).join("; ");
    }
    throw new ApiError(res.status, message || `${res.status} ${res.statusText}`,
      (body && Array.isArray(body.fields) && body.fields) || []);
  }
  return body;
}

// -- messages ----------------------------------------------------------------------------
function showError(err, context) {
  const box = $("#message");
  const status = err.status ? ` (HTTP ${err.status})` : "";
  $("#message-text").textContent = `${context ? context + " failed: " : ""}${err.message}${status}`;
  $("#message-fields").replaceChildren(...(err.fields || []).map((f) =>
    h("li", {}, h("code", {}, f.field), " ", f.message)));
  box.hidden = false;
}

function clearError() {
  $("#message").hidden = true;
}

let toastTimer = null;
function toast(text) {
  const el = $("#toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 2600);
}

// -- media -------------------------------------------------------------------------------
/** A thumbnail that turns into a neutral placeholder when it cannot load. */
function thumb(url, kind, cls = "thumb") {
  const img = h("img", { class: cls, src: url, alt: "", decoding: "async" });
  img.addEventListener("error", () => img.replaceWith(placeholder(kind, cls)), { once: true });
  return img;
}

function placeholder(kind, cls = "thumb") {
  return h("div", { class: `${cls} placeholder`, dataset: { kind: kind || "" }, "aria-hidden": "true" },
    icon(kind === "audio" ? "audio" : kind === "video" ? "video" : "media", "placeholder-icon"));
}

/** Seek a media element to t once its metadata is there, then (optionally) play. */
function seekTo(el, t, play = true) {
  const target = Math.max(0, Number(t) || 0);
  el.dataset.seekTarget = String(target);
  const go = () => {
    el.currentTime = target;
    if (play) el.play().catch(() => {}); // autoplay may be refused: the controls are there
  };
  if (el.readyState >= 1) go();
  else el.addEventListener("loadedmetadata", go, { once: true });
}

/** A <video> or <audio> element for an item, seeking to `start` once it can. */
function mediaElement(kind, url, { id, cls, start = 0, end = null, play = false } = {}) {
  const tag = kind === "audio" ? "audio" : "video";
  const el = h(tag, { id, class: cls, controls: true, preload: "metadata", playsinline: true });
  el.addEventListener("seeked", () => { el.dataset.seekedTo = el.currentTime.toFixed(3); });
  el.addEventListener("error", () => {
    const code = el.error ? el.error.code : "?";
    showError(new ApiError(0, `this browser cannot play ${url} (media error ${code})`), "Playback");
  });
  if (end !== null && end > start) {
    // play the moment, then stop at its end (once: the user may play on)
    const stop = () => {
      if (el.currentTime >= end) {
        el.pause();
        el.removeEventListener("timeupdate", stop);
      }
    };
    el.addEventListener("timeupdate", stop);
  }
  el.src = url;
  if (start > 0 || play) seekTo(el, start, play);
  return el;
}

function pauseAllExcept(keep) {
  for (const el of document.querySelectorAll("video, audio")) if (el !== keep) el.pause();
}

// -- score bars and tiles ------------------------------------------------------------------
function bars(scores, cls = "bars") {
  return h("div", { class: cls }, MODALITIES.map((m) => {
    const v = Number(scores && scores[m]) || 0;
    const random = state.random.has(m);
    const width = Math.max(0, Math.min(1, v)) * 100;
    return h("div", {
      class: "bar" + (random ? " random" : ""),
      dataset: { modality: m, value: v.toFixed(4), random: random ? "true" : "false" },
      title: random ? `${m} ${v.toFixed(3)}: random weights, this score is noise` : `${m} ${v.toFixed(3)}`,
    },
    h("span", { class: "bar-label" }, m),
    h("span", { class: "bar-track" }, h("span", { class: "bar-fill", style: `width:${width.toFixed(1)}%` })),
    h("span", { class: "bar-value" }, fmtScore(v)),
    random ? h("span", { class: "random-tag" }, "random") : null);
  }));
}

function hitTile(hit, { moments = false } = {}) {
  const seg = moments && hit.segment ? hit.segment : null;
  const href = itemHref(hit.item_id, seg ? seg.start : 0);
  const tile = h("article", {
    class: "hit" + (seg ? " moment" : ""),
    dataset: {
      itemId: hit.item_id, rank: hit.rank, kind: hit.kind,
      start: seg ? seg.start : null, end: seg ? seg.end : null, segModality: seg ? seg.modality : null,
    },
  });
  const media = h("a", { class: "tile-media", href, "aria-label": `Open ${hit.title || hit.item_id}` },
    thumb(hit.thumb_url, hit.kind),
    h("span", { class: "kind-badge" }, icon(hit.kind === "audio" ? "audio" : "video"), hit.kind),
    seg ? h("span", { class: "time-badge" }, `${fmtTime(seg.start)}–${fmtTime(seg.end)}`) : null);
  tile.append(
    media,
    h("div", { class: "tile-body" },
      h("a", { class: "title", href, title: hit.title }, hit.title || "(untitled)"),
      h("div", { class: "score" }, h("span", { class: "muted" }, `#${hit.rank} · score `),
        h("strong", { class: "score-value" }, Number(hit.score).toFixed(3)),
        seg ? h("span", { class: "muted" }, ` · ${seg.modality} moment`) : null),
      bars(hit.scores),
      seg ? h("button", { type: "button", class: "play-moment", onclick: () => playInPlace(tile, hit) },
        icon("play"), `Play from ${fmtTime(seg.start)}`) : null));
  if (hit.title) state.titles.set(hit.item_id, hit.title);
  return tile;
}

/** Replace a moment tile's thumbnail with the media, playing from the segment start. */
function playInPlace(tile, hit) {
  const seg = hit.segment;
  const old = tile.querySelector(".tile-media");
  const el = mediaElement(hit.kind, hit.media_url, {
    cls: "moment-player", start: seg.start, end: seg.end, play: true,
  });
  pauseAllExcept(el);
  const box = h("div", { class: `tile-media playing kind-${hit.kind}` },
    hit.kind === "audio" ? thumb(hit.thumb_url, hit.kind) : null, el);
  old.replaceWith(box);
  const button = tile.querySelector(".play-moment");
  button.replaceWith(h("a", { class: "open-moment", href: itemHref(hit.item_id, seg.start) },
    "Open the item at this moment →"));
}

// -- search ------------------------------------------------------------------------------
function weights() {
  // untouched sliders send nothing: the server weighs random modalities 0 and balances the rest
  if (!state.weightsTouched) return null;
  return Object.fromEntries(MODALITIES.map((m) => [m, Number($(`#w-${m}`).value)]));
}

function defaultWeight(m) {
  return state.random.has(m) && MODALITIES.some((x) => !state.random.has(x)) ? "0" : "1";
}

function searchOptions() {
  const filters = {};
  if (state.kind) filters.kind = state.kind;
  if (state.tags.length) filters.tags = [...state.tags];
  const title = $("#title-filter").value.trim();
  if (title) filters.title_contains = title;
  return { k: Number($("#k").value) || 12, weights: weights(), filters, moments: $("#moments").checked };
}

/** Search by the text in the box; `force` false skips a search identical to the last one. */
function searchText(force = true) {
  const text = $("#q").value.trim();
  if (!text) {
    $("#q").focus();
    return;
  }
  const options = searchOptions();
  const key = JSON.stringify(["text", text, options]);
  if (!force && key === state.lastKey) return;
  state.last = { type: "text" };
  state.lastKey = key;
  $("#drop-file").hidden = true;
  return runSearch(`“${text}”`, "text",
    () => api("/api/search", { method: "POST", json: { text, ...options } }));
}

function searchFile(file, force = true) {
  const options = searchOptions();
  const key = JSON.stringify(["file", file.name, file.size, file.lastModified, options]);
  if (!force && key === state.lastKey) return;
  state.last = { type: "file", file };
  state.lastKey = key;
  const chip = $("#drop-file");
  chip.textContent = file.name;
  chip.hidden = false;
  return runSearch(`the file ${file.name}`, "file", () => {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("options", JSON.stringify(options));
    return api("/api/search/file", { method: "POST", form });
  });
}

let rerunTimer = null;

/** The last search again with the options now set (nothing when they did not change). */
function rerun() {
  clearTimeout(rerunTimer);
  if (!state.last) return;
  if (state.last.type === "file") searchFile(state.last.file, false);
  else searchText(false);
}

function rerunSoon() {
  clearTimeout(rerunTimer);
  rerunTimer = setTimeout(rerun, 250);
}

async function runSearch(label, source, request) {
  clearTimeout(rerunTimer);
  const seq = ++state.seq.search;
  const results = $("#results");
  const status = $("#results-status");
  results.dataset.state = "loading";
  results.dataset.source = source;
  results.setAttribute("aria-busy", "true");
  status.textContent = `Searching for ${label}…`;
  if (location.hash.startsWith("#/item/")) location.hash = "#/";
  try {
    const body = await request();
    if (seq !== state.seq.search) return;
    clearError();
    const moments = Boolean(body.moments);
    results.classList.toggle("moments", moments);
    results.replaceChildren(...body.hits.map((hit) => hitTile(hit, { moments })));
    renderNotes($("#notes"), body.notes);
    const n = body.hits.length;
    const what = moments ? (n === 1 ? "moment" : "moments") : (n === 1 ? "result" : "results");
    status.replaceChildren(n
      ? `${n} ${what} for ${label}`
      : `Nothing matches ${label} with these filters: loosen them, or try other words.`);
    results.dataset.state = "done";
  } catch (err) {
    if (seq !== state.seq.search) return;
    results.dataset.state = "error";
    status.textContent = `The search for ${label} failed (see the message above).`;
    showError(err, "Search");
  } finally {
    if (seq === state.seq.search) {
      results.removeAttribute("aria-busy");
      results.dataset.seq = String(seq); // answered searches, for scripts that wait on one
    }
  }
}

function renderNotes(ul, notes) {
  ul.replaceChildren(...(notes || []).map((n) => h("li", { class: "note" }, n)));
}

// -- filters and weights -------------------------------------------------------------------
function setKind(kind) {
  state.kind = kind;
  for (const chip of document.querySelectorAll("#filters .chip[data-kind]")) {
    chip.setAttribute("aria-pressed", String(chip.dataset.kind === kind));
  }
  rerunSoon();
}

function addTag(raw) {
  const tag = raw.trim().replace(/,$/, "").trim();
  if (!tag || state.tags.includes(tag) || state.tags.length >= 20) return;
  state.tags.push(tag);
  renderTags();
  rerunSoon();
}

function removeTag(tag) {
  state.tags = state.tags.filter((t) => t !== tag);
  renderTags();
  rerunSoon();
}

function renderTags() {
  $("#tag-chips").replaceChildren(...state.tags.map((tag) =>
    h("span", { class: "chip tag on", dataset: { tag } }, tag,
      h("button", { type: "button", class: "chip-x", "aria-label": `Remove the tag ${tag}`,
        onclick: () => removeTag(tag) }, "×"))));
}

function showWeight(m) {
  $(`#w-${m}-value`).textContent = Number($(`#w-${m}`).value).toFixed(2);
}

// -- routing and the item page ---------------------------------------------------------------
function route() {
  const m = location.hash.match(/^#\/item\/([0-9a-f]{8,64})(?:\?t=([0-9.]+))?$/);
  if (m) {
    showView("item");
    openItem(m[1], m[2] !== undefined ? Number(m[2]) : null);
  } else {
    showView("search");
    state.seq.item++;
    const player = $("#player");
    if (player) player.pause();
  }
}

function showView(name) {
  document.body.dataset.view = name;
  $("#view-search").hidden = name !== "search";
  $("#view-item").hidden = name !== "item";
  if (name === "item") window.scrollTo(0, 0);
}

async function openItem(id, t) {
  const seq = ++state.seq.item;
  const box = $("#item");
  box.dataset.state = "loading";
  box.dataset.itemId = id;
  box.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let item;
  try {
    item = await api(`/api/items/${id}`);
  } catch (err) {
    if (seq !== state.seq.item) return;
    box.dataset.state = "error";
    box.dataset.seq = String(seq);
    box.replaceChildren(h("p", { class: "muted" }, "This item could not be loaded."));
    showError(err, "Opening the item");
    return;
  }
  if (seq !== state.seq.item) return;
  state.titles.set(id, item.title);
  renderItem(box, item, t);
  box.dataset.state = "done";
  box.dataset.seq = String(seq); // answered item loads, for scripts that wait on one
  document.title = `${item.title} · mmrec`;
  loadSimilar(item, seq);
}

function renderItem(box, item, t) {
  const player = mediaElement(item.kind, item.media_url, {
    id: "player", cls: "player", start: t || 0, play: t !== null && t !== undefined,
  });
  const facts = [
    h("span", { class: "kind-badge static" }, icon(item.kind === "audio" ? "audio" : "video"), item.kind),
    item.duration ? h("span", {}, fmtTime(item.duration)) : null,
    ...(item.tags || []).map((tag) => h("button", {
      type: "button", class: "chip small", dataset: { tag }, title: `Filter the search by the tag ${tag}`,
      onclick: () => { addTag(tag); location.hash = "#/"; },
    }, tag)),
  ];
  const modalities = h("ul", { class: "modalities" }, Object.entries(item.modalities || {}).map(([m, info]) =>
    h("li", {
      class: "modality" + (info.present ? "" : " absent") + (info.random_weights ? " random" : ""),
      dataset: { modality: m, present: String(info.present), random: String(info.random_weights) },
    },
    h("span", { class: `dot dot-${m}` }), h("strong", {}, m), " ",
    info.present ? "embedded" : "none in this file",
    info.present && info.random_weights ? h("span", { class: "random-tag" }, "random weights") : null)));
  const playerBox = h("div", { class: `player-box kind-${item.kind}` },
    item.kind === "audio" ? thumb(item.thumb_url, item.kind, "poster") : null, player);
  box.replaceChildren(
    h("div", { class: "item-head" }, h("h1", { id: "item-title" }, item.title || "(untitled)"),
      h("div", { class: "facts" }, facts)),
    h("div", { class: "item-main" }, playerBox,
      h("div", { class: "item-side" },
        item.text ? h("p", { class: "item-text" }, item.text) : null,
        h("h3", {}, "Modalities"), modalities,
        h("p", { class: "muted small" }, "id ", h("code", {}, item.item_id)))),
    h("section", { class: "timeline-section" },
      h("h2", {}, "Segments ", h("span", { class: "muted small" }, "click one to play from its start")),
      timeline(item, player)),
    h("section", { class: "similar-section" }, h("h2", {}, "Similar items"),
      h("div", { id: "similar", class: "grid compact", dataset: { state: "loading" } },
        h("p", { class: "muted" }, "Loading…"))));
}

/** Greedy lanes: segments that overlap go on separate rows of their modality's track. */
function lanes(segments) {
  const rows = [];
  for (const s of [...segments].sort((a, b) => a.start - b.start || a.end - b.end)) {
    let row = rows.find((r) => r.end <= s.start + 1e-6);
    if (!row) {
      row = { end: 0, segs: [] };
      rows.push(row);
    }
    row.segs.push(s);
    row.end = s.end;
  }
  return rows.map((r) => r.segs);
}

function timeline(item, player) {
  const segs = item.segments || [];
  if (!segs.length) return h("p", { class: "muted" }, "This item has no segments.");
  const duration = item.duration || Math.max(...segs.map((s) => s.end)) || 1;
  const order = [...MODALITIES, ...new Set(segs.map((s) => s.modality).filter((m) => !MODALITIES.includes(m)))];
  const playhead = h("div", { class: "playhead", "aria-hidden": "true" });
  const buttons = [];
  let widest = 1;
  const tracks = order.flatMap((m) => {
    const mine = segs.filter((s) => s.modality === m);
    if (!mine.length) return [];
    const rows = lanes(mine);
    widest = Math.max(widest, ...rows.map((r) => r.length));
    return [h("div", { class: "track", dataset: { modality: m } },
      h("div", { class: "track-label" }, h("span", { class: `dot dot-${m}` }), m,
        state.random.has(m) ? h("span", { class: "random-tag" }, "random") : null),
      h("div", { class: "track-rows" }, rows.map((row) => h("div", { class: "lane" }, row.map((s) => {
        const left = (Math.max(0, s.start) / duration) * 100;
        const width = Math.max(0.5, ((Math.min(duration, s.end) - s.start) / duration) * 100);
        const b = h("button", {
          type: "button", class: "seg",
          dataset: { segId: s.seg_id, start: s.start, end: s.end, modality: s.modality },
          style: `left:${left.toFixed(3)}%;width:${width.toFixed(3)}%`,
          title: `${s.modality} ${fmtTime(s.start)}–${fmtTime(s.end)}${s.label ? " · " + s.label : ""}`,
          onclick: () => {
            pauseAllExcept(player);
            seekTo(player, s.start, true);
            for (const x of buttons) x.classList.toggle("active", x === b);
          },
        }, thumb(s.thumb_url, item.kind, "seg-thumb"),
        h("span", { class: "seg-time" }, fmtTime(s.start), s.label ? h("span", { class: "seg-label" }, ` ${s.label}`) : null));
        buttons.push(b);
        return b;
      })))))];
  });
  const ticks = [];
  const step = niceStep(duration);
  for (let x = 0; x <= duration + 1e-6; x += step) {
    ticks.push(h("span", { class: "tick", style: `left:${((x / duration) * 100).toFixed(3)}%` }, fmtTime(x)));
  }
  const inner = h("div", { class: "timeline-inner", style: `min-width:${Math.max(480, widest * 88)}px` },
    h("div", { class: "ruler" }, ticks), h("div", { class: "tracks" }, tracks, playhead));
  const move = () => {
    const at = Math.min(1, Math.max(0, player.currentTime / duration));
    playhead.style.left = `calc(var(--label-w) + (100% - var(--label-w)) * ${at.toFixed(4)})`;
    for (const b of buttons) {
      const s = Number(b.dataset.start);
      const e = Number(b.dataset.end);
      b.classList.toggle("now", player.currentTime >= s && player.currentTime < e && !player.paused);
    }
  };
  player.addEventListener("timeupdate", move);
  player.addEventListener("seeked", move);
  move();
  return h("div", { id: "timeline", class: "timeline", dataset: { duration } }, inner);
}

function niceStep(duration) {
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]) {
    if (duration / s <= 8) return s;
  }
  return 7200;
}

async function loadSimilar(item, seq) {
  const grid = () => $("#similar");
  try {
    const body = await api(`/api/items/${item.item_id}/similar?k=${SIMILAR_K}`);
    if (seq !== state.seq.item || !grid()) return;
    grid().replaceChildren(...(body.hits.length
      ? body.hits.map((hit) => hitTile(hit))
      : [h("p", { class: "muted" }, "No similar items.")]));
    grid().dataset.state = "done";
  } catch (err) {
    if (seq !== state.seq.item || !grid()) return;
    grid().dataset.state = "error";
    grid().replaceChildren(h("p", { class: "muted" }, "Similar items could not be loaded."));
    showError(err, "Similar items");
  }
}

// -- users and recommendations ---------------------------------------------------------------
async function loadUsers() {
  const select = $("#user-select");
  try {
    const users = await api("/api/users");
    const current = select.value;
    select.replaceChildren(h("option", { value: "" }, "— pick a user —"),
      ...users.map((u) => h("option", { value: u.user_id },
        `${u.user_id} (${u.interactions} event${u.interactions === 1 ? "" : "s"})`)));
    if (users.some((u) => u.user_id === current)) select.value = current;
    select.dataset.loaded = "true";
  } catch (err) {
    showError(err, "Loading users");
  }
}

function titleOf(id) {
  const known = state.titles.get(id);
  if (typeof known === "string") return Promise.resolve(known);
  if (known) return known;
  const p = api(`/api/items/${id}`).then((item) => {
    state.titles.set(id, item.title);
    return item.title;
  }, () => {
    state.titles.delete(id);
    return id.slice(0, 12);
  });
  state.titles.set(id, p);
  return p;
}

async function recommend() {
  const user = $("#user-select").value;
  const interests = $("#interests").value.trim();
  const list = $("#recs");
  const status = $("#recs-status");
  const seq = ++state.seq.recs;
  if (!user && !interests) {
    list.replaceChildren();
    list.dataset.state = "idle";
    $("#recs-notes").replaceChildren();
    status.textContent = "Pick a user or type interests.";
    list.dataset.seq = String(seq);
    return;
  }
  list.dataset.state = "loading";
  list.setAttribute("aria-busy", "true");
  try {
    const body = await api("/api/recommend", {
      method: "POST",
      json: { user: user || undefined, interests: interests || undefined, k: REC_K, explain: true },
    });
    if (seq !== state.seq.recs) return;
    list.replaceChildren(...body.recommendations.map((r) => recTile(r, Boolean(user))));
    renderNotes($("#recs-notes"), body.notes);
    const who = user ? `${user}` : "these interests";
    const history = user ? ` · ${body.history} event${body.history === 1 ? "" : "s"} of history` : "";
    status.textContent = body.recommendations.length
      ? `For ${who}${history}${user && interests ? " and the interests typed" : ""}`
      : `Nothing left to recommend for ${who}.`;
    list.dataset.state = "done";
    list.dataset.user = user;
  } catch (err) {
    if (seq !== state.seq.recs) return;
    list.dataset.state = "error";
    status.textContent = "No recommendations (see the message above).";
    showError(err, "Recommendations");
  } finally {
    if (seq === state.seq.recs) {
      list.removeAttribute("aria-busy");
      list.dataset.seq = String(seq);
    }
  }
}

const EVENT_BUTTONS = [["like", "Like"], ["skip", "Skip"], ["dislike", "Dislike"]];
const PAST = { like: "Liked", skip: "Skipped", dislike: "Disliked" };

function recTile(rec, canAct) {
  if (rec.title) state.titles.set(rec.item_id, rec.title);
  const href = itemHref(rec.item_id, 0);
  const because = rec.because && rec.because.item_id;
  const becauseLink = because
    ? h("a", { class: "because-link", href: itemHref(because, 0), dataset: { becauseId: because } }, "…")
    : null;
  if (because) titleOf(because).then((title) => { becauseLink.textContent = title; });
  const li = h("li", { class: "rec", dataset: { itemId: rec.item_id, rank: rec.rank } },
    h("a", { class: "rec-thumb", href, "aria-label": `Open ${rec.title}` }, thumb(rec.thumb_url, "")),
    h("div", { class: "rec-body" },
      h("a", { class: "title", href }, rec.title || rec.item_id),
      rec.explanation ? h("p", { class: "explanation" }, rec.explanation) : null,
      because ? h("p", { class: "because" }, "because of ", becauseLink) : null,
      bars(rec.scores, "bars mini"),
      h("div", { class: "actions" }, EVENT_BUTTONS.map(([event, label]) => h("button", {
        type: "button", class: `event-btn ev-${event}`, dataset: { event },
        disabled: !canAct, title: canAct ? `${label}: recorded for this user` : "pick a user to record events",
        onclick: () => sendEvent(li, rec, event),
      }, label)))));
  return li;
}

async function sendEvent(li, rec, event) {
  const user = $("#user-select").value;
  if (!user) return;
  li.classList.add("pending");
  for (const b of li.querySelectorAll("button")) b.disabled = true;
  try {
    await api("/api/events", { method: "POST", json: { user_id: user, item: rec.item_id, event } });
    toast(`${PAST[event]} “${rec.title}” for ${user}`);
    await Promise.all([recommend(), loadUsers()]);
  } catch (err) {
    li.classList.remove("pending");
    for (const b of li.querySelectorAll("button")) b.disabled = false;
    showError(err, "Recording the event");
  }
}

// -- stats and the random-weights label -------------------------------------------------------
async function loadStats() {
  try {
    const stats = await api("/api/stats");
    state.random = new Set(stats.random_modalities || []);
    const blocks = (stats.fusion || []).map((b) => b.modality).filter((m) => ALL_MODALITIES.includes(m));
    if (blocks.length) MODALITIES = blocks;
    for (const m of ALL_MODALITIES) {
      const slider = $(`.slider[data-modality="${m}"]`);
      if (slider) slider.hidden = !MODALITIES.includes(m);
      if (slider && !state.weightsTouched) {
        $(`#w-${m}`).value = defaultWeight(m);
        showWeight(m);
      }
    }
    for (const e of stats.extractors || []) if (e.random_weights) state.randomNames[e.modality] = e.preset || e.name;
    const parts = [`${stats.items} items`];
    if (stats.segments !== undefined) parts.push(`${stats.segments} segments`);
    if (stats.users !== undefined) parts.push(`${stats.users} users`);
    $("#catalog-stats").textContent = parts.join(" · ");
    renderRandomNote();
  } catch (err) {
    showError(err, "Loading the catalog's stats");
  }
}

function renderRandomNote() {
  const note = $("#random-note");
  const mods = MODALITIES.filter((m) => state.random.has(m));
  note.dataset.modalities = mods.join(",");
  for (const m of MODALITIES) {
    const slider = $(`.slider[data-modality="${m}"]`);
    slider.classList.toggle("random", state.random.has(m));
    const label = slider.querySelector("label");
    label.querySelector(".random-tag")?.remove();
    if (state.random.has(m)) label.append(h("span", { class: "random-tag", title: "random weights" }, "random"));
  }
  if (!mods.length) {
    note.hidden = true;
    return;
  }
  const names = mods.map((m) => `${m} (${state.randomNames[m] || "?"})`).join(" and ");
  const plural = mods.length > 1;
  note.replaceChildren(
    h("strong", {}, "Random weights."),
    ` The ${names} vector${plural ? "s" : ""} of this catalog come${plural ? "" : "s"} from models with random weights, `,
    `so ${plural ? "those scores are" : "that score is"} noise, not similarity, and weigh 0 unless you raise ${plural ? "their sliders" : "its slider"}. `,
    mods.length < MODALITIES.length ? "Trust the text scores; " : "",
    "ingest with real weights (see `mmrec extractors`) for meaningful ones.");
  note.hidden = false;
}

// -- wiring ----------------------------------------------------------------------------------
function wire() {
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    searchText();
  });
  $("#message-close").addEventListener("click", clearError);

  const drop = $("#drop");
  const fileInput = $("#file");
  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    if (file) searchFile(file);
  });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const ev of ["dragleave", "dragend"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) searchFile(file);
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      fileInput.click();
    }
  });
  // a file dropped anywhere else must not make the browser navigate away to it
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  for (const m of ALL_MODALITIES) {
    const slider = $(`#w-${m}`);
    slider.addEventListener("input", () => { state.weightsTouched = true; showWeight(m); });
    slider.addEventListener("change", rerunSoon);
  }
  $("#w-reset").addEventListener("click", () => {
    for (const m of MODALITIES) {
      $(`#w-${m}`).value = defaultWeight(m);
      showWeight(m);
    }
    state.weightsTouched = false;
    rerunSoon();
  });
  for (const chip of document.querySelectorAll("#filters .chip[data-kind]")) {
    chip.addEventListener("click", () => setKind(chip.dataset.kind));
  }
  const tagInput = $("#tag-input");
  tagInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === ",") {
      e.preventDefault();
      addTag(tagInput.value);
      tagInput.value = "";
    } else if (e.key === "Backspace" && !tagInput.value && state.tags.length) {
      removeTag(state.tags[state.tags.length - 1]);
    }
  });
  tagInput.addEventListener("blur", () => {
    if (tagInput.value.trim()) {
      addTag(tagInput.value);
      tagInput.value = "";
    }
  });
  const title = $("#title-filter");
  title.addEventListener("change", rerunSoon);
  title.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      rerun();
    }
  });
  $("#moments").addEventListener("change", rerunSoon);
  $("#k").addEventListener("change", rerunSoon);

  $("#user-select").addEventListener("change", recommend);
  $("#rec-btn").addEventListener("click", recommend);
  $("#interests").addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      recommend();
    }
  });

  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof HTMLElement && e.target.closest("input, textarea, select");
    if (e.key === "/" && !typing) {
      e.preventDefault();
      if (location.hash.startsWith("#/item/")) location.hash = "#/";
      $("#q").focus();
    } else if (e.key === "Escape") {
      clearError();
    }
  });
  window.addEventListener("hashchange", route);
}

async function init() {
  wire();
  await loadStats();
  route();
  await loadUsers();
  document.body.dataset.ready = "true";
}

init();
