// The farm console: one page that shows the whole farm as the node serving
// it sees it, and starts, stops or drains any node after a what-if.
//
// Updates come from the server-sent event stream GET /api/v1/stream
// ("status" every second, "table" when the owner table changes, "events"
// with new events). EventSource reconnects by itself; while it is down, or
// if the browser has none, the page polls /api/v1/status, /api/v1/table and
// /api/v1/events instead. Every state change is a same-origin fetch() POST
// carrying the session cookie.
//
// No framework and no build step: the DOM is built with textContent only
// (never innerHTML), so names and event text from the farm cannot inject
// markup, and the page runs under the console's strict CSP.
"use strict";

(function () {
  const BUCKETS = 4096;
  const GRID = 64;           // the map is GRID x GRID cells
  const CELL = 8;            // canvas pixels per cell (7 + a 1 px gap)
  const MAX_EVENTS = 1000;   // kept in memory
  const SHOW_EVENTS = 300;   // rendered
  const STALE_MS = 3500;     // no status for this long: poll meanwhile
  const POLL_MS = 1000;
  const FLASH_MS = 1400;     // changed map cells fade into their new colour

  // Stable colour per node id, the same in every console: a fixed palette
  // for small ids, golden-angle hues beyond.
  const PALETTE = ["#3b82c4", "#e8833a", "#2aa198", "#8e6bbf", "#d6568c", "#7aa33a",
    "#a0693f", "#d9b92c", "#3fb6d9", "#c2453d", "#5c6bc0", "#4caf7d"];
  const NOBODY = "#d6dbe2";

  function colourOf(id) {
    id = Number(id);
    if (!id) return NOBODY;
    if (id <= PALETTE.length) return PALETTE[id - 1];
    const hue = Math.round((id * 137.508) % 360);
    return "hsl(" + hue + ", 55%, 50%)";
  }

  // ---- small DOM helpers ----
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function swatch(id) {
    const s = el("span", "swatch");
    s.style.background = colourOf(id);
    s.setAttribute("aria-hidden", "true");
    return s;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function pct(fraction, digits) {
    if (!isFinite(fraction)) return "—";
    return (fraction * 100).toFixed(digits === undefined ? 1 : digits) + "%";
  }

  const numFmt = new Intl.NumberFormat("en-US");
  const fmtNum = (n) => numFmt.format(n);

  function parseTime(s) {
    if (!s) return null;
    const t = Date.parse(s);
    // Go's zero time (0001-01-01) means "never".
    if (isNaN(t) || t < Date.UTC(1971, 0, 1)) return null;
    return t;
  }

  function ago(ms) {
    if (ms < 0) ms = 0;
    if (ms < 1000) return (ms / 1000).toFixed(1) + " s ago";
    if (ms < 60000) return Math.round(ms / 1000) + " s ago";
    if (ms < 3600000) return Math.round(ms / 60000) + " min ago";
    if (ms < 86400000) return Math.round(ms / 3600000) + " h ago";
    return Math.round(ms / 86400000) + " d ago";
  }

  const two = (n) => String(n).padStart(2, "0");
  function clock(t) {
    const d = new Date(t);
    const now = new Date();
    const hms = two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
    if (d.toDateString() === now.toDateString()) return hms;
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + hms;
  }

  // ---- state ----
  const state = {
    status: null,
    owners: null,        // Uint8Array(BUCKETS) of the current table
    tableVersion: "",
    names: {},           // id (string) -> name, from the table
    events: [],          // oldest first
    bySeq: new Map(),    // seq -> time, to drop repeats after a reconnect
    lastSeq: 0,
    seenRendered: 0,     // highest seq rendered, to mark new rows
    filterNode: "",
    filterKind: "",
  };

  // ---- connection: SSE, with polling as the fallback ----
  const conn = { es: null, lastStatus: 0, polling: false, pollTimer: 0, retryTimer: 0, mode: "" };

  function setConn(mode, text) {
    if (conn.mode === mode && !text) return;
    conn.mode = mode;
    document.body.dataset.conn = mode;
    const labels = {
      connecting: "connecting…", live: "live", polling: "polling",
      reconnecting: "reconnecting…", offline: "no answer from the node",
    };
    $("conn-text").textContent = text || labels[mode] || mode;
  }

  function startStream() {
    clearTimeout(conn.retryTimer);
    if (!("EventSource" in window)) {
      startPolling();
      return;
    }
    if (conn.es) conn.es.close();
    const es = new EventSource("/api/v1/stream?after=" + state.lastSeq);
    conn.es = es;
    es.addEventListener("status", (e) => {
      conn.lastStatus = Date.now();
      stopPolling();
      setConn("live");
      onStatus(JSON.parse(e.data));
    });
    es.addEventListener("table", (e) => onTable(JSON.parse(e.data)));
    es.addEventListener("events", (e) => onEvents(JSON.parse(e.data)));
    es.addEventListener("error", () => {
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream (logged out, or no stream support
        // on the way): poll, which also finds out about a lost session,
        // and try the stream again later.
        if (conn.es === es) conn.es = null;
        startPolling();
        conn.retryTimer = setTimeout(startStream, 15000);
      } else if (!conn.polling) {
        setConn("reconnecting");
      }
    });
  }

  // The watchdog polls while the stream is silent (EventSource retries can
  // take a few seconds), so the page never shows stale data for long.
  setInterval(() => {
    if (!conn.polling && Date.now() - conn.lastStatus > STALE_MS) startPolling();
    if (state.status) renderAges();
  }, 1000);

  function startPolling() {
    if (conn.polling) return;
    conn.polling = true;
    pollOnce();
  }

  function stopPolling() {
    if (!conn.polling) return;
    conn.polling = false;
    clearTimeout(conn.pollTimer);
  }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
    if (r.status === 401) {
      window.location.assign("/login");
      throw new Error("session expired");
    }
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  async function pollOnce() {
    if (!conn.polling) return;
    try {
      const st = await getJSON("/api/v1/status");
      if (!conn.polling) return;
      conn.lastStatus = Date.now();
      setConn("polling");
      if (st.table_version !== state.tableVersion) onTable(await getJSON("/api/v1/table"));
      onStatus(st);
      const ev = await getJSON("/api/v1/events?limit=500&after=" + state.lastSeq);
      onEvents(ev.events || []);
    } catch (err) {
      setConn("offline", state.status ? "no answer since " + clock(conn.lastStatus) : "no answer from the node");
    }
    if (conn.polling) conn.pollTimer = setTimeout(pollOnce, POLL_MS);
  }

  // ---- status ----
  function onStatus(st) {
    st.nodes = st.nodes || [];
    state.status = st;
    renderHeader(st);
    renderWarnings(st.warnings || []);
    renderSummary(st);
    renderNodes(st);
    renderLegend();
    updateFilterOptions();
  }

  function renderHeader(st) {
    const p = $("seen-from");
    clear(p);
    p.append("seen from ");
    p.append(el("strong", "", st.self || "?"));
    const t = parseTime(st.time);
    if (t) p.append(el("span", "seen-at", " · " + clock(t)));
  }

  function renderWarnings(ws) {
    const box = $("warnings");
    clear(box);
    box.hidden = ws.length === 0;
    for (const w of ws) {
      const row = el("div", "warning");
      row.dataset.kind = w.kind || "";
      row.dataset.node = w.node || "";
      row.append(el("span", "warning-tag", w.kind || "warning"));
      const text = el("span", "warning-text");
      // Name the node in bold, once: the text often starts with it.
      let body = String(w.text || "");
      if (w.node) {
        text.append(el("strong", "", w.node));
        if (body.startsWith(w.node)) body = body.slice(w.node.length);
        else body = ": " + body;
      }
      text.append(body);
      row.append(text);
      box.append(row);
    }
  }

  function tile(id, cls, value, note) {
    const t = $("tile-" + id);
    t.classList.remove("good", "warn", "bad");
    if (cls) t.classList.add(cls);
    $(id + "-value").textContent = value;
    $(id + "-note").textContent = note || "";
    $(id + "-note").title = note || "";
  }

  function renderSummary(st) {
    tile("quorum", st.quorum ? "good" : "bad", st.quorum ? "yes" : "NO",
      st.healthy + " healthy of " + st.known + " known" + (st.quorum ? "" : ": this side serves nobody"));
    if (st.witness) {
      tile("witness", st.witness.reachable ? "good" : "warn", st.witness.reachable ? "reachable" : "unreachable", st.witness.address);
    } else {
      tile("witness", "", "none", "no tie-breaker configured");
    }
    const up = st.nodes.filter((n) => n.state === "up").length;
    const down = st.nodes.filter((n) => n.state === "down" || n.state === "failed").length;
    const counts = {};
    for (const n of st.nodes) counts[n.state] = (counts[n.state] || 0) + 1;
    const note = Object.keys(counts).sort().map((k) => counts[k] + " " + k).join(", ");
    tile("nodes", up === st.nodes.length && up > 0 ? "good" : (up === 0 || down > 0 ? "bad" : "warn"),
      up + " / " + st.nodes.length, note);
    const total = st.buckets || BUCKETS;
    const served = st.nodes.reduce((s, n) => s + (n.buckets || 0), 0);
    tile("served", served === total ? "good" : (served === 0 ? "bad" : "warn"), pct(served / total, 0),
      fmtNum(served) + " of " + fmtNum(total) + " buckets");
  }

  // ---- node cards (kept per node, updated in place so clicks are not lost) ----
  const cards = new Map();

  function renderNodes(st) {
    const box = $("nodes");
    if (!st.nodes.length) {
      clear(box);
      box.append(el("p", "empty", "This node knows no farm members yet."));
      cards.clear();
      return;
    }
    const empty = box.querySelector(".empty");
    if (empty) empty.remove();
    const names = new Set(st.nodes.map((n) => n.name));
    for (const [name, c] of cards) {
      if (!names.has(name)) {
        c.root.remove();
        cards.delete(name);
      }
    }
    st.nodes.forEach((n, i) => {
      let c = cards.get(n.name);
      if (!c) {
        c = makeCard(n.name);
        cards.set(n.name, c);
      }
      if (box.children[i] !== c.root) box.insertBefore(c.root, box.children[i] || null);
      updateCard(c, n, st);
    });
  }

  function makeCard(name) {
    const c = {};
    c.root = el("article", "node");
    c.root.dataset.node = name;
    const head = el("div", "node-head");
    const title = el("div", "node-title");
    c.nameLine = el("h3", "node-name");
    c.swatch = swatch(0);
    c.nameText = el("span", "node-name-text", name);
    c.selfBadge = el("span", "badge badge-self", "this node");
    c.suspectBadge = el("span", "badge badge-suspect", "suspect");
    c.suspectBadge.title = "The failure detector doubts this node: it missed gossip probes.";
    c.nameLine.append(c.swatch, c.nameText, c.selfBadge, c.suspectBadge);
    c.addr = el("p", "node-addr");
    title.append(c.nameLine, c.addr);
    c.pill = el("span", "state-pill");
    head.append(title, c.pill);

    const share = el("div", "node-share");
    const line = el("div", "share-line");
    c.pct = el("span", "share-pct");
    c.buckets = el("span", "share-buckets");
    line.append(c.pct, c.buckets);
    const bar = el("div", "bar");
    c.barFill = el("div", "bar-fill");
    bar.append(c.barFill);
    share.append(line, bar);

    const facts = el("dl", "facts");
    const fact = (label) => {
      const d = el("div");
      d.append(el("dt", "", label));
      const dd = el("dd");
      d.append(dd);
      facts.append(d);
      return dd;
    };
    c.weight = fact("Weight");
    c.flows = fact("Flows");
    c.id = fact("Id");

    const status = el("div", "node-status");
    c.serving = el("p", "serving");
    const wi = el("button", "link-btn", "what if…");
    wi.type = "button";
    wi.dataset.whatif = name;
    wi.title = "What a weight change, stop or drain of " + name + " would move (changes nothing)";
    wi.addEventListener("click", () => openWhatIf(name));
    status.append(c.serving, wi);
    c.checkers = el("ul", "checkers");
    c.seen = el("div", "node-seen");

    const actions = el("div", "node-actions");
    c.btn = {};
    for (const [a, label, cls] of [["start", "Start", "btn-go"], ["drain", "Drain", "btn-warn"], ["stop", "Stop", "btn-danger"]]) {
      const b = el("button", "btn btn-small", label);
      b.type = "button";
      b.dataset.action = a;
      b.dataset.node = name;
      b.dataset.tone = cls;
      b.addEventListener("click", () => confirmNodeAction(name, a));
      c.btn[a] = b;
      actions.append(b);
    }
    c.root.append(head, share, facts, status, c.checkers, c.seen, actions);
    return c;
  }

  const STATES = ["up", "draining", "stopped", "failed", "down"];
  const STATE_TEXT = {
    up: "Up: serves its share",
    draining: "Draining: takes no new connection, finishes its own, then stops",
    stopped: "Stopped: out of the farm, serves nobody",
    failed: "Failed: its application is down; the others serve its share",
    down: "Down: unreachable; the others serve its share",
  };

  function updateCard(c, n, st) {
    const r = c.root;
    for (const s of STATES) r.classList.toggle("state-" + s, n.state === s);
    r.classList.toggle("is-self", !!n.self);
    r.classList.toggle("is-suspect", !!n.suspect);
    r.dataset.state = n.state;
    r.dataset.buckets = String(n.buckets || 0);
    r.dataset.id = String(n.id);
    c.swatch.style.background = colourOf(n.id);
    c.selfBadge.hidden = !n.self;
    c.suspectBadge.hidden = !n.suspect;
    c.addr.textContent = n.addr || "";
    c.pill.textContent = n.state;
    c.pill.title = STATE_TEXT[n.state] || n.state;
    c.pct.textContent = pct(n.share || 0);
    c.buckets.textContent = fmtNum(n.buckets || 0) + " bucket" + (n.buckets === 1 ? "" : "s");
    c.barFill.style.width = Math.min(100, (n.share || 0) * 100).toFixed(2) + "%";
    c.weight.textContent = String(n.weight);
    c.weight.title = n.weight === 0 ? "standby: serves only when no weighted node can" : "share relative to the others";
    c.id.textContent = String(n.id);

    const d = n.detail;
    if (!d) {
      setText(c.flows, "?", "unknown", "The node did not answer for its flows.");
      c.serving.className = "serving unknown";
      c.serving.textContent = n.state === "down" ? "unreachable" : "no answer from the node";
      clear(c.checkers);
      c.checkers.append(el("li", "none", "checkers: no answer"));
      clear(c.seen);
    } else {
      if (d.flows < 0) setText(c.flows, "unknown", "unknown", "This node could not count its flows.");
      else setText(c.flows, fmtNum(d.flows), "", "established flows to the VIPs");
      c.serving.className = "serving " + (d.serving ? "yes" : "no");
      let s = d.serving ? "serving" : "not serving" + (d.why ? ": " + d.why : "");
      if (d.phase && d.phase !== "running" && d.phase !== "idle" && d.phase !== "serving") s += " · " + d.phase;
      c.serving.textContent = s;
      renderCheckers(c, d, st);
      renderSeen(c, d);
    }
    c.root.dataset.serving = d ? String(!!d.serving) : "";
    c.root.dataset.flows = d ? String(d.flows) : "";

    // What each button would do in this state; a down node cannot be reached.
    const reach = n.state !== "down";
    c.btn.start.disabled = !reach || n.state === "up";
    c.btn.drain.disabled = !reach || n.state !== "up";
    c.btn.stop.disabled = !reach || n.state === "stopped";
    for (const b of Object.values(c.btn)) {
      b.classList.toggle(b.dataset.tone, !b.disabled);
      b.title = reach ? "" : n.name + " is unreachable";
    }
  }

  // The frame-delivery self-test's counters: new connections to each VIP
  // this node saw before its own verdict (every node should see them all).
  function renderSeen(c, d) {
    clear(c.seen);
    const vips = d.seen ? Object.keys(d.seen).sort() : [];
    if (!vips.length) return;
    c.seen.title = "New connections to each VIP this node saw, before its own verdict: every node should see all of them (frame-delivery self-test).";
    c.seen.append(el("span", "seen-label", "seen"));
    for (const v of vips) {
      const item = el("span", "seen-item", v + " ");
      item.append(el("b", "", fmtNum(d.seen[v])));
      c.seen.append(item);
    }
  }

  function setText(node, text, cls, title) {
    node.textContent = text;
    node.className = cls || "";
    node.title = title || "";
  }

  function renderCheckers(c, d, st) {
    clear(c.checkers);
    const list = d.checkers || [];
    if (!list.length) {
      c.checkers.append(el("li", "none", "no checkers"));
      return;
    }
    const now = parseTime(st.time) || Date.now();
    for (const ch of list) {
      const li = el("li", "checker " + String(ch.state || "").toLowerCase());
      li.dataset.checker = ch.name;
      li.append(el("span", "checker-dot"));
      const name = el("span", "checker-name");
      name.append(ch.name + " ");
      name.append(el("span", "checker-type", ch.type));
      name.append(" ");
      name.append(el("span", "checker-state", ch.state));
      li.append(name);
      const t = parseTime(ch.last_check);
      const when = el("span", "checker-when", t ? ago(now - t) : "never");
      if (t) {
        when.dataset.at = String(t);
        when.title = new Date(t).toLocaleString();
      }
      li.append(when);
      if (ch.last_error) li.append(el("span", "checker-error", ch.last_error));
      c.checkers.append(li);
    }
  }

  // Checker ages move every second even between updates.
  function renderAges() {
    const st = state.status;
    const serverNow = (parseTime(st.time) || Date.now()) + (Date.now() - conn.lastStatus);
    for (const w of document.querySelectorAll(".checker-when[data-at]")) {
      w.textContent = ago(serverNow - Number(w.dataset.at));
    }
  }

  // ---- bucket map ----
  const canvas = $("bucket-map");
  const ctx = canvas.getContext("2d");
  const map = { prev: null, changedAt: 0, changed: null, anim: 0, hover: -1, versions: 0 };
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

  function b64bytes(s) {
    const bin = atob(s || "");
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function onTable(t) {
    const owners = b64bytes(t.owners);
    state.names = t.names || {};
    if (t.version === state.tableVersion && state.owners) {
      renderLegend();
      return;
    }
    const old = state.owners;
    state.owners = owners;
    state.tableVersion = t.version;
    map.versions++;
    canvas.dataset.version = t.version || "";
    canvas.dataset.updates = String(map.versions);
    $("map-version").textContent = t.version ? "table " + String(t.version).slice(0, 10) : "";
    if (old && old.length === owners.length) {
      const changed = [];
      for (let i = 0; i < owners.length; i++) if (old[i] !== owners[i]) changed.push(i);
      canvas.dataset.changed = String(changed.length);
      if (changed.length) {
        map.prev = old;
        map.changed = changed;
        map.changedAt = performance.now();
        const mc = $("map-change");
        mc.textContent = fmtNum(changed.length) + " bucket" + (changed.length === 1 ? "" : "s") + " changed owner at " + clock(Date.now()) + " (" + pct(changed.length / owners.length) + ")";
        mc.classList.add("fresh");
        setTimeout(() => mc.classList.remove("fresh"), 4000);
        if (!map.anim && !reducedMotion.matches) map.anim = requestAnimationFrame(animate);
      }
    } else {
      canvas.dataset.changed = "0";
    }
    drawMap(1);
    renderLegend();
  }

  const rgbCache = new Map();
  function rgb(colour) {
    let v = rgbCache.get(colour);
    if (!v) {
      // Let the canvas parse any CSS colour (hex or hsl) once.
      ctx.fillStyle = "#000";
      ctx.fillStyle = colour;
      const s = ctx.fillStyle;
      if (s[0] === "#") v = [parseInt(s.slice(1, 3), 16), parseInt(s.slice(3, 5), 16), parseInt(s.slice(5, 7), 16)];
      else v = s.replace(/[^\d,.]/g, "").split(",").slice(0, 3).map(Number);
      rgbCache.set(colour, v);
    }
    return v;
  }

  function cellXY(i) {
    return [(i % GRID) * CELL, Math.floor(i / GRID) * CELL];
  }

  // drawMap paints every cell; cells that just changed blend from their old
  // owner's colour to the new one through white (progress 0..1).
  function drawMap(progress) {
    const o = state.owners;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!o) return;
    // Paint by colour to keep fillStyle changes few.
    const byOwner = new Map();
    for (let i = 0; i < o.length && i < BUCKETS; i++) {
      let l = byOwner.get(o[i]);
      if (!l) byOwner.set(o[i], (l = []));
      l.push(i);
    }
    for (const [id, cells] of byOwner) {
      ctx.fillStyle = colourOf(id);
      for (const i of cells) {
        const [x, y] = cellXY(i);
        ctx.fillRect(x, y, CELL - 1, CELL - 1);
      }
    }
    if (progress < 1 && map.changed && map.prev) {
      const p = progress;
      const glow = Math.sin(Math.min(1, p * 1.6) * Math.PI); // 0 -> 1 -> 0, early
      for (const i of map.changed) {
        const a = rgb(colourOf(map.prev[i]));
        const b = rgb(colourOf(o[i]));
        const mix = (k) => Math.round((a[k] + (b[k] - a[k]) * p) * (1 - glow * 0.6) + 255 * glow * 0.6);
        ctx.fillStyle = "rgb(" + mix(0) + "," + mix(1) + "," + mix(2) + ")";
        const [x, y] = cellXY(i);
        ctx.fillRect(x, y, CELL - 1, CELL - 1);
      }
    }
    if (map.hover >= 0) {
      const [x, y] = cellXY(map.hover);
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2;
      ctx.strokeRect(x - 1, y - 1, CELL + 1, CELL + 1);
    }
  }

  function animate(now) {
    const p = Math.min(1, (now - map.changedAt) / FLASH_MS);
    drawMap(p);
    if (p < 1) {
      map.anim = requestAnimationFrame(animate);
    } else {
      map.anim = 0;
      map.changed = null;
      map.prev = null;
    }
  }

  function cellAt(ev) {
    const r = canvas.getBoundingClientRect();
    const x = Math.floor(((ev.clientX - r.left) / r.width) * GRID);
    const y = Math.floor(((ev.clientY - r.top) / r.height) * GRID);
    if (x < 0 || y < 0 || x >= GRID || y >= GRID) return -1;
    return y * GRID + x;
  }

  function showCell(i) {
    map.hover = i;
    const info = $("map-info");
    clear(info);
    if (i < 0 || !state.owners) {
      info.textContent = "Each cell is one of 4096 buckets, coloured by the node that serves it. Point at a cell to see its owner.";
    } else {
      const id = state.owners[i];
      info.append("bucket ");
      info.append(el("strong", "", String(i)));
      info.append(" is served by ");
      info.append(el("strong", "", id ? (state.names[id] || "node " + id) : "nobody"));
    }
    if (!map.anim) drawMap(1);
  }

  canvas.addEventListener("mousemove", (e) => showCell(cellAt(e)));
  canvas.addEventListener("mouseleave", () => showCell(-1));
  canvas.addEventListener("click", (e) => showCell(cellAt(e)));

  function renderLegend() {
    const ul = $("legend");
    clear(ul);
    if (!state.owners) return;
    const count = new Map();
    for (const id of state.owners) count.set(id, (count.get(id) || 0) + 1);
    const ids = new Set(Object.keys(state.names).map(Number));
    if (state.status) for (const n of state.status.nodes) ids.add(Number(n.id));
    for (const id of count.keys()) ids.add(id);
    const sorted = [...ids].filter((id) => id !== 0).sort((a, b) => a - b);
    if (count.get(0)) sorted.push(0);
    for (const id of sorted) {
      const li = el("li");
      li.dataset.id = String(id);
      li.append(swatch(id));
      li.append(el("span", "", id ? (state.names[id] || nodeNameOf(id) || "node " + id) : "nobody"));
      const n = count.get(id) || 0;
      li.append(el("span", "legend-count", fmtNum(n) + " · " + pct(n / state.owners.length)));
      ul.append(li);
    }
  }

  function nodeNameOf(id) {
    if (!state.status) return "";
    const n = state.status.nodes.find((x) => Number(x.id) === Number(id));
    return n ? n.name : "";
  }

  function idOfName(name) {
    if (state.status) {
      const n = state.status.nodes.find((x) => x.name === name);
      if (n) return n.id;
    }
    for (const [id, nm] of Object.entries(state.names)) if (nm === name) return Number(id);
    return 0;
  }

  // ---- events ----
  function kindOf(what) {
    const i = String(what).indexOf(".");
    return i < 0 ? String(what) : String(what).slice(0, i);
  }

  function onEvents(evs) {
    if (!Array.isArray(evs) || !evs.length) return;
    let added = 0;
    for (const e of evs) {
      const seen = state.bySeq.get(e.seq);
      if (seen !== undefined) {
        if (seen === e.time) continue; // a repeat after a reconnect
        // Same number, another event: the agent restarted and numbers
        // from 1 again. Start the timeline over.
        state.events = [];
        state.bySeq.clear();
        state.seenRendered = 0;
      }
      state.bySeq.set(e.seq, e.time);
      state.events.push(e);
      added++;
    }
    if (!added) return;
    state.events.sort((a, b) => a.seq - b.seq);
    if (state.events.length > MAX_EVENTS) {
      for (const e of state.events.splice(0, state.events.length - MAX_EVENTS)) state.bySeq.delete(e.seq);
    }
    state.lastSeq = state.events.length ? state.events[state.events.length - 1].seq : 0;
    updateFilterOptions();
    renderEvents();
  }

  function fillSelect(sel, values, current) {
    const have = [...sel.options].slice(1).map((o) => o.value);
    if (have.length === values.length && have.every((v, i) => v === values[i])) return;
    while (sel.options.length > 1) sel.remove(1);
    for (const v of values) {
      const o = el("option", "", v);
      o.value = v;
      sel.append(o);
    }
    sel.value = values.includes(current) ? current : "";
  }

  function updateFilterOptions() {
    const nodes = new Set(state.events.map((e) => e.node).filter(Boolean));
    if (state.status) for (const n of state.status.nodes) nodes.add(n.name);
    const kinds = new Set(state.events.map((e) => kindOf(e.what)));
    for (const k of ["node", "operator", "checker", "drain", "delivery"]) kinds.add(k);
    fillSelect($("filter-node"), [...nodes].sort(), state.filterNode);
    fillSelect($("filter-kind"), [...kinds].sort(), state.filterKind);
  }

  const BAD = /(fail|down|lost|error|low|suspect|quorum|timeout|refused)/;

  function renderEvents() {
    const ol = $("events");
    const shown = state.events.filter((e) =>
      (!state.filterNode || e.node === state.filterNode) &&
      (!state.filterKind || kindOf(e.what) === state.filterKind));
    clear(ol);
    const total = state.events.length;
    $("events-count").textContent = shown.length === total ? fmtNum(total) + " events" : fmtNum(shown.length) + " of " + fmtNum(total);
    if (!shown.length) {
      ol.append(el("li", "empty", total ? "No event matches the filters." : "No events yet."));
      return;
    }
    const first = state.seenRendered === 0;
    for (let k = shown.length - 1; k >= 0 && shown.length - k <= SHOW_EVENTS; k--) {
      const e = shown[k];
      const li = el("li", "event");
      li.dataset.seq = String(e.seq);
      li.dataset.kind = kindOf(e.what);
      li.dataset.what = e.what;
      li.dataset.node = e.node || "";
      if (!first && e.seq > state.seenRendered) li.classList.add("new");
      const t = parseTime(e.time);
      const time = el("time", "event-time", t ? clock(t) : "");
      if (t) {
        time.dateTime = e.time;
        time.title = new Date(t).toLocaleString();
      }
      const node = el("span", "event-node");
      if (e.node) {
        node.append(swatch(idOfName(e.node)));
        node.append(e.node);
      }
      const what = el("span", "event-what kind-" + kindOf(e.what), e.what);
      if (BAD.test(e.what)) what.classList.add("bad");
      li.append(time, node, what, el("span", "event-why", e.why || ""));
      if (e.detail && Object.keys(e.detail).length) {
        li.append(el("span", "event-detail", Object.keys(e.detail).sort().map((k2) => k2 + "=" + e.detail[k2]).join("  ")));
      }
      ol.append(li);
    }
    state.seenRendered = Math.max(state.seenRendered, state.lastSeq);
  }

  $("filter-node").addEventListener("change", (e) => {
    state.filterNode = e.target.value;
    renderEvents();
  });
  $("filter-kind").addEventListener("change", (e) => {
    state.filterKind = e.target.value;
    renderEvents();
  });

  // ---- requests that change things ----
  async function post(url, body) {
    const opt = { method: "POST", credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      opt.headers["Content-Type"] = "application/json";
      opt.body = JSON.stringify(body);
    }
    const r = await fetch(url, opt);
    if (r.status === 401) {
      window.location.assign("/login");
      throw new Error("your session has expired: log in again");
    }
    let data = null;
    try {
      data = await r.json();
    } catch (_) {
      data = null;
    }
    if (!r.ok) {
      const err = new Error((data && data.error) || "HTTP " + r.status);
      err.data = data;
      err.status = r.status;
      throw err;
    }
    return data;
  }

  function toast(text, isError) {
    const t = el("div", "toast" + (isError ? " error" : ""), text);
    t.setAttribute("role", isError ? "alert" : "status");
    $("toasts").append(t);
    setTimeout(() => t.remove(), isError ? 9000 : 5000);
  }

  // ---- what-if rendering (shared by both dialogs) ----
  function nameCell(name, idFor) {
    const s = el("span", "move-end");
    if (!name) {
      s.append(el("span", "nobody", "nobody"));
      return s;
    }
    s.append(swatch(idFor(name)));
    s.append(name);
    return s;
  }

  function renderPlan(box, w) {
    clear(box);
    // A node being added is not in the farm yet: its id is in the change.
    const idFor = (n) => idOfName(n) || (w.change && w.change.action === "add" && w.change.node === n ? w.change.id : 0);
    box.dataset.moved = String(w.moved || 0);
    box.dataset.summary = "moves " + (w.moved || 0) + " buckets (" + pct(w.share || 0) + "): " +
      (w.moves || []).map((m) => (m.from || "nobody") + " -> " + (m.to || "nobody") + " " + m.buckets).join(", ");
    const head = el("p", "plan-headline");
    if (!w.moved) {
      head.classList.add("none");
      head.textContent = "Moves no bucket: nothing changes for any client.";
      box.append(head);
    } else {
      head.append("Moves ");
      head.append(el("strong", "", fmtNum(w.moved) + " bucket" + (w.moved === 1 ? "" : "s")));
      head.append(" (" + pct(w.share) + " of the clients):");
      box.append(head);
      const ul = el("ul", "moves");
      for (const m of w.moves || []) {
        const li = el("li", "move");
        li.append(nameCell(m.from, idFor), el("span", "move-arrow", "→"), nameCell(m.to, idFor), el("span", "move-n", fmtNum(m.buckets)));
        ul.append(li);
      }
      box.append(ul);
    }
    const names = new Set([...Object.keys(w.before || {}), ...Object.keys(w.after || {})]);
    if (!names.size) return;
    const tbl = el("table", "shares");
    const thead = el("thead");
    const hr = el("tr");
    hr.append(el("th", "", "node"), el("th", "num", "before"), el("th", "num", "after"), el("th", "num", "change"));
    thead.append(hr);
    tbl.append(thead);
    const tb = el("tbody");
    for (const n of [...names].sort()) {
      const b = (w.before || {})[n] || 0;
      const a = (w.after || {})[n] || 0;
      const tr = el("tr");
      const c0 = el("td");
      const cn = el("span", "cell-node");
      cn.append(swatch(idFor(n)), n);
      c0.append(cn);
      const d = a - b;
      const delta = el("td", "num " + (d > 0 ? "delta-up" : d < 0 ? "delta-down" : ""), d === 0 ? "—" : (d > 0 ? "+" : "−") + fmtNum(Math.abs(d)));
      tr.append(c0, shareCell(b), shareCell(a), delta);
      tb.append(tr);
    }
    tbl.append(tb);
    box.append(tbl);
  }

  function shareCell(n) {
    const td = el("td", "num", fmtNum(n));
    td.append(el("span", "pct", pct(n / BUCKETS)));
    return td;
  }

  // ---- the confirmation dialog ----
  const dlg = $("confirm");
  const confirmState = { run: null, seq: 0 };

  const ACTION_TEXT = {
    start: (n) => n + " joins the farm again and takes back its share of the buckets.",
    drain: (n) => n + " takes no new connection; its established connections finish on it, then it stops. The others take its share now.",
    stop: (n) => n + " leaves the farm: the others take its share now and it serves no new connection.",
  };
  const TONE = { start: "btn-go", drain: "btn-warn", stop: "btn-danger" };
  const VERB = { start: "Start", drain: "Drain", stop: "Stop" };

  function openConfirm(title, lead, okText, tone, run) {
    confirmState.seq++;
    $("confirm-title").textContent = title;
    $("confirm-what").textContent = lead;
    clear($("confirm-plan"));
    const err = $("confirm-error");
    err.hidden = true;
    err.textContent = "";
    const ok = $("confirm-ok");
    ok.textContent = okText;
    ok.className = "btn " + tone;
    ok.disabled = true; // until the what-if is shown (setReady)
    confirmState.run = run;
    dlg.dataset.ready = "false";
    if (!dlg.open) dlg.showModal();
    // Enter must not confirm by accident: the focus starts on Cancel.
    $("confirm-cancel").focus();
    return confirmState.seq;
  }

  function setReady() {
    $("confirm-ok").disabled = false;
    dlg.dataset.ready = "true";
  }

  async function confirmNodeAction(node, action) {
    const seq = openConfirm(VERB[action] + " " + node + "?", ACTION_TEXT[action](node), VERB[action] + " " + node, TONE[action],
      () => post("/api/v1/nodes/" + encodeURIComponent(node) + "/" + action).then(() => node + ": " + action + " requested"));
    dlg.dataset.node = node;
    dlg.dataset.action = action;
    const box = $("confirm-plan");
    box.append(el("p", "plan-loading", "Computing what would move…"));
    try {
      const w = await post("/api/v1/plan", { node: node, action: action });
      if (seq !== confirmState.seq) return;
      renderPlan(box, w);
    } catch (err) {
      if (seq !== confirmState.seq) return;
      clear(box);
      box.append(el("p", "plan-loading", "The what-if is not available: " + err.message));
    }
    setReady();
  }

  function confirmFarmAction(action) {
    const st = state.status;
    const nodes = st ? st.nodes : [];
    const reach = nodes.filter((n) => n.state !== "down");
    const affected = reach.filter((n) => action === "start" ? n.state !== "up" : action === "drain" ? n.state === "up" : n.state !== "stopped");
    const lead = {
      start: "Every reachable node that is not up starts and takes its share.",
      drain: "Every node takes no new connection; each finishes its established ones, then stops. The farm will serve no new client.",
      stop: "Every node leaves the farm now. The farm will serve no new client.",
    }[action];
    openConfirm(VERB[action] + " the whole farm?", lead, VERB[action] + " all " + reach.length + " nodes", TONE[action],
      () => post("/api/v1/farm/" + action).then((r) => farmResult(action, r)).catch((err) => {
        if (err.data && err.data.results) throw new Error(farmResult(action, err.data));
        throw err;
      }));
    dlg.dataset.node = "";
    dlg.dataset.action = "farm-" + action;
    const box = $("confirm-plan");
    const served = nodes.reduce((s, n) => s + (n.buckets || 0), 0);
    const head = el("p", "plan-headline");
    if (action === "start") {
      head.textContent = affected.length ? "Starts " + affected.map((n) => n.name + " (" + n.state + ")").join(", ") + "." : "Every reachable node is up already: nothing changes.";
      if (!affected.length) head.classList.add("none");
    } else {
      head.append("Moves ");
      head.append(el("strong", "", fmtNum(served) + " buckets"));
      head.append(" (" + pct(served / BUCKETS) + ") to nobody: " + nodes.filter((n) => n.buckets).map((n) => n.name + " → nobody " + fmtNum(n.buckets)).join(", "));
    }
    box.append(head);
    const down = nodes.filter((n) => n.state === "down");
    if (down.length) box.append(el("p", "plan-loading", "Skipped, unreachable: " + down.map((n) => n.name).join(", ") + "."));
    setReady();
  }

  function farmResult(action, r) {
    const res = (r && r.results) || {};
    return "farm " + action + ": " + Object.keys(res).sort().map((k) => k + " " + res[k]).join(", ");
  }

  $("confirm-cancel").addEventListener("click", () => dlg.close());
  dlg.addEventListener("close", () => {
    confirmState.seq++;
    confirmState.run = null;
  });
  $("confirm-ok").addEventListener("click", async () => {
    const run = confirmState.run;
    if (!run) return;
    const ok = $("confirm-ok");
    const seq = confirmState.seq;
    ok.disabled = true;
    ok.classList.add("busy");
    $("confirm-cancel").disabled = true;
    try {
      const msg = await run();
      if (seq === confirmState.seq) dlg.close();
      toast(msg);
    } catch (err) {
      const e = $("confirm-error");
      e.textContent = "Failed: " + err.message;
      e.hidden = false;
      toast("Failed: " + err.message, true);
    } finally {
      ok.disabled = false;
      ok.classList.remove("busy");
      $("confirm-cancel").disabled = false;
    }
  });

  for (const b of document.querySelectorAll("[data-farm-action]")) {
    b.addEventListener("click", () => confirmFarmAction(b.dataset.farmAction));
  }

  // ---- the what-if dialog (changes nothing) ----
  const wdlg = $("whatif");
  const wi = { seq: 0, timer: 0 };

  function wiKind() {
    return document.querySelector('input[name="wi-kind"]:checked').value;
  }

  function wiSync() {
    const add = wiKind() === "add";
    $("wi-node-fields").hidden = add;
    $("wi-add-fields").hidden = !add;
    for (const l of document.querySelectorAll(".seg label")) l.classList.toggle("on", l.querySelector("input").checked);
    $("wi-weight-label").hidden = $("wi-action").value !== "weight";
  }

  function openWhatIf(node) {
    const sel = $("wi-node");
    const nodes = state.status ? state.status.nodes : [];
    const names = nodes.map((n) => n.name);
    fillSelect2(sel, names, node || sel.value || names[0]);
    const n = nodes.find((x) => x.name === sel.value);
    if (n) $("wi-weight").value = String(n.weight === 100 ? 200 : 100);
    // Suggest a free id and name for a new node.
    const ids = new Set(nodes.map((x) => Number(x.id)));
    let id = 1;
    while (ids.has(id) && id < 250) id++;
    $("wi-add-id").value = String(id);
    let k = nodes.length + 1;
    while (names.includes("web" + k)) k++;
    $("wi-add-name").value = "web" + k;
    if (node) document.querySelector('input[name="wi-kind"][value="node"]').checked = true;
    wiSync();
    clear($("whatif-plan"));
    $("whatif-error").hidden = true;
    if (!wdlg.open) wdlg.showModal();
    runWhatIf();
  }

  function fillSelect2(sel, values, current) {
    clear(sel);
    for (const v of values) {
      const o = el("option", "", v);
      o.value = v;
      sel.append(o);
    }
    if (values.includes(current)) sel.value = current;
  }

  function wiChange() {
    if (wiKind() === "add") {
      return {
        node: $("wi-add-name").value.trim(), action: "add",
        id: Number($("wi-add-id").value), weight: Number($("wi-add-weight").value),
      };
    }
    const c = { node: $("wi-node").value, action: $("wi-action").value };
    if (c.action === "weight") c.weight = Number($("wi-weight").value);
    return c;
  }

  async function runWhatIf() {
    const seq = ++wi.seq;
    const box = $("whatif-plan");
    const err = $("whatif-error");
    const c = wiChange();
    if (!c.node) {
      err.textContent = "Give a node name.";
      err.hidden = false;
      return;
    }
    for (const k of ["weight", "id"]) {
      if (k in c && !Number.isInteger(c[k])) {
        err.textContent = k + ": give a whole number.";
        err.hidden = false;
        return;
      }
    }
    wdlg.dataset.ready = "false";
    try {
      const w = await post("/api/v1/plan", c);
      if (seq !== wi.seq) return;
      err.hidden = true;
      renderPlan(box, w);
    } catch (e) {
      if (seq !== wi.seq) return;
      clear(box);
      err.textContent = e.message;
      err.hidden = false;
    }
    wdlg.dataset.ready = "true";
  }

  $("whatif-open").addEventListener("click", () => openWhatIf(""));
  $("whatif-close").addEventListener("click", () => wdlg.close());
  $("whatif-form").addEventListener("submit", (e) => {
    e.preventDefault();
    runWhatIf();
  });
  $("whatif-form").addEventListener("change", () => {
    wiSync();
    runWhatIf();
  });
  $("whatif-form").addEventListener("input", (e) => {
    if (e.target.tagName !== "INPUT" || e.target.type === "radio") return;
    clearTimeout(wi.timer);
    wi.timer = setTimeout(runWhatIf, 350);
  });

  // ---- start ----
  window.addEventListener("resize", () => drawMap(1));
  setConn("connecting");
  conn.lastStatus = Date.now(); // give the stream its first seconds before polling
  startStream();
})();
