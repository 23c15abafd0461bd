// facegate operator page: plain JS, no build step. Talks only to this server's /api/v1.
// Names and other data from the server are always inserted as text (never as HTML).
"use strict";

const API = "/api/v1";
const KEY_STORE = "facegate.key";
const state = { key: sessionStorage.getItem(KEY_STORE) || "", me: null, streams: {} };

// -- helpers -----------------------------------------------------------------------------------
function $(sel) { return document.querySelector(sel); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function flash(message, kind) {
  const box = $("#flash");
  box.textContent = message || "";
  box.className = kind || "";
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.details = body && body.details;
  }
}

async function api(path, opts = {}) {
  const headers = Object.assign({ "X-API-Key": state.key }, opts.headers || {});
  let body = opts.body;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(API + path, { method: opts.method || "GET", headers, body });
  if (opts.blob && res.ok) return res.blob();
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    if (res.status === 401 && state.me) signOut("Your key is no longer valid; sign in again.");
    throw new ApiError(res.status, data);
  }
  return data;
}

function can(perm) { return !!(state.me && state.me.permissions.includes(perm)); }

// Times come as ISO 8601 with the site's offset (older servers: unix seconds); shown in the browser's zone.
function fmtTime(t) {
  if (t === null || t === undefined || t === "") return "";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

function fmtScore(s) { return s === null || s === undefined ? "" : Number(s).toFixed(3); }

// -- routing -----------------------------------------------------------------------------------
const PAGES = {
  signin: { perm: null, show: () => {} },
  enrol: { perm: "people:write", show: () => {} },
  people: { perm: "people:read", show: () => People.load(0) },
  live: { perm: "faces:analyse", show: () => {} },
  events: { perm: "events:read", show: () => Events.load(true) },
  access: { perm: "access:manage", show: () => Access.load() },
};

function defaultPage() {
  for (const p of ["people", "live", "events", "enrol"]) if (can(PAGES[p].perm)) return p;
  return "signin";
}

function route() {
  let name = (location.hash.replace(/^#\/?/, "") || "").split("?")[0];
  if (!state.me) name = "signin";
  else if (!PAGES[name] || name === "signin") name = defaultPage();
  if (PAGES[name].perm && !can(PAGES[name].perm)) {
    flash(`Your role (${state.me.role}) cannot open that page.`, "error");
    state.keepFlash = true;
    name = defaultPage();
  }
  if (document.body.dataset.page && document.body.dataset.page !== name && !state.keepFlash) flash("");
  state.keepFlash = false;
  for (const sec of document.querySelectorAll(".page")) sec.hidden = sec.id !== `page-${name}`;
  for (const a of document.querySelectorAll("#nav a")) {
    a.hidden = !can(a.dataset.perm);
    a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  }
  if (name !== "live") Live.stop();
  if (name !== "enrol") Enrol.stopCam();
  if (name !== "events") Events.stopAuto();
  document.body.dataset.page = name;
  PAGES[name].show();
}

// -- sign in -----------------------------------------------------------------------------------
async function signIn(key) {
  state.key = key.trim();
  try {
    state.me = await api("/whoami");
  } catch (e) {
    state.me = null;
    state.key = "";
    throw e;
  }
  sessionStorage.setItem(KEY_STORE, state.key);
  $("#nav").hidden = false;
  $("#signout").hidden = false;
  $("#who").textContent = `${state.me.role}${state.me.name ? " · " + state.me.name : ""} (key ${state.me.key_id})`;
}

// Everything the last user saw or started: the next user of this screen must not see it
// (a person's panel with its delete buttons, thumbnails, live results, the event log).
function clearSession() {
  Live.stop();
  Enrol.stopCam();
  Enrol.shots = [];
  for (const sel of ["#person-detail", "#people-table tbody", "#enrol-result", "#enrol-shots",
                     "#live-results", "#events-table tbody"]) {
    const node = $(sel);
    if (node) node.replaceChildren();
  }
  for (const sel of ["#people-total", "#live-stats"]) { const node = $(sel); if (node) node.textContent = ""; }
  for (const sel of ["#people-q", "#enrol-name", "#enrol-files"]) { const node = $(sel); if (node) node.value = ""; }
  const force = $("#enrol-force");
  if (force) force.checked = false;
  const overlay = $("#live-overlay");
  if (overlay) overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
}

function signOut(message) {
  clearSession();
  state.key = "";
  state.me = null;
  sessionStorage.removeItem(KEY_STORE);
  $("#nav").hidden = true;
  $("#signout").hidden = true;
  $("#who").textContent = "";
  flash(message || "", message ? "error" : "");
  state.keepFlash = !!message;
  location.hash = "#/signin";
  route();
}

// -- camera ------------------------------------------------------------------------------------
async function openCamera(video) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser gives no camera here (cameras need https or localhost).");
  }
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  video.srcObject = stream;
  video.hidden = false;
  await video.play().catch(() => {});
  await new Promise((resolve) => {
    if (video.videoWidth) resolve();
    else video.addEventListener("loadedmetadata", resolve, { once: true });
  });
  return stream;
}

function closeCamera(video) {
  const stream = video.srcObject;
  if (stream) for (const t of stream.getTracks()) t.stop();
  video.srcObject = null;
}

function grabFrame(video, maxWidth) {
  const scale = Math.min(1, maxWidth / video.videoWidth);
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob((b) => resolve({ blob: b, scale }), "image/jpeg", 0.9));
}

// -- enrol -------------------------------------------------------------------------------------
const Enrol = {
  shots: [],
  async startCam() {
    try {
      await openCamera($("#enrol-video"));
      $("#enrol-cam-capture").disabled = false;
      $("#enrol-cam-stop").disabled = false;
      $("#enrol-cam-start").disabled = true;
    } catch (e) { flash(`Camera: ${e.message}`, "error"); }
  },
  stopCam() {
    const v = $("#enrol-video");
    closeCamera(v);
    v.hidden = true;
    $("#enrol-cam-capture").disabled = true;
    $("#enrol-cam-stop").disabled = true;
    $("#enrol-cam-start").disabled = false;
  },
  async capture() {
    const { blob } = await grabFrame($("#enrol-video"), 1280);
    this.shots.push({ blob, name: `webcam-${this.shots.length + 1}.jpg` });
    this.renderShots();
  },
  renderShots() {
    const box = $("#enrol-shots");
    box.replaceChildren(...this.shots.map((s, i) => el("figure", { class: "shot" },
      el("img", { src: URL.createObjectURL(s.blob), alt: s.name }),
      el("figcaption", {}, s.name, " ", el("button", { type: "button", onclick: () => { this.shots.splice(i, 1); this.renderShots(); } }, "remove")))));
  },
  async submit(ev) {
    ev.preventDefault();
    const name = $("#enrol-name").value.trim();
    const files = Array.from($("#enrol-files").files);
    if (!files.length && !this.shots.length) { flash("Add at least one photo (upload or webcam).", "error"); return; }
    const form = new FormData();
    form.append("name", name);
    for (const f of files) form.append("images", f, f.name);
    for (const s of this.shots) form.append("images", s.blob, s.name);
    const out = $("#enrol-result");
    out.replaceChildren(el("p", {}, "Enrolling…"));
    $("#enrol-submit").disabled = true;
    try {
      const force = $("#enrol-force").checked ? "?force=true" : "";
      const r = await api(`/people${force}`, { method: "POST", body: form });
      const items = [el("p", { class: "ok", id: "enrol-ok" },
        `${r.created ? "Enrolled" : "Added photos to"} ${r.person.name} (id ${r.person.id}): ${r.face_ids.length} photo(s) accepted, ${r.person.faces} face(s) stored.`)];
      const notes = [];
      for (const f of r.faces || []) if (f.faces_found > 1) notes.push(`${f.filename || f.source}: ${f.faces_found} faces, the largest was used`);
      for (const x of r.skipped || []) notes.push(`${x.filename || x.source}: already enrolled for ${r.person.name}, skipped`);
      for (const x of r.forced || []) notes.push(`FORCED ${x.reason}`);
      if (notes.length) items.push(el("ul", { id: "enrol-notes" }, notes.map((n) => el("li", {}, n))));
      if (r.rejected.length) items.push(rejections(r.rejected));
      out.replaceChildren(...items);
      flash("");
      this.shots = [];
      this.renderShots();
      $("#enrol-files").value = "";
    } catch (e) {
      const items = [el("p", { class: "error", id: "enrol-error" }, e.message)];
      if (e.details && e.details.rejected) items.push(rejections(e.details.rejected));
      out.replaceChildren(...items);
    } finally {
      $("#enrol-submit").disabled = false;
    }
  },
};

function rejections(list) {
  return el("div", { class: "rejections" },
    el("h2", {}, "Rejected photos"),
    el("ul", {}, list.map((r) => {
      const name = r.filename || r.source;
      const reason = r.reason.startsWith(`${name}: `) ? r.reason.slice(name.length + 2) : r.reason;
      return el("li", { class: "rejected", dataset: { code: r.code } },
        el("b", {}, name), `: ${reason}`, el("span", { class: "code" }, ` [${r.code}]`));
    })));
}

// -- people ------------------------------------------------------------------------------------
const People = {
  offset: 0,
  limit: 50,
  async load(offset) {
    this.offset = Math.max(0, offset || 0);
    const q = $("#people-q").value.trim();
    const params = new URLSearchParams({ limit: this.limit, offset: this.offset });
    if (q) params.set("q", q);
    try {
      const r = await api(`/people?${params}`);
      if (!state.me) return;
      $("#people-total").textContent = `${r.total} ${r.total === 1 ? "person" : "people"}`;
      $("#people-table tbody").replaceChildren(...r.people.map((p) => this.row(p)));
      $("#people-prev").disabled = this.offset === 0;
      $("#people-next").disabled = this.offset + this.limit >= r.total;
    } catch (e) { flash(e.message, "error"); }
  },
  row(p) {
    const actions = el("td", {});
    if (can("people:write")) actions.append(confirmButton("Delete", () => this.remove(p)));
    return el("tr", { dataset: { person: p.id } },
      el("td", {}, p.id),
      el("td", {}, el("a", { href: "#/people", class: "person-link", onclick: (e) => { e.preventDefault(); this.show(p.id); } }, p.name)),
      el("td", {}, p.faces), el("td", {}, fmtTime(p.created)), actions);
  },
  async show(id) {
    const box = $("#person-detail");
    try {
      const r = await api(`/people/${id}`);
      if (!state.me) return; // signed out while the request was in flight
      const figs = r.faces.map((f) => {
        const img = el("img", { alt: `face ${f.id}`, class: "thumb" });
        api(`/people/${id}/faces/${f.id}/thumbnail`, { blob: true })
          .then((b) => { img.src = URL.createObjectURL(b); }).catch(() => { img.alt = "no thumbnail"; });
        const cap = el("figcaption", {}, `face ${f.id}`, f.source ? ` · ${f.source}` : "");
        if (f.forced && f.forced.length) {
          cap.append(" ", el("b", { class: "forced", title: f.forced.map((x) => x.reason).join("\n") }, "forced"));
        }
        if (can("people:write")) cap.append(" ", confirmButton("Delete face", async () => {
          try {
            await api(`/people/${id}/faces/${f.id}`, { method: "DELETE" });
            flash(`Deleted face ${f.id}.`, "ok");
            this.load(this.offset);
            this.show(id).catch(() => box.replaceChildren());
          } catch (e) { flash(e.message, "error"); }
        }));
        return el("figure", { class: "shot" }, img, cap);
      });
      box.replaceChildren(el("h2", {}, `${r.person.name} (id ${r.person.id})`),
        el("p", {}, `${r.person.faces} face(s), model ${r.person.model || "-"}, enrolled ${fmtTime(r.person.created)}`),
        el("div", { class: "shots" }, figs));
    } catch (e) {
      box.replaceChildren();
      if (e.status !== 404) flash(e.message, "error");
    }
  },
  async remove(p) {
    try {
      const r = await api(`/people/${p.id}`, { method: "DELETE" });
      flash(`Deleted ${r.person.name}: ${r.faces_deleted} face(s) and everything derived from them.`, "ok");
      $("#person-detail").replaceChildren();
      this.load(this.offset);
    } catch (e) { flash(e.message, "error"); }
  },
};

function confirmButton(label, action) {
  // two clicks instead of a modal dialog: the first arms the button for 4 seconds
  const b = el("button", { type: "button", class: "danger" }, label);
  let armed = null;
  b.addEventListener("click", () => {
    if (armed) { clearTimeout(armed); armed = null; b.textContent = label; action(); return; }
    b.textContent = `Confirm ${label.toLowerCase()}?`;
    armed = setTimeout(() => { armed = null; b.textContent = label; }, 4000);
  });
  return b;
}

// -- live camera -------------------------------------------------------------------------------
const Live = {
  running: false,
  frames: 0,
  async start() {
    try {
      await openCamera($("#live-video"));
    } catch (e) { flash(`Camera: ${e.message}`, "error"); return; }
    this.running = true;
    $("#live-start").disabled = true;
    $("#live-stop").disabled = false;
    this.loop();
  },
  stop() {
    this.running = false;
    closeCamera($("#live-video"));
    const c = $("#live-overlay");
    c.getContext("2d").clearRect(0, 0, c.width, c.height);
    $("#live-start").disabled = false;
    $("#live-stop").disabled = true;
  },
  async loop() {
    const video = $("#live-video");
    while (this.running) {
      const t0 = performance.now();
      try {
        const { blob, scale } = await grabFrame(video, 640);
        const form = new FormData();
        form.append("image", blob, "frame.jpg");
        const r = await api("/identify?k=1", { method: "POST", body: form });
        if (!this.running) break;
        this.frames += 1;
        this.draw(r.faces, scale);
        showDecision($("#live-decision"), r.decision);
        $("#live-stats").textContent = `${this.frames} frame(s), last ${Math.round(performance.now() - t0)} ms, ${r.faces.length} face(s)`;
      } catch (e) {
        if (e.code === "no_face") {  // nobody in view: not an error, just nothing to show
          if (!this.running) break;
          this.frames += 1;
          this.draw([], 1);
          $("#live-stats").textContent = `${this.frames} frame(s), last ${Math.round(performance.now() - t0)} ms, no face`;
          await new Promise((res) => setTimeout(res, 250));
          continue;
        }
        flash(`Live: ${e.message}`, "error");
        if (e.status === 401 || e.status === 403) { this.stop(); break; }
        await new Promise((res) => setTimeout(res, 1000));
      }
      await new Promise((res) => setTimeout(res, 50));
    }
  },
  draw(faces, scale) {
    const video = $("#live-video");
    const canvas = $("#live-overlay");
    canvas.width = video.clientWidth;
    canvas.height = video.clientHeight;
    const k = video.clientWidth / video.videoWidth / scale; // frame pixels -> displayed pixels
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.lineWidth = 3;
    g.font = "16px sans-serif";
    const items = [];
    for (const f of faces) {
      const [x1, y1, x2, y2] = f.box.map((v) => v * k);
      const allow = f.decision === "allow";
      const colour = allow ? "#1a9c3a" : "#d12c2c";
      const score = f.candidates.length ? f.candidates[0].score : null;
      const bar = f.candidates.length ? ` ${allow ? ">" : "<="} ${fmtScore(f.candidates[0].threshold)}` : "";
      const label = `${allow ? f.identity : "unknown"} ${fmtScore(score)}${bar} ${allow ? "NAMED" : "UNKNOWN"} (preview)`;
      g.strokeStyle = colour;
      g.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const w = g.measureText(label).width + 8;
      g.fillStyle = colour;
      g.fillRect(x1, Math.max(0, y1 - 22), w, 22);
      g.fillStyle = "#fff";
      g.fillText(label, x1 + 4, Math.max(16, y1 - 6));
      items.push(el("li", { class: allow ? "allow" : "deny", dataset: { decision: f.decision } }, label));
    }
    $("#live-results").replaceChildren(...items);
  },
};

// the 1:N operating point the server decides at, and its warnings (FPIR not holdable, extrapolated)
function showDecision(box, d) {
  if (!d) { box.textContent = ""; return; }
  // an explicit threshold still says what the calibrated table gives for it (a bound past its range)
  const table = d.far === null || d.far === undefined ? "" :
    ` (calibrated table: FAR ${Number(d.far).toPrecision(2)} per comparison, FPIR ${Number(d.fpir).toPrecision(2)} at ${d.identities} people)`;
  const rate = d.explicit_threshold ? `explicit threshold ${fmtScore(d.threshold)}${table}`
    : `FPIR ${d.fpir} at ${d.identities} people (FAR ${Number(d.far).toPrecision(2)} per comparison` +
      `${d.tpir === null ? "" : `, expected TPIR ${Math.round(100 * d.tpir)}%`})`;
  // which table the rates come from (shipped, or an adopted site table), and the site's drift warnings (issue 22)
  const drift = ((d.site_calibration || {}).warnings || []).map((w) => w.message);
  const warnings = [...d.warnings, ...drift];
  box.textContent = `Decisions at ${rate}.` + (d.table ? ` Table: ${d.table}.` : "") +
    (warnings.length ? ` Warning: ${warnings.join(" ")}` : "");
  box.className = warnings.length ? "notice error" : "notice";
}

// -- access lists ------------------------------------------------------------------------------
const Access = {
  async load() {
    try {
      const [r, g, s] = await Promise.all([api("/access/rules"), api("/access/groups"),
        can("people:read") ? api("/gallery") : Promise.resolve(null)]);
      if (s) showDecision($("#access-decision"), { ...s, identities: s.people, explicit_threshold: false });
      const who = (id, name) => name ? `${name} (${id})` : `person ${id} (deleted)`;
      $("#rules-table tbody").replaceChildren(...r.rules.map((x) => el("tr", { dataset: { rule: x.id } },
        el("td", {}, x.id), el("td", {}, x.gate), el("td", {}, x.group ? `group ${x.group}` : who(x.person_id, x.person_name)),
        el("td", {}, x.window), el("td", {}, confirmButton("Remove", () => this.remove(x.id))))));
      $("#groups-list").replaceChildren(...g.groups.map((x) => {
        const people = (x.people || x.members.map((id) => ({ id, name: null }))).map((m) => who(m.id, m.name));
        return el("li", { dataset: { group: x.name } }, el("b", {}, x.name), `: ${people.join(", ") || "no members"}`);
      }));
    } catch (e) { flash(e.message, "error"); }
  },
  async add(ev) {
    ev.preventDefault();
    const v = (sel) => $(sel).value.trim() || null;
    const body = { gate: v("#rule-gate"), days: v("#rule-days"), start: v("#rule-start"), end: v("#rule-end"), tz: v("#rule-tz") };
    if (v("#rule-person")) body.person_id = Number(v("#rule-person")); else body.group = v("#rule-group");
    try {
      const r = await api("/access/rules", { method: "POST", json: body });
      flash(`Rule ${r.id} added for ${r.gate}.`, "ok");
      this.load();
    } catch (e) { flash(e.message, "error"); }
  },
  async remove(id) {
    try { await api(`/access/rules/${id}`, { method: "DELETE" }); flash(`Rule ${id} removed.`, "ok"); this.load(); }
    catch (e) { flash(e.message, "error"); }
  },
  async group(ev) {
    ev.preventDefault();
    const ids = $("#group-people").value.split(/[ ,]+/).filter(Boolean).map(Number);
    try {
      await api(`/access/groups/${encodeURIComponent($("#group-name").value.trim())}/members`, { method: "POST", json: { person_ids: ids } });
      flash("Group updated.", "ok");
      this.load();
    } catch (e) { flash(e.message, "error"); }
  },
};

// -- events ------------------------------------------------------------------------------------
// Why an access decision went the way it did, in words (the reasons of facegate.service.access).
const ACCESS_REASONS = {
  no_face: "no face in the frame",
  unknown: "not recognised: nobody enrolled cleared the bar",
  no_list: "recognised; the gate has no access list",
  permitted: "recognised and on the gate's access list",
  outside_window: "recognised, but outside the hours of the gate's rule",
  not_permitted: "recognised, but not on the gate's access list",
};
const AUDIT_ACTIONS = {
  enrol: "enrolled", rename_person: "renamed", delete_person: "deleted", delete_face: "deleted a face of",
  key_create: "API key created", key_revoke: "API key revoked", access_rule_add: "access rule added",
  access_rule_delete: "access rule removed", access_group_add: "added to an access group",
  access_group_remove: "removed from an access group",
};

// One readable line per event: who, where, what was decided and why, by whom; the raw action stays visible.
function eventLine(e) {
  const d = e.detail || {};
  const who = e.name ? `${e.name} (${e.person_id})` : (e.person_id ? `person ${e.person_id}` : "");
  if (e.kind === "access") {
    const rule = d.rule || {};
    // the server's reason in words (liveness refusals included); the older reasons as a fallback
    const why = e.message || ACCESS_REASONS[d.reason || rule.reason] || d.reason || rule.reason || "";
    const hidden = d.named_to_caller === false;  // a refused presentation: whom it resembled is in the message
    const bar = e.score === null || e.score === undefined || hidden ? "" :
      ` (score ${fmtScore(e.score)} ${e.decision === "allow" || e.name ? ">" : "<="} ${fmtScore(e.threshold)})`;
    const window = rule.rule && rule.rule.window ? `, rule ${rule.rule.id}: ${rule.rule.window}` : "";
    const subject = hidden ? "a presentation" : (who || "an unknown face");
    return `${e.decision === "allow" ? "Allowed" : "Denied"} ${subject} at ${e.gate}: ${why}${window}${bar}`;
  }
  if (e.kind === "auth_failure") {
    return `Failed authentication from ${e.client || "an unknown address"}${e.action ? `: ${e.action}` : ""}`;
  }
  const name = AUDIT_ACTIONS[e.action] || e.action || "change";
  const what = name.charAt(0).toUpperCase() + name.slice(1);
  const parts = [`${what}${who ? ` ${who}` : ""}`];
  if (Array.isArray(d.faces)) parts.push(`${d.faces.length} face(s)${d.created ? ", new person" : ""}`);
  if (d.from) parts.push(`was ${d.from}`);
  if (d.group) parts.push(`group ${d.group}`);
  if (d.gate || e.gate) parts.push(`gate ${d.gate || e.gate}`);
  if (d.window) parts.push(d.window);
  if (d.role) parts.push(`role ${d.role}`);
  if (Array.isArray(d.forced) && d.forced.length) parts.push(`FORCED over: ${d.forced.map((f) => f.reason).join("; ")}`);
  return `${parts.join(", ")} [${e.action}]${e.client ? ` from ${e.client}` : ""}`;
}

const Events = {
  before: null,
  timer: null,
  params() {
    const p = new URLSearchParams({ limit: 50 });
    const add = (k, sel) => { const v = $(sel).value.trim(); if (v) p.set(k, v); };
    add("kind", "#ev-kind"); add("decision", "#ev-decision"); add("person_id", "#ev-person"); add("gate", "#ev-gate");
    for (const [k, sel] of [["since", "#ev-since"], ["until", "#ev-until"]]) {
      const v = $(sel).value;
      if (v) p.set(k, new Date(v).toISOString());
    }
    return p;
  },
  async load(reset) {
    const p = this.params();
    if (!reset && this.before) p.set("before_id", this.before);
    try {
      const r = await api(`/events?${p}`);
      const rows = r.events.map((e) => el("tr", { class: e.decision || e.kind, dataset: { kind: e.kind } },
        el("td", {}, e.id), el("td", {}, fmtTime(e.at)), el("td", { class: "event-line" }, eventLine(e)),
        el("td", {}, fmtScore(e.score)), el("td", {}, e.key_id || "")));
      const body = $("#events-table tbody");
      if (reset) body.replaceChildren(...rows); else body.append(...rows);
      this.before = r.next_before_id;
      $("#events-more").hidden = !r.next_before_id;
    } catch (e) { flash(e.message, "error"); }
  },
  auto(on) {
    this.stopAuto();
    if (on) this.timer = setInterval(() => this.load(true), 3000);
  },
  stopAuto() { if (this.timer) { clearInterval(this.timer); this.timer = null; } },
};

// -- wiring ------------------------------------------------------------------------------------
function wire() {
  $("#signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#signin-error").textContent = "";
    try {
      await signIn($("#signin-key").value);
      $("#signin-key").value = "";
      flash("");
      location.hash = `#/${defaultPage()}`;
      route();
    } catch (e) {
      $("#signin-error").textContent = e.status === 401 ? "That key is not valid." : e.message;
    }
  });
  $("#signout").addEventListener("click", () => signOut());
  $("#enrol-form").addEventListener("submit", (e) => Enrol.submit(e));
  $("#enrol-cam-start").addEventListener("click", () => Enrol.startCam());
  $("#enrol-cam-capture").addEventListener("click", () => Enrol.capture());
  $("#enrol-cam-stop").addEventListener("click", () => Enrol.stopCam());
  $("#people-search").addEventListener("submit", (e) => { e.preventDefault(); People.load(0); });
  $("#people-prev").addEventListener("click", () => People.load(People.offset - People.limit));
  $("#people-next").addEventListener("click", () => People.load(People.offset + People.limit));
  $("#live-start").addEventListener("click", () => Live.start());
  $("#live-stop").addEventListener("click", () => Live.stop());
  $("#events-filter").addEventListener("submit", (e) => { e.preventDefault(); Events.load(true); });
  $("#rule-form").addEventListener("submit", (e) => Access.add(e));
  $("#group-form").addEventListener("submit", (e) => Access.group(e));
  $("#events-more").addEventListener("click", () => Events.load(false));
  $("#ev-auto").addEventListener("change", (e) => Events.auto(e.target.checked));
  window.addEventListener("hashchange", route);
}

async function boot() {
  wire();
  if (state.key) {
    try { await signIn(state.key); } catch (e) { sessionStorage.removeItem(KEY_STORE); }
  }
  route();
}

document.addEventListener("DOMContentLoaded", boot);
