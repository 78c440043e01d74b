/* Live points for the dashboard's charts, straight from the API's WebSocket (relayed
 * by the dashboard at /live) into Plotly.extendTraces: one small message per point,
 * never a whole figure.
 *
 * A chart opts in by its wrapper: <div data-live='{"max": 600, "series": [...]}'>
 * around a dcc.Graph. Each series: {"channel", "trace" (index), "x" (field), "y"
 * (field) | "ohlc": true | "band": [meanField, stdField, k], "when": {field: value},
 * "scale": number (y divided by it)}. A message feeds a series when its data has the
 * series' fields (snapshots of analytics channels are whole points, updates parts).
 *
 * Messages are kept per channel (the last `max`), and every animation frame each trace
 * gets what is newer than its last x: so points that came while Dash redrew a figure
 * from REST are not lost, and nothing is drawn twice. A bar revised in place (same
 * start) replaces the trace's last point. A gap in a channel's sequence numbers, or a
 * `dropped` notice, resubscribes with a snapshot; a closed socket reconnects with
 * backoff and resubscribes everything.
 *
 * A feed opts in the same way: <div data-live-feed='{"channel": "alerts", "max": 100}'>
 * gets one row per alert transition, newest first (text only, never HTML from the wire);
 * a live firing one beeps when #alerts-sound is checked and shows a browser
 * notification when #alerts-notify is checked and the browser allows it.
 *
 * window.pairstreamLive.stats: messages, bytes, and per drawn point the delay from the
 * Kafka record (kafka_ts) and from its arrival in the browser to the frame drawn. */
(function () {
  "use strict";
  const KEEP = 10000;
  const state = {
    ws: null, open: false, backoff: 500, channels: new Map(), wanted: new Set(),
    dirty: false, status: "connecting",
    stats: { messages: 0, bytes: 0, frames: 0, drawn: 0, fromKafka: [], fromArrival: [],
             gaps: 0, resyncs: 0, connects: 0, drawMs: [] },
  };
  window.pairstreamLive = state;

  function record(list, value) {  // the last KEEP figures: a tab stays open for days
    list.push(value);
    if (list.length > KEEP) list.splice(0, list.length - KEEP);
  }

  function channel(name) {
    let c = state.channels.get(name);
    if (!c) { c = { seq: null, items: [], resyncing: false }; state.channels.set(name, c); }
    return c;
  }

  function setStatus(status, detail) {
    state.status = status; state.detail = detail;
    const el = document.getElementById("live-status");
    if (el) {
      el.textContent = status === "live" ? "● live" : status === "down"
        ? "● live feed down: " + (detail || "reconnecting…") : "● connecting…";
      el.className = "live-status live-" + status;
    }
  }

  function send(message) {
    if (state.open) state.ws.send(JSON.stringify(message));
  }

  function specs() {
    const out = [];
    document.querySelectorAll("[data-live]").forEach(function (el) {
      let spec;
      try { spec = JSON.parse(el.getAttribute("data-live")); } catch (e) { return; }
      const gd = el.querySelector(".js-plotly-plot");
      if (gd && spec.series) out.push({ el: el, gd: gd, spec: spec });
    });
    return out;
  }

  function feeds() {
    const out = [];
    document.querySelectorAll("[data-live-feed]").forEach(function (el) {
      try { out.push({ el: el, spec: JSON.parse(el.getAttribute("data-live-feed")) }); } catch (e) { /* not ours */ }
    });
    return out;
  }

  function sync() {
    setStatus(state.status, state.detail);  // the shell may have been drawn since
    // subscribe to what the page shows now; unsubscribe from what it no longer does
    const wanted = new Set();
    specs().forEach(function (s) { s.spec.series.forEach(function (r) { wanted.add(r.channel); }); });
    feeds().forEach(function (f) { wanted.add(f.spec.channel); });
    const add = [...wanted].filter(function (n) { return !state.wanted.has(n); });
    const drop = [...state.wanted].filter(function (n) { return !wanted.has(n); });
    state.wanted = wanted;
    drop.forEach(function (n) { state.channels.delete(n); });
    if (drop.length) send({ op: "unsubscribe", channels: drop });
    if (add.length) send({ op: "subscribe", channels: add, snapshot: 300 });
    state.dirty = true;
  }

  function keep(c, items, arrived, live) {
    items.forEach(function (d) { d._arrived = arrived; d._live = live; c.items.push(d); });
    if (c.items.length > KEEP) c.items.splice(0, c.items.length - KEEP);
    state.dirty = true;
  }

  function resync(name) {
    const c = channel(name);
    if (c.resyncing) return;
    c.resyncing = true;
    state.stats.resyncs += 1;
    send({ op: "unsubscribe", channels: [name] });
    send({ op: "subscribe", channels: [name], snapshot: 300 });
  }

  function onMessage(m, arrived) {
    if (m.type === "update") {
      if (!state.wanted.has(m.channel)) return;
      const c = channel(m.channel);
      if (c.seq !== null && m.seq !== c.seq + 1 && !c.resyncing) { state.stats.gaps += 1; resync(m.channel); }
      c.seq = m.seq;
      m.data._kafka = m.kafka_ts;
      keep(c, [m.data], arrived, true);
    } else if (m.type === "snapshot") {
      const c = channel(m.channel);
      c.seq = m.seq; c.resyncing = false;
      keep(c, m.data || [], arrived, false);
    } else if (m.type === "dropped") {
      state.wanted.forEach(resync);
    } else if (m.type === "status") {
      if (m.api === "down") setStatus("down", m.detail);
      else if (m.kafka === "down") setStatus("down", "the API's Kafka feed is down");
      else if (state.open) setStatus("live");
    } else if (m.type === "hello") {
      setStatus(m.kafka === "down" ? "down" : "live", m.kafka === "down" ? "the API's Kafka feed is down" : "");
    }
  }

  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/live";
    const ws = new WebSocket(url);
    state.ws = ws;
    ws.onopen = function () {
      state.open = true; state.backoff = 500; state.stats.connects += 1;
      state.channels.forEach(function (c) { c.seq = null; c.resyncing = false; });
      if (state.wanted.size) send({ op: "subscribe", channels: [...state.wanted], snapshot: 300 });
    };
    ws.onmessage = function (event) {
      const arrived = performance.timeOrigin + performance.now();
      state.stats.bytes += event.data.length;
      let decoded;
      try { decoded = JSON.parse(event.data); } catch (e) { return; }
      const list = Array.isArray(decoded) ? decoded : [decoded];
      state.stats.messages += list.length;
      list.forEach(function (m) { onMessage(m, arrived); });
    };
    ws.onclose = function () {
      state.open = false;
      if (state.status !== "down") setStatus("down", "reconnecting…");
      setTimeout(connect, state.backoff);
      state.backoff = Math.min(5000, state.backoff * 2);
    };
  }

  function fields(r, d) {
    // the point this series takes from message data d, or null
    if (r.when) for (const k in r.when) if (d[k] !== r.when[k]) return null;
    const x = d[r.x];
    if (x === undefined || x === null) return null;
    if (r.ohlc) {
      if (d.open === undefined) return null;
      return { x: x, open: d.open, high: d.high, low: d.low, close: d.close };
    }
    if (r.band) {
      const mean = d[r.band[0]], std = d[r.band[1]];
      if (mean === undefined || mean === null || std === undefined || std === null) return null;
      return { x: x, y: mean + r.band[2] * std };
    }
    const y = d[r.y];
    if (y === undefined || y === null) return null;
    return { x: x, y: r.scale ? y / r.scale : y };
  }

  function checked(id) {
    return !!document.querySelector("#" + id + " input:checked");
  }

  function beep() {
    try {
      const audio = state.audio = state.audio || new (window.AudioContext || window.webkitAudioContext)();
      const tone = audio.createOscillator(), gain = audio.createGain();
      tone.frequency.value = 880; gain.gain.value = 0.08;
      tone.connect(gain); gain.connect(audio.destination);
      tone.start(); tone.stop(audio.currentTime + 0.18);
    } catch (e) { /* no audio here */ }
  }

  function when(ms) {
    return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "—";
  }

  function cell(text, cls) {
    const span = document.createElement("span");
    span.textContent = text; if (cls) span.className = cls;
    return span;
  }

  // a transition (live) has ts; a snapshot holds episodes from the history: one row per
  // episode and state either way (a resync's snapshot repeats none)
  function key(d) { return d.alert_id + ":" + d.state; }
  function at(d) { return d.ts || d.ended_ts || d.started_ts || 0; }

  function feedRow(d) {
    const row = document.createElement("div");
    row.className = "feed-row sev-" + d.severity + " state-" + d.state;
    row.append(cell(when(at(d)), "feed-time"), cell(d.severity, "sev sev-" + d.severity),
               cell(d.state, "state-" + d.state), cell(d.rule_id, "feed-rule"), cell(d.subject, "feed-subject"),
               cell(d.message || "", "feed-message"));
    return row;
  }

  function drawFeeds() {
    feeds().forEach(function (f) {
      const c = state.channels.get(f.spec.channel);
      if (!c) return;
      const seen = f.el._seen = f.el._seen || new Set();
      const fresh = c.items.filter(function (d) { return d.alert_id && !seen.has(key(d)); });
      if (!fresh.length) return;
      fresh.sort(function (a, b) { return at(a) - at(b); });
      const empty = f.el.querySelector(".feed-empty");
      if (empty) empty.remove();
      fresh.forEach(function (d) {
        seen.add(key(d));
        f.el.prepend(feedRow(d));
        if (!d._live || d.state !== "firing") return;
        if (checked("alerts-sound")) beep();
        if (checked("alerts-notify") && window.Notification && Notification.permission === "granted") {
          new Notification("pairstream " + d.severity + ": " + d.rule_id, { body: d.subject + " — " + (d.message || "") });
        }
      });
      while (f.el.children.length > (f.spec.max || 100)) f.el.lastChild.remove();
      if (seen.size > 10 * (f.spec.max || 100)) {  // a tab stays open for days
        f.el._seen = new Set(c.items.map(key));
      }
    });
  }

  function draw() {
    requestAnimationFrame(draw);
    if (!state.dirty) return;
    drawFeeds();
    if (!window.Plotly) { state.dirty = specs().length > 0; return; }  // charts wait for it
    state.dirty = false;
    const began = performance.now();
    const fed = new Set();
    specs().forEach(function (s) {
      const gd = s.gd, max = s.spec.max || 600;
      if (!gd.data) return;
      const groups = { xy: { keys: ["x", "y"], idx: [], ext: {} },
                       ohlc: { keys: ["x", "open", "high", "low", "close"], idx: [], ext: {} } };
      let replaced = false;
      s.spec.series.forEach(function (r) {
        const trace = gd.data[r.trace];
        const c = state.channels.get(r.channel);
        if (!trace || !c) return;
        const xs = trace.x || [];
        let last = xs.length ? xs[xs.length - 1] : -Infinity;
        if (typeof last === "string") last = Date.parse(last);
        const add = [];
        c.items.forEach(function (d) {
          const p = fields(r, d);
          if (!p) return;
          if (p.x > last) { add.push(p); last = p.x; fed.add(d); }
          else if (p.x === last && r.ohlc && xs.length) {
            const i = xs.length - 1;  // the bar revised while it forms
            if (trace.close[i] !== p.close || trace.high[i] !== p.high || trace.low[i] !== p.low) {
              trace.open[i] = p.open; trace.high[i] = p.high; trace.low[i] = p.low; trace.close[i] = p.close;
              replaced = true;
            }
          }
        });
        if (!add.length) return;
        const g = r.ohlc ? groups.ohlc : groups.xy;
        g.idx.push(r.trace);
        g.keys.forEach(function (k) {
          (g.ext[k] = g.ext[k] || []).push(add.map(function (p) { return p[k]; }));
        });
      });
      let extended = false;
      [groups.ohlc, groups.xy].forEach(function (g) {
        if (!g.idx.length) return;
        window.Plotly.extendTraces(gd, g.ext, g.idx, max);
        extended = true;
      });
      if (extended) {
        state.stats.frames += 1;
        s.el.setAttribute("data-live-points", String((gd.data[0].x || []).length));
      } else if (replaced) {
        window.Plotly.redraw(gd);
      }
    });
    record(state.stats.drawMs, performance.now() - began);
    if (fed.size) {
      requestAnimationFrame(function () {  // the frame with the points is painted
        const drawn = performance.timeOrigin + performance.now();
        fed.forEach(function (d) {
          if (!d._live) return;  // a snapshot's points: history, not a live delay
          state.stats.drawn += 1;
          if (d._kafka) record(state.stats.fromKafka, drawn - d._kafka);
          record(state.stats.fromArrival, drawn - d._arrived);
        });
      });
    }
  }

  function start() {
    connect();
    new MutationObserver(function () { clearTimeout(state.syncTimer); state.syncTimer = setTimeout(sync, 50); })
      .observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-live"] });
    requestAnimationFrame(draw);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
