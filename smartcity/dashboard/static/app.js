/* Smart city dashboard: a hash-routed single page over the suite's own APIs. No dependencies. */
"use strict";

const state = { config: null, tokens: {}, validators: null };
const view = document.getElementById("view");

/* ---------- DOM helpers (text only: nothing from an API is ever parsed as HTML) ---------- */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}
const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}
// A part left out (`cond ? node : null`) is skipped, as h() skips it; replaceChildren would
// write it as the text "null"
function show(...nodes) { view.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false)); }
function short(hash, n = 12) { return hash ? String(hash).slice(0, n) + "…" : "—"; }
function time(ms) { return ms ? new Date(ms).toLocaleString() : "—"; }
function badge(text, cls) { return h("span", { class: "badge " + (cls || text || "") }, text ?? "unknown"); }
function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}
function table(headers, rows, onclick) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", r.click ? { class: "clickable", onclick: r.click } : {},
      r.cells.map((c) => h("td", {}, c)))) : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "nothing yet"))));
}
function errorBox(err) { return h("p", { class: "error", role: "alert" }, String(err.message || err)); }

/* ---------- API access: tokens per (organisation, audience) ---------- */
async function token(org, audience) {
  const key = org + "|" + audience;
  const cached = state.tokens[key];
  if (cached && cached.until > Date.now()) return cached.token;
  const pasted = sessionStorage.getItem("token:" + audience);
  if (!state.config.demo) {
    if (pasted) return pasted;
    throw new Error(`no token for ${audience}: this suite is not in demo mode; paste one from ` +
      `\`smartcity token --as ORG --audience ${audience}\` in the box below`);
  }
  const r = await fetch(`/dashboard/api/token?org=${encodeURIComponent(org)}&audience=${encodeURIComponent(audience)}`);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
  state.tokens[key] = { token: body.token, until: Date.now() + (body.expires_in - 30) * 1000 };
  return body.token;
}

class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e ? `${e.message} (${status} ${e.code})` : `HTTP ${status}`);
    this.status = status; this.code = e && e.code;
  }
}

async function api(service, path, org, options = {}, audience = service) {
  const prefix = service === "chain" ? "/chain" : "/" + service;
  const headers = { Authorization: "Bearer " + (await token(org, audience)), ...(options.headers || {}) };
  const r = await fetch(prefix + path, { ...options, headers });
  const text = await r.text();
  const body = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}
const chain = (path) => api("chain", path, "regulator");
/* A node's own API under /nodes/<name> (an observer's status, its blocks): chain tokens */
const node = (name, path) => api("nodes/" + encodeURIComponent(name), path, "regulator", {}, "chain");
/* The dashboard's own explorer reads (recent anchors, hash lookup, rating history): chain tokens */
async function explorer(path) {
  const r = await fetch("/dashboard/api" + path, { headers: { Authorization: "Bearer " + (await token("regulator", "chain")) } });
  const body = await r.json();
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

/* ---------- router ---------- */
const routes = [
  [/^#\/chain$/, pageChain],
  [/^#\/block\/(\d+)$/, pageBlock],
  [/^#\/tx\/([0-9a-f]+)$/, pageTx],
  [/^#\/anchor\/([0-9a-f]{64})$/, pageAnchor],
  [/^#\/credential\/([0-9a-f]{64})$/, pageAnchoredCredential],
  [/^#\/verify$/, pageVerify],
  [/^#\/roads$/, pageRoads],
  [/^#\/roads\/(.+)$/, pageRoads],
  [/^#\/credit$/, pageCredit],
  [/^#\/credit\/(\d{18}|[0-9A-Z]{18})$/, pageCredit],
  [/^#\/identity$/, pageIdentity],
  [/^#\/did\/(.+)$/, pageDid],
];

async function route() {
  const hash = location.hash || "#/chain";
  const page = hash.split("/")[1];
  document.querySelectorAll("nav a").forEach((a) => {
    const p = a.dataset.page;
    a.classList.toggle("active", p === page || (p === "chain" && ["block", "tx", "did", "anchor", "credential"].includes(page)) ||
      (p === "roads" && page === "roads"));
  });
  for (const [re, fn] of routes) {
    const m = hash.match(re);
    if (m) {
      show(h("p", { class: "muted" }, "Loading…"));
      try { await fn(...m.slice(1).map(decodeURIComponent)); } catch (err) { show(errorBox(err)); }
      return;
    }
  }
  show(errorBox(new Error("unknown page " + hash)));
}

/* ---------- chain explorer ---------- */
async function validators() {
  if (!state.validators) {
    state.validators = (await chain("/v1/validators")).validators
      .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
  }
  return state.validators;
}
function validatorName(key, vals) {
  const v = vals.find((x) => x.pub_key === key || x.name === key);
  return v ? v.name : short(key, 16);
}

async function pageChain() {
  const status = await chain("/v1/status");
  const vals = await validators();
  const heights = [];
  for (let hgt = status.height; hgt >= 1 && heights.length < 15; hgt--) heights.push(hgt);
  const [blocks, evidence, anchors, observers] = await Promise.all([
    Promise.all(heights.map((n) => chain("/v1/blocks/" + n))),
    chain("/v1/evidence?limit=50").then((r) => r.evidence),
    explorer("/anchors?limit=10").then((r) => r.anchors),
    observerStates(status)]);
  // Each validator's precommits in the certificates of the blocks shown: who is voting, who is
  // not (a certificate needs only more than 2/3 of the power, so an honest one may miss a few)
  const votes = {};
  blocks.forEach((b) => b.certificate.signatures.forEach((sg) => { votes[sg.validator] = (votes[sg.validator] || 0) + 1; }));
  show(
    h("h2", {}, "Chain explorer"),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h3", {}, "Status"), kv([
        ["chain", status.chain_id], ["height", h("span", { id: "chain-height" }, status.height)],
        ["latest block", h("code", {}, status.latest_hash)], ["latest time", time(status.latest_time_ms)],
        ["mempool", status.mempool], ["node", `${status.role}${status.healthy ? "" : " (unhealthy)"}`],
        ["genesis", h("code", {}, status.genesis_hash)]])),
      h("div", { class: "card", id: "validators" }, h("h3", {}, "Validators and their votes"),
        table(["name", "power", "public key", `in the commit certificates of the last ${blocks.length} blocks`],
          vals.map((v) => {
            const n = votes[v.pub_key] || votes[v.name] || 0;
            return { cells: [v.name, v.power, h("code", {}, short(v.pub_key, 20)),
              badge(`${n}/${blocks.length}`, n === 0 ? "no" : "yes")] };
          })))),
    h("h3", {}, "Observers (the regulators' nodes: they verify every block and never vote)"),
    h("div", { id: "observers" }, observers.length
      ? table(["observer", "height", "last block hash", "agrees with the validators"], observers.map((o) => ({
        cells: [o.name, o.height ?? "—", o.hash ? h("code", {}, short(o.hash, 20)) : "—", o.verdict] })))
      : h("p", { class: "muted" }, "This chain's genesis names no observer.")),
    h("h3", {}, "Latest blocks"),
    h("div", { id: "blocks" }, table(["height", "hash", "time", "txs", "proposer", "signers"], blocks.map((b) => ({
      click: () => { location.hash = "#/block/" + b.header.height; },
      cells: [h("a", { href: "#/block/" + b.header.height }, b.header.height), h("code", {}, short(b.hash, 16)),
        time(b.header.time_ms), b.header.tx_count, validatorName(b.header.proposer, vals),
        `${b.certificate.signatures.length}/${vals.length}`],
    })))),
    h("h3", {}, "Recent anchors"),
    h("p", { class: "muted" }, "Batches of record hashes committed by their Merkle root (the gateway's telemetry, " +
      "`smartcity anchor`): any record in a batch is proven by its audit path to the root and the root's transaction to a block."),
    anchorLookup(),
    h("div", { id: "anchors" }, table(["block", "organisation", "label", "records", "root", "transaction"], anchors.map((a) => ({
      click: () => { location.hash = "#/anchor/" + a.tx; },
      cells: [h("a", { href: "#/block/" + a.height }, a.height), a.org, a.label, a.count, h("code", {}, short(a.root, 16)),
        h("a", { href: "#/anchor/" + a.tx }, h("code", {}, short(a.tx, 16)))] })))),
    h("h3", {}, "Evidence of misbehaviour"),
    h("div", { id: "evidence" }, evidence.length
      ? table(["height", "round", "what", "validator", "conflicting"], evidence.map((e) => ({
        cells: [e.height ?? "—", e.round ?? "—", (e.type || "—").replace("_", " ") + (e.kind ? ` (${e.kind})` : ""),
          validatorName(e.validator || "", vals),
          h("code", {}, (e.votes || e.proposals || []).map((m) => (m.block_hash ? short(m.block_hash, 12) : "nil")).join(" vs "))] })))
      : h("p", { class: "muted" }, "No double votes or conflicting proposals seen by this node.")),
  );
}

/* Each observer's height and latest block, compared with validator-0's block at the same height */
async function observerStates(status) {
  return Promise.all((state.config.observers || []).map(async (o) => {
    try {
      const st = await node(o.name, "/v1/status");
      const at = Math.min(st.height, status.height);
      const [theirs, ours] = await Promise.all([
        at === st.height ? st.latest_hash : node(o.name, "/v1/blocks/" + at).then((b) => b.hash),
        at === status.height ? status.latest_hash : chain("/v1/blocks/" + at).then((b) => b.hash)]);
      const lag = status.height - st.height;
      const verdict = at < 1 ? badge("no blocks yet", "fair") : theirs === ours
        ? badge(lag > 0 ? `yes, ${lag} block${lag > 1 ? "s" : ""} behind` : "yes, same block", "yes")
        : badge(`no: block ${at} differs`, "no");
      return { name: o.name, height: st.height, hash: st.latest_hash, verdict };
    } catch (err) {
      return { name: o.name, verdict: badge("unreachable: " + err.message, "no") };
    }
  }));
}

function anchorLookup() {
  const root = h("input", { type: "text", id: "anchor-root", placeholder: "Merkle root (64 hex)", size: 66 });
  const org = h("select", { id: "anchor-org" }, h("option", { value: "" }, "any organisation"),
    state.config.orgs.map((o) => h("option", { value: o.id }, o.id)));
  const out = h("span", { id: "anchor-lookup-result", class: "error" });
  async function find() {
    out.textContent = "";
    const q = root.value.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(q)) { out.textContent = "a root is 64 hex characters"; return; }
    const orgs = org.value ? [org.value] : state.config.orgs.map((o) => o.id);
    for (const id of orgs) {
      const bundle = await chain(`/v1/state/anchors/${encodeURIComponent(`root:${id}:${q}`)}`);
      if (bundle.value) { location.hash = "#/anchor/" + bundle.value; return; }
    }
    out.textContent = `no anchor of ${q.slice(0, 12)}… by ${org.value || "any organisation"}`;
  }
  return h("div", { class: "toolbar" }, "Find an anchor:", root, org,
    h("button", { id: "anchor-find", onclick: () => find().catch((err) => { out.textContent = err.message; }) }, "Find"), out);
}

async function pageAnchor(txHash) {
  const bundle = await chain(`/v1/state/anchors/${encodeURIComponent("batch:" + txHash)}`);
  const a = bundle.value;
  if (!a) throw new Error(`no anchor batch was committed by transaction ${txHash}`);
  show(h("h2", {}, "Anchor batch"),
    h("div", { class: "card", id: "anchor" }, kv([
      ["root", h("code", {}, a.root)], ["records", a.count], ["label", a.label], ["organisation", a.org],
      ["block", h("a", { href: "#/block/" + a.height }, a.height)],
      ["transaction", h("a", { href: "#/tx/" + txHash }, h("code", {}, txHash))],
      ["metadata", h("code", {}, JSON.stringify(a.metadata || {}))]])),
    h("p", { class: "muted" }, "The batch record is chain state: its proof ties it to a block signed by the validators."),
    verifyButton("verify-anchor", "Verify this anchor's state proof", bundle));
}

async function pageAnchoredCredential(digest) {
  const bundle = await chain(`/v1/state/identity/${encodeURIComponent("cred:" + digest)}`);
  const c = bundle.value;
  if (!c) throw new Error(`no credential with hash ${digest} is anchored`);
  show(h("h2", {}, "Anchored credential"),
    h("p", { class: "muted" }, "Only the credential's hash is on the chain; its claims stay with the issuing agency."),
    h("div", { class: "card", id: "anchored-credential" }, kv([
      ["hash", h("code", {}, digest)], ["issuer", c.org], ["type", c.type],
      ["block", h("a", { href: "#/block/" + c.height }, c.height)], ["status list entry", `${c.list}/${c.index}`]])),
    verifyButton("verify-credential", "Verify this anchor's state proof", bundle));
}

function verifyButton(id, label, bundle) {
  return h("button", { id, onclick: () => {
    sessionStorage.setItem("bundle", JSON.stringify(bundle, null, 2));
    location.hash = "#/verify";
  } }, label);
}

async function pageBlock(height) {
  const block = await chain("/v1/blocks/" + height);
  const vals = await validators();
  const txs = await Promise.all(block.txs.map((t) => chain("/v1/txs/" + t)));
  const signed = new Set(block.certificate.signatures.map((sg) => sg.validator));
  const hd = block.header;
  show(
    h("h2", {}, `Block ${hd.height}`),
    h("div", { class: "toolbar" },
      hd.height > 1 ? h("a", { href: "#/block/" + (hd.height - 1) }, "← previous") : null,
      h("a", { href: "#/block/" + (hd.height + 1) }, "next →"), h("a", { href: "#/chain" }, "latest blocks")),
    h("div", { class: "grid" },
      h("div", { class: "card" }, kv([
        ["hash", h("code", { id: "block-hash" }, block.hash)], ["time", time(hd.time_ms)],
        ["proposer", validatorName(hd.proposer, vals)], ["transactions", hd.tx_count],
        ["previous", h("code", {}, hd.prev_hash)], ["state root", h("code", {}, hd.state_root)],
        ["txs root", h("code", {}, hd.txs_root)], ["receipts root", h("code", {}, hd.receipts_root)]])),
      h("div", { class: "card", id: "certificate" }, h("h3", {}, `Commit certificate (round ${block.certificate.round})`),
        table(["validator", "power", "precommit"], vals.map((v) => ({
          cells: [v.name, v.power, signed.has(v.pub_key) || signed.has(v.name) ? badge("signed", "yes") : badge("no vote", "no")],
        }))),
        h("p", { class: "muted" }, `${signed.size} of ${vals.length} validators signed block ${short(block.hash, 16)}`))),
    h("h3", {}, "Transactions"),
    h("div", { id: "txs" }, table(["#", "hash", "sender", "contract.method", "status", "events"], txs.map((t, i) => ({
      click: () => { location.hash = "#/tx/" + t.hash; },
      cells: [i, h("a", { href: "#/tx/" + t.hash }, h("code", {}, short(t.hash, 16))), h("code", {}, short(t.tx.sender, 16)),
        `${t.tx.contract}.${t.tx.method}`, badge(t.receipt.ok === false || t.receipt.status === "failed" ? "failed" : "ok"),
        eventCounts(t.receipt.events || [])],
    })))),
  );
}

function eventCounts(events) {
  const n = {};
  events.forEach((e) => { n[e.name] = (n[e.name] || 0) + 1; });
  return Object.entries(n).map(([k, c]) => (c > 1 ? `${k} ×${c}` : k)).join(", ");
}

async function pageTx(hash) {
  const t = await chain("/v1/txs/" + hash);
  const r = t.receipt || {};
  const failed = r.ok === false || r.status === "failed";
  show(
    h("h2", {}, "Transaction"),
    h("div", { class: "card" }, kv([
      ["hash", h("code", { id: "tx-hash" }, t.hash)], ["status", t.status],
      ["block", t.height ? h("a", { href: "#/block/" + t.height }, t.height) : "pending"],
      ["contract.method", t.tx ? `${t.tx.contract}.${t.tx.method}` : "—"],
      ["sender key", t.tx ? h("code", {}, t.tx.sender) : "—"],
      ["result", t.receipt ? (failed ? badge(`failed: ${r.code || ""} ${r.error || ""}`, "failed") : badge("ok")) : "—"]])),
    h("h3", {}, "Arguments"), h("pre", { class: "card mono" }, JSON.stringify(t.tx && t.tx.args, null, 2)),
    h("h3", {}, "Events"), h("pre", { class: "card mono" }, JSON.stringify(r.events || [], null, 2)),
    t.height ? h("button", { id: "verify-tx", onclick: async () => {
      const bundle = await chain(`/v1/txs/${hash}/proof`);
      sessionStorage.setItem("bundle", JSON.stringify(bundle, null, 2));
      location.hash = "#/verify";
    } }, "Get and verify this transaction's proof") : null,
  );
}

/* ---------- search ---------- */
async function search(q) {
  q = q.trim();
  if (!q) return;
  if (/^\d{1,18}$/.test(q) && q.length < 18) { location.hash = "#/block/" + q; return; }
  if (/^did:/.test(q)) { location.hash = "#/did/" + encodeURIComponent(q); return; }
  if (/^[0-9A-HJ-NPQRTUWXY]{18}$/.test(q)) { location.hash = "#/credit/" + q; return; }
  if (/^[0-9a-f]{64}$/i.test(q)) {
    let found;
    try { found = await explorer("/lookup/" + q.toLowerCase()); } catch (e) {
      if (e.status !== 404) throw e;
      show(errorBox(new Error(`no transaction, block, anchored root or credential ${q} on this chain`)));
      return;
    }
    location.hash = found.kind === "tx" ? "#/tx/" + found.tx : found.kind === "block" ? "#/block/" + found.height
      : found.kind === "anchor" ? "#/anchor/" + found.tx : "#/credential/" + found.hash;
    return;
  }
  show(errorBox(new Error(`“${q}” is not a block height, a 64-hex hash (transaction, block, anchor root, credential), a did:… or an 18-character USCC`)));
}

async function pageDid(did) {
  const doc = await api("identity", "/1.0/identifiers/" + encodeURIComponent(did), "regulator");
  const m = doc.didDocumentMetadata || {};
  const onChain = m.chain || {};
  show(h("h2", {}, "DID"), h("p", {}, h("code", {}, did)),
    h("div", { class: "card", id: "did-metadata" }, kv([["controlled by", m.controllerOrg],
      ["created", m.created ? `${new Date(m.created).toLocaleString()} (block ${onChain.createdHeight})` : "—"],
      ["updated", m.updated ? `${new Date(m.updated).toLocaleString()} (block ${onChain.updatedHeight})` : "—"],
      ["version", m.versionId], ["deactivated", m.deactivated ? badge("deactivated", "no") : "no"],
      ["keys", ((doc.didDocument || {}).verificationMethod || []).map((v) => v.id.split("#")[1]).join(", ") || "none"]])),
    h("h3", {}, "Document"), h("pre", { class: "card mono" }, JSON.stringify(doc.didDocument, null, 2)));
}

/* ---------- verify a proof bundle ---------- */
async function pageVerify() {
  const area = h("textarea", { id: "bundle", placeholder: "Paste a proof bundle (JSON) here, or drop a .json file on this box",
    spellcheck: "false" });
  const handed = sessionStorage.getItem("bundle");
  area.value = handed || "";
  sessionStorage.removeItem("bundle");
  const out = h("div", { id: "verify-result" });
  const drop = h("div", { class: "drop" }, area);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault(); drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (!file) return;
    area.value = await file.text();
    await run();
  });
  async function run() {
    let bundle;
    try { bundle = JSON.parse(area.value); } catch (err) {
      out.replaceChildren(h("div", { class: "result bad" }, h("strong", {}, "Not JSON: "), String(err.message)));
      return;
    }
    const r = await fetch("/dashboard/api/verify", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(bundle) });
    const v = await r.json();
    out.replaceChildren(v.verified
      ? h("div", { class: "result ok" }, h("p", { id: "verify-sentence" }, h("strong", {}, "✔ Verified. "), v.sentence),
        h("details", { id: "verify-details" }, h("summary", {}, "Particulars: block hash, roots, signers, the proven value"),
          h("dl", { class: "kv" }, v.details.flatMap(([k, val]) => [h("dt", {}, k),
            h("dd", {}, val.includes("\n") ? h("pre", { class: "mono fold" }, val) : h("code", {}, val))])),
          h("p", {}, h("a", { href: "#/block/" + v.height }, `Open block ${v.height} in the explorer`))))
      : h("div", { class: "result bad" }, h("strong", {}, "✘ Not verified: "), v.reason || (v.error && v.error.message) || r.statusText));
  }
  show(h("h2", {}, "Verify a proof bundle"),
    h("p", { class: "muted" }, `Checked against this suite's genesis (${state.config.chain_id}, ${short(state.config.genesis_hash, 16)}): ` +
      "the commit certificate, the validator set, and the Merkle path to the fact. Any bundle from " +
      "`smartcity anchor`, a bank's rating answer, an identity verification or a road reading works."),
    drop, h("div", { class: "toolbar" }, h("button", { id: "verify-button", onclick: run }, "Verify"),
      h("button", { class: "secondary", onclick: () => { area.value = ""; out.replaceChildren(); } }, "Clear")), out);
  if (handed) await run();
}

/* ---------- road health ---------- */
const COLOURS = { good: "#2e9d4f", fair: "#e0a100", poor: "#d1342f" };
function lines(geometry) {
  if (!geometry) return [];
  if (geometry.type === "LineString") return [geometry.coordinates];
  if (geometry.type === "MultiLineString") return geometry.coordinates;
  return [];
}

const METRES_PER_DEGREE = 111_320;
function drawMap(features, selected, onpick) {
  const pts = features.flatMap((f) => lines(f.geometry).flat());
  if (!pts.length) return h("p", { class: "muted" }, "No road segments imported yet.");
  const lons = pts.map((p) => p[0]), lats = pts.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  const kx = Math.cos(((y0 + y1) / 2) * Math.PI / 180);
  const W = 1000, pad = 40;
  const scale = (W - 2 * pad) / Math.max((x1 - x0) * kx, (y1 - y0), 1e-9);
  const H = Math.max(220, (y1 - y0) * scale + 2 * pad + 30);
  const px = ([lon, lat]) => [pad + (lon - x0) * kx * scale, H - pad - 30 - (lat - y0) * scale];
  const svg = s("svg", { class: "map" + (selected ? " has-selection" : ""), id: "map", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "road network coloured by condition" });
  const points = (line) => line.map((p) => px(p).map((v) => v.toFixed(1)).join(",")).join(" ");
  const chosen = features.find((f) => f.id === selected);
  // The selected segment first gets a dark halo underneath, so it stands out whatever its colour
  if (chosen) for (const line of lines(chosen.geometry))
    svg.append(s("polyline", { class: "halo", points: points(line) }));
  for (const f of features) {
    const colour = COLOURS[f.properties.condition] || "#98a2b3";
    for (const line of lines(f.geometry)) {
      svg.append(s("polyline", { class: "segment" + (f.id === selected ? " selected" : ""), "data-segment": f.id,
        points: points(line), stroke: colour, onclick: () => onpick(f.id) },
        s("title", {}, `${f.properties.name || f.id}: ${f.properties.condition || "no data yet"}`)));
    }
  }
  for (const f of features) {
    for (const p of f.properties.potholes || []) {
      const [cx, cy] = px(p.geometry.coordinates);
      svg.append(s("circle", { class: "pothole", cx, cy, r: 7, "data-pothole": p.id },
        s("title", {}, `pothole ${p.id} (${p.properties.status}, ${p.properties.reports} reports)`)));
    }
  }
  streetLabels(features, px).forEach((label) => svg.append(label));
  svg.append(scaleBar(scale / METRES_PER_DEGREE, pad, H - 18));
  return svg;
}

/* One label per street (the part of a segment's name before the comma), along its longest segment */
function streetLabels(features, px) {
  const longest = {};
  for (const f of features) {
    const street = (f.properties.name || f.id).split(",")[0].trim();
    for (const line of lines(f.geometry)) {
      const xy = line.map(px);
      const length = xy.slice(1).reduce((n, p, i) => n + Math.hypot(p[0] - xy[i][0], p[1] - xy[i][1]), 0);
      if (!longest[street] || length > longest[street].length) longest[street] = { xy, length };
    }
  }
  return Object.entries(longest).filter(([, v]) => v.length > 60).map(([street, { xy }]) => {
    const a = xy[0], b = xy[xy.length - 1];
    let angle = Math.atan2(b[1] - a[1], b[0] - a[0]) * 180 / Math.PI;
    if (angle > 90) angle -= 180;
    if (angle < -90) angle += 180;
    const mid = xy[Math.floor(xy.length / 2)], [mx, my] = xy.length > 2 ? mid : [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
    return s("text", { class: "street", x: mx.toFixed(1), y: (my - 9).toFixed(1), "text-anchor": "middle",
      transform: `rotate(${angle.toFixed(1)} ${mx.toFixed(1)} ${my.toFixed(1)})` }, street);
  });
}

/* A scale bar of a round length, 80 to 200 map units long */
function scaleBar(unitsPerMetre, x, y) {
  const metres = [10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000].find((m) => m * unitsPerMetre >= 80) || 10000;
  const w = metres * unitsPerMetre;
  return s("g", { class: "scale", id: "scale-bar" },
    s("rect", { x: x - 6, y: y - 20, width: w + 60, height: 28, fill: "#ffffffcc", rx: 3 }),
    s("path", { d: `M${x} ${y - 8} V${y} H${x + w} V${y - 8}`, fill: "none", stroke: "#1d2330", "stroke-width": 2 }),
    s("text", { x: x + w + 6, y: y + 1, "font-size": 15 }, metres >= 1000 ? `${metres / 1000} km` : `${metres} m`));
}

const IRI_BANDS = [[0, 1.5, "good", "#2e9d4f"], [1.5, 2.68, "fair", "#e0a100"], [2.68, Infinity, "poor", "#d1342f"]];
function drawSeries(points, bucket) {
  const data = points.filter((p) => p.iri !== null);
  if (!data.length) return h("p", { class: "muted", id: "series-empty" }, "No roughness measured on this segment yet.");
  const W = 800, H = 240, left = 44, right = 16, top = 14, bottom = 40;
  let t0 = data[0].start, t1 = data[data.length - 1].start;
  if (t1 - t0 < bucket) { t0 -= bucket; t1 += bucket; }  // one point: centre it in three buckets
  const ymax = Math.max(3.2, ...data.map((p) => p.iri_upper ?? p.iri)) * 1.08;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (W - left - right);
  const y = (v) => H - bottom - (Math.min(v, ymax) / ymax) * (H - top - bottom);
  const label = (t) => {
    const d = new Date(t * 1000);
    return bucket >= 86_400 ? d.toLocaleDateString(undefined, { day: "numeric", month: "short" })
      : d.toLocaleString(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  };
  const svg = s("svg", { class: "chart", id: "series", viewBox: `0 0 ${W} ${H}` });
  for (const [lo, hi, name, colour] of IRI_BANDS) {
    const yTop = y(Math.min(hi, ymax)), yBottom = y(lo);
    svg.append(s("rect", { x: left, y: yTop, width: W - left - right, height: yBottom - yTop, fill: colour, opacity: 0.1 }),
      s("text", { x: W - right - 4, y: yTop + 13, "font-size": 11, "text-anchor": "end", fill: colour }, name));
  }
  for (let v = 0; v <= ymax; v += ymax > 6 ? 2 : 1) {
    svg.append(s("text", { x: left - 6, y: y(v) + 4, "font-size": 11, "text-anchor": "end" }, v.toFixed(0)),
      s("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), stroke: "#e4e7ec" }));
  }
  svg.append(s("text", { x: 4, y: top - 2, "font-size": 11 }, "IRI m/km"),
    s("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, stroke: "#999" }));
  // Ticks on bucket boundaries: at most six, each label distinct
  const step = Math.max(bucket, Math.ceil((t1 - t0) / 6 / bucket) * bucket);
  let last = "";
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const text = label(t);
    if (text === last) continue;
    last = text;
    svg.append(s("line", { x1: x(t), x2: x(t), y1: H - bottom, y2: H - bottom + 5, stroke: "#999" }),
      s("text", { class: "tick", x: x(t), y: H - bottom + 18, "font-size": 11, "text-anchor": "middle" }, text));
  }
  svg.append(s("polyline", { fill: "none", stroke: "#1f5fbf", "stroke-width": 2,
    points: data.map((p) => `${x(p.start).toFixed(1)},${y(p.iri).toFixed(1)}`).join(" ") }));
  for (const p of data) {
    if (p.iri_lower !== null && p.iri_upper !== null)
      svg.append(s("line", { x1: x(p.start), x2: x(p.start), y1: y(p.iri_lower), y2: y(p.iri_upper), stroke: "#9bb8e8", "stroke-width": 3 }));
    svg.append(s("circle", { class: "point", cx: x(p.start), cy: y(p.iri), r: 4, fill: "#1f5fbf" },
      s("title", {}, `${label(p.start)}: ${p.iri.toFixed(2)} m/km`)));
  }
  return svg;
}

async function pageRoads(selected) {
  const org = "road-authority";
  const [geo, priorities] = await Promise.all([
    api("roadhealth", "/v1/segments", org), api("roadhealth", "/v1/priorities?limit=20", org)]);
  const features = geo.features || [];
  const counts = { good: 0, fair: 0, poor: 0, none: 0 };
  features.forEach((f) => { counts[f.properties.condition || "none"] += 1; });
  const potholes = features.reduce((n, f) => n + (f.properties.potholes || []).length, 0);
  const detail = h("div", { id: "segment-detail" });
  const pick = (id) => { location.hash = "#/roads/" + encodeURIComponent(id); };
  const chosen = features.find((f) => f.id === selected);
  show(h("h2", {}, "Road health"),
    chosen ? h("p", { id: "selected-segment", class: "selected-note" }, "Selected: ", h("strong", {}, chosen.properties.name || chosen.id),
      " ", h("a", { href: "#/roads" }, "clear")) : null,
    h("p", { class: "legend" }, h("span", {}, h("i", { style: "background:#2e9d4f" }), `good (${counts.good})`),
      h("span", {}, h("i", { style: "background:#e0a100" }), `fair (${counts.fair})`),
      h("span", {}, h("i", { style: "background:#d1342f" }), `poor (${counts.poor})`),
      h("span", {}, h("i", { style: "background:#98a2b3" }), `no data (${counts.none})`),
      h("span", {}, `○ confirmed potholes: ${potholes}`),
      h("span", { id: "segment-count", class: "muted" }, `${features.length} segments`)),
    drawMap(features, selected, pick), detail,
    h("h3", {}, "Repair priorities"),
    h("div", { id: "priorities" }, table(["rank", "segment", "condition", "IRI m/km", "trend /30d", "potholes", "why"],
      priorities.map((p) => ({ click: () => pick(p.segment), cells: [p.rank, p.name || p.segment,
        badge(p.condition || "no data", p.condition || "unknown"), p.iri?.toFixed(2) ?? "—",
        p.trend_m_per_km_per_30d?.toFixed(2) ?? "—", p.confirmed_potholes, p.reasons.join("; ")] })))));
  if (selected) {
    const f = features.find((x) => x.id === selected);
    // Daily points once there are three days; hourly before that, so a new demo shows a trend too
    const path = `/v1/segments/${encodeURIComponent(selected)}/series`;
    let series = await api("roadhealth", path, org), bucket = 86_400;
    if (series.points.filter((p) => p.iri !== null).length < 3) {
      bucket = 3600;
      series = await api("roadhealth", `${path}?bucket_s=${bucket}`, org);
    }
    const pr = f ? f.properties : {};
    const rank = priorities.find((p) => p.segment === selected);
    detail.replaceChildren(h("div", { class: "card" }, h("h3", {}, `Segment ${pr.name || selected}`),
      kv([["id", h("code", {}, selected)], ["condition", badge(pr.condition || "unknown", pr.condition)],
        ["IRI", pr.iri_m_per_km != null ? `${pr.iri_m_per_km} m/km (90%: ${pr.iri_90 ? pr.iri_90.join("–") : "—"})` : "—"],
        ["length", pr.length_m != null ? `${pr.length_m} m` : "—"], ["windows", pr.windows],
        ["potholes", (pr.potholes || []).length],
        ["repair priority", rank ? `#${rank.rank} (score ${rank.score.toFixed(1)})` : "—"],
        ["trend", rank && rank.trend_m_per_km_per_30d != null ? `${rank.trend_m_per_km_per_30d > 0 ? "+" : ""}${rank.trend_m_per_km_per_30d.toFixed(2)} m/km per 30 days` : "not enough days yet"],
        ["condition tx", pr.condition_tx ? h("a", { href: "#/tx/" + pr.condition_tx }, short(pr.condition_tx, 16)) : "—"]]),
      h("h3", {}, `Roughness over time (${bucket >= 86_400 ? "daily" : "hourly: less than three days measured"})`),
      drawSeries(series.points, bucket)));
  }
}

/* ---------- credit ---------- */
function orgSelect(id, role, current, onchange) {
  const orgs = state.config.orgs.filter((o) => o.roles.includes(role));
  return h("select", { id, onchange: (e) => onchange(e.target.value) },
    orgs.map((o) => h("option", { value: o.id, selected: o.id === current }, `${o.name} (${o.id})`)));
}

function reasonList(reasons, id) {
  if (!reasons || !reasons.length) return h("p", { class: "muted", id }, "No factor raised this SME's risk.");
  return h("ol", { class: "reasons", id }, reasons.map((r) =>
    h("li", {}, r.text || `${r.description}`, " ", h("span", { class: "muted", title: "the model's name for this ratio" }, `(${r.code})`))));
}
function reasonSummary(reasons) {
  return h("span", { title: (reasons || []).map((r) => r.description).join("\n") },
    [...new Set((reasons || []).map((r) => r.category.replace("_", " ")))].join(", ") || "—");
}
function orgName(id) { return (state.config.orgs.find((o) => o.id === id) || {}).name || id; }

async function pageCredit(uscc) {
  const sme = sessionStorage.getItem("credit:sme") || "sme-demo";
  const bank = sessionStorage.getItem("credit:bank") || "bank-a";
  const { smes } = await api("credit", "/smes", "regulator");
  const body = h("div", { id: "sme-detail" });
  const banking = h("div", { id: "bank-view" });
  show(h("h2", {}, "SME credit"),
    h("div", { class: "toolbar" }, "Viewing as SME:", orgSelect("sme-org", "sme", sme, (v) => {
      sessionStorage.setItem("credit:sme", v); route(); }),
    "Bank:", orgSelect("bank-org", "bank", bank, (v) => { sessionStorage.setItem("credit:bank", v); route(); })),
    h("div", { id: "smes" }, table(["USCC", "name", "organisation", "registered by", "block"], smes.map((x) => ({
      click: () => { location.hash = "#/credit/" + x.uscc; },
      cells: [h("code", {}, x.uscc), x.name || orgName(x.org), x.org, x.registered_by, h("a", { href: "#/block/" + x.height }, x.height)] })))),
    body, banking);
  const named = Object.fromEntries(smes.map((x) => [x.uscc, x.name || orgName(x.org)]));
  await bankView(banking, bank, named);
  const mine = smes.filter((x) => x.org === sme);
  const target = uscc || (mine[0] && mine[0].uscc);
  if (!target) { body.append(h("p", { class: "muted" }, `${orgName(sme)} has not registered an SME yet.`)); return; }
  const owner = (smes.find((x) => x.uscc === target) || {}).org || sme;
  body.append(h("h3", {}, `${named[target] || "SME"} (${target})`));
  try {
    const r = await api("credit", `/smes/${target}/rating`, owner);
    body.append(h("div", { class: "card", id: "rating" }, kv([["grade", h("strong", {}, r.grade)], ["score", r.score?.toFixed(1)],
      ["probability of default", r.pd != null ? (r.pd * 100).toFixed(2) + " %" : "—"], ["period", r.period],
      ["model", h("code", {}, short(r.model, 16))], ["rated in block", h("a", { href: "#/block/" + r.height }, r.height)]]),
      h("h3", {}, "Why not a better grade"),
      h("p", { class: "muted" }, "The ratios that cost this SME the most score points, each with its meaning and value " +
        "(ratio definitions from the Polish bankruptcy data's attribute list)."),
      reasonList(r.reasons, "reasons")));
  } catch (err) {
    body.append(h("p", { class: "muted", id: "rating" }, err.status === 404 ? "Not rated yet." : "Rating: " + err.message));
  }
  // The credit service lists single and anchored-batch ratings alike (the regulator sees no values)
  const { ratings } = await api("credit", `/smes/${target}/ratings`, "regulator");
  body.append(h("h3", {}, `Rating history (${ratings.length})`),
    h("div", { id: "ratings" }, table(["#", "grade", "score", "probability of default", "period", "main risk factors", "model", "block"],
      ratings.map((x) => ({ click: () => { location.hash = "#/tx/" + x.tx; }, cells: [x.seq ?? "batch", h("strong", {}, x.grade),
        Number(x.score).toFixed(1), (Number(x.pd) * 100).toFixed(2) + " %", x.period, reasonSummary(x.reasons),
        h("code", {}, short(x.model, 12)), h("a", { href: "#/tx/" + x.tx }, x.height)] })))));
  const inq = await api("credit", `/smes/${target}/inquiries`, "regulator");
  body.append(h("h3", {}, `Who inquired (${inq.total_on_chain} on the chain)`),
    h("div", { id: "inquiries" }, table(["#", "bank", "purpose", "rating seq", "consent tx", "block"], inq.inquiries.map((q) => ({
      cells: [q.n, `${orgName(q.bank)} (${q.bank})`, q.purpose.replace("_", " "), q.rating_seq, h("a", { href: "#/tx/" + q.consent_tx }, short(q.consent_tx)),
        h("a", { href: "#/block/" + q.height }, q.height)] })))));
}

/* What one bank sees: the consents SMEs granted it, and each rating it read with that read's proof */
async function bankView(into, bank, named) {
  const [{ consents }, reads] = await Promise.all([api("credit", "/consents", bank), api("credit", "/banks/me/inquiries", bank)]);
  into.replaceChildren(h("h3", {}, `${orgName(bank)}: consents and the ratings it read`),
    h("div", { id: "bank-consents" }, table(["SME", "purpose", "from", "until", "status"], consents.map((c) => ({
      cells: [`${named[c.uscc] || c.uscc}`, c.purpose.replace("_", " "), new Date(c.start_ms).toLocaleDateString(),
        new Date(c.end_ms).toLocaleDateString(), c.live ? badge("in force", "yes") : badge(c.status, "no")] })))),
    h("p", { class: "muted" }, `${reads.total_on_chain} rating read(s) by ${bank}, each recorded on the chain before the answer.`),
    h("div", { id: "bank-reads" }, table(["#", "SME", "purpose", "rating", "model", "read in block", "proof"], reads.inquiries.map((q) => ({
      cells: [q.seq, `${named[q.uscc] || ""} (${q.uscc})`, q.purpose.replace("_", " "),
        h("a", { href: "#/tx/" + q.rating_tx }, `#${q.rating_seq}`), h("code", {}, short(q.model, 12)),
        h("a", { href: "#/block/" + q.height }, q.height),
        h("button", { class: "secondary verify-read", "data-tx": q.tx, onclick: async () => {
          const bundle = await chain(`/v1/txs/${q.tx}/proof`);
          sessionStorage.setItem("bundle", JSON.stringify(bundle, null, 2));
          location.hash = "#/verify";
        } }, "Verify the read")] })))));
}

/* ---------- identity ---------- */
async function pageIdentity() {
  const agency = sessionStorage.getItem("identity:agency") || "city-agency";
  const body = h("div", {});
  const lookup = h("input", { type: "text", id: "credential-id", placeholder: "credential id", size: 40 });
  const found = h("div", { id: "credential" });
  show(h("h2", {}, "Identity"),
    h("div", { class: "toolbar" }, "Agency:", orgSelect("agency-org", "agency", agency, (v) => {
      sessionStorage.setItem("identity:agency", v); route(); })), body);
  try {
    const issuer = await api("identity", "/issuers/" + encodeURIComponent(agency), agency);
    body.append(h("div", { class: "card", id: "issuer" }, h("h3", {}, "Issuer"), kv([["DID", h("a", { href: "#/did/" + encodeURIComponent(issuer.did) }, issuer.did)],
      ["authorised now", issuer.authorised_now.join(", ") || "none"],
      ["admissions", admissions(issuer.types)]])));
  } catch (err) {
    body.append(h("p", { class: "muted", id: "issuer" }, err.status === 404 ? `${agency} is not an issuer yet (no DID or admission).` : err.message));
  }
  body.append(h("h3", {}, "Issued and revoked credentials"));
  const filter = sessionStorage.getItem("identity:status") || "";
  body.append(h("div", { class: "toolbar" }, "Show:", h("select", { id: "credential-status", onchange: (e) => {
    sessionStorage.setItem("identity:status", e.target.value); route(); } },
  [["", "all"], ["issued", "issued"], ["suspended", "suspended"], ["revoked", "revoked"]].map(([v, t]) =>
    h("option", { value: v, selected: v === filter }, t)))));
  try {
    const list = await api("identity", "/credentials?limit=200" + (filter ? "&status=" + filter : ""), agency);
    const items = list.credentials;
    const counts = { issued: 0, suspended: 0, revoked: 0 };
    items.forEach((c) => { counts[c.status] += 1; });
    body.append(h("p", { class: "muted", id: "credential-counts" },
      `${items.length}${list.next_cursor ? "+" : ""} shown: ${counts.issued} issued, ${counts.suspended} suspended, ${counts.revoked} revoked`),
    h("div", { id: "credentials" }, table(["id", "type", "subject", "issued", "status", "anchored", ""], items.map((c) => ({ cells: [
      h("code", {}, short(c.id.replace("urn:uuid:", ""), 13)), c.type, c.subject ? h("a", { href: "#/did/" + encodeURIComponent(c.subject) }, short(c.subject, 28)) : "—",
      new Date(c.issued_at).toLocaleString(),
      c.status === "issued" ? badge("issued", "yes") : h("span", {}, badge(c.status, c.status === "revoked" ? "no" : "fair"),
        c.status_height ? [" at block ", h("a", { href: "#/block/" + c.status_height }, c.status_height)] : null),
      h("a", { href: "#/credential/" + c.hash }, `block ${c.anchor.height}`),
      c.status === "revoked" ? "" : h("button", { class: "secondary revoke", "data-credential": c.id, onclick: () => revoke(agency, c) }, "Revoke"),
    ] })))));
  } catch (err) {
    body.append(h("p", { class: "error", id: "credentials" }, err.message));
  }
  body.append(h("h3", {}, "Look up a credential"));
  body.append(h("div", { class: "toolbar" }, lookup, h("button", { onclick: async () => {
    try {
      const c = await api("identity", "/credentials/" + encodeURIComponent(lookup.value.trim()), agency);
      found.replaceChildren(h("div", { class: "card" }, kv([["type", c.type], ["format", c.format], ["subject", h("code", {}, c.subject)],
        ["status", c.revoked ? badge("revoked", "no") : c.suspended ? badge("suspended", "fair") : badge("valid", "yes")],
        ["anchored", h("a", { href: "#/tx/" + c.anchor.tx }, `block ${c.anchor.height}`)], ["hash", h("code", {}, c.hash)]])));
    } catch (err) { found.replaceChildren(errorBox(err)); }
  } }, "Look up")), found);
}

function admissions(types) {
  const periods = Object.entries(types).flatMap(([type, spans]) =>
    spans.map(([from, until]) => `${type}: from block ${from}${until ? ` until block ${until}` : ""}`));
  return periods.length ? periods.join("; ") : "none";
}

async function revoke(agency, c) {
  if (!window.confirm(`Revoke ${c.type} ${c.id}? Revocation is final and recorded on the chain.`)) return;
  try {
    await api("identity", `/credentials/${encodeURIComponent(c.id)}/revoke`, agency, {
      method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  } catch (err) { show(errorBox(err)); return; }
  await route();
}

/* ---------- start ---------- */
async function start() {
  state.config = await (await fetch("/dashboard/api/config")).json();
  document.getElementById("footer").textContent =
    `chain ${state.config.chain_id} · genesis ${short(state.config.genesis_hash, 16)} · ` +
    (state.config.demo ? "demo mode: the page acts as the demo organisations" : "tokens pasted by you");
  if (!state.config.demo) {
    const banner = document.getElementById("banner");
    const aud = h("select", {}, state.config.services.map((a) => h("option", { value: a }, a)));
    const tok = h("input", { type: "text", size: 60, placeholder: "bearer token" });
    banner.replaceChildren("Not in demo mode: paste a token from `smartcity token --as ORG --audience SERVICE` ",
      aud, tok, h("button", { onclick: () => { sessionStorage.setItem("token:" + aud.value, tok.value.trim()); route(); } }, "Use"));
    banner.hidden = false;
  }
  document.getElementById("search").addEventListener("submit", (e) => {
    e.preventDefault(); search(document.getElementById("search-input").value).catch((err) => show(errorBox(err)));
  });
  window.addEventListener("hashchange", route);
  await route();
}
start().catch((err) => show(errorBox(err)));
