// Drives headless Chromium through the dashboard and prints what a person saw, as JSON.
// usage: node dashboard.mjs <base-url> <screenshot-dir> <inputs.json>
// inputs: {height, tx, block_hash (a block with transactions), bundle, tampered, uscc, did,
//          agency_did, segment (driven, with a pothole), root (an anchored telemetry batch)}
// Each step records what it saw or {failed}; console errors and failed requests are recorded
// with the step they happened in, so the test can tell an expected 404 from a broken page.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [base, shots, inputsPath] = process.argv.slice(2);
const inputs = JSON.parse(readFileSync(inputsPath, "utf8"));
const seen = { errors: [], console: [], failedRequests: [], external: [] };
let current = "start";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(15000);
page.on("pageerror", (e) => seen.errors.push({ step: current, error: String(e) }));
page.on("console", (m) => { if (m.type() === "error") seen.console.push({ step: current, text: m.text() }); });
page.on("request", (r) => { if (!r.url().startsWith(base)) seen.external.push(r.url()); });
page.on("requestfailed", (r) => seen.failedRequests.push({ step: current, url: r.url(), status: r.failure()?.errorText }));
page.on("response", (r) => { if (r.status() >= 400) seen.failedRequests.push({ step: current, url: r.url(), status: r.status() }); });
page.on("dialog", (d) => d.accept()); // the revoke button asks for confirmation

async function step(name, fn) {
  current = name;
  try { seen[name] = await fn(); } catch (e) { seen[name] = { failed: String(e) }; }
}
const text = (sel) => page.locator(sel).first().innerText();
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
async function search(q) {
  await page.locator("#search-input").fill(q);
  await page.locator("#search button").click();
}

await step("chain", async () => {
  await page.goto(base + "/");
  await page.locator("#blocks table tbody tr").first().waitFor();
  const out = { title: await page.title(), height: await text("#chain-height"),
    rows: await page.locator("#blocks tbody tr").count(), validators: await text("#validators"),
    evidence: await text("#evidence"), anchors: await text("#anchors"),
    validatorOrder: await page.locator("#validators tbody tr td:first-child").allInnerTexts(),
    observers: await text("#observers"), observerRows: await page.locator("#observers tbody tr").count() };
  await shot("chain");
  return out;
});

await step("block", async () => {
  await search(String(inputs.height));
  await page.waitForURL(/#\/block\//);
  await page.locator("#txs tbody tr").first().waitFor();
  const out = { url: page.url(), certificate: await text("#certificate"), txs: await text("#txs") };
  await shot("block");
  return out;
});

await step("searchBlockHash", async () => {
  await page.goto(base + "/#/verify");
  await search(inputs.block_hash);
  await page.waitForURL(/#\/block\//);
  await page.locator("#certificate").waitFor();
  return { url: page.url() };
});

await step("searchTx", async () => {
  await search(inputs.tx);
  await page.waitForURL(/#\/tx\//);
  await page.locator("#tx-hash").waitFor();
  const out = { url: page.url(), text: await text("main") };
  await shot("tx");
  return out;
});

await step("txProof", async () => {
  await page.locator("#verify-tx").click();
  await page.locator("#verify-result .result").waitFor();
  return { result: await text("#verify-result") };
});

await step("searchRoot", async () => {
  await search(inputs.root);
  await page.waitForURL(/#\/anchor\//);
  await page.locator("#anchor").waitFor();
  const out = { url: page.url(), tx: page.url().split("/").pop(), text: await text("#anchor") };
  await shot("anchor");
  return out;
});

await step("anchorProof", async () => {
  await page.locator("#verify-anchor").click();
  await page.locator("#verify-result .result").waitFor();
  return { result: await text("#verify-result") };
});

await step("anchorForm", async () => {
  await page.goto(base + "/#/chain");
  await page.locator("#anchor-root").fill(inputs.root);
  await page.locator("#anchor-org").selectOption("bsn-operator");
  await page.locator("#anchor-find").click();
  await page.waitForURL(/#\/anchor\//);
  await page.locator("#anchor").waitFor();
  return { url: page.url() };
});

async function verify(bundle, name) {
  await page.goto(base + "/#/verify");
  await page.getByRole("button", { name: "Clear" }).click();
  await page.locator("#bundle").fill(typeof bundle === "string" ? bundle : JSON.stringify(bundle, null, 2));
  await page.locator("#verify-button").click();
  await page.locator("#verify-result .result").waitFor();
  const out = { result: await text("#verify-result"), ok: await page.locator("#verify-result .result.ok").count() === 1 };
  if (out.ok) {
    // The sentence shows; the particulars stay folded until asked for, then fold out in place
    out.sentence = await text("#verify-sentence");
    out.foldedHeight = (await page.locator("#verify-result").boundingBox()).height;
    await page.locator("#verify-details summary").click();
    out.details = await text("#verify-details");
    out.openHeight = (await page.locator("#verify-result").boundingBox()).height;
    await shot(name + "-details");
    await page.locator("#verify-details summary").click();
  }
  await shot(name);
  return out;
}
await step("verifyValid", () => verify(inputs.bundle, "verify-valid"));
await step("verifyTampered", () => verify(inputs.tampered, "verify-tampered"));
await step("verifyGarbage", () => verify("{not json", "verify-garbage"));

await step("verifyDropped", async () => {
  await page.goto(base + "/#/verify");
  await page.getByRole("button", { name: "Clear" }).click();
  const content = readFileSync(`${shots}/bundle.proof.json`, "utf8");
  const dataTransfer = await page.evaluateHandle((body) => {
    const dt = new DataTransfer();
    dt.items.add(new File([body], "bundle.proof.json", { type: "application/json" }));
    return dt;
  }, content);
  await page.dispatchEvent(".drop", "dragover", { dataTransfer });
  await page.dispatchEvent(".drop", "drop", { dataTransfer });
  await page.locator("#verify-result .result").waitFor();
  const out = { result: await text("#verify-result"), ok: await page.locator("#verify-result .result.ok").count() === 1 };
  await shot("verify-dropped");
  return out;
});

await step("roads", async () => {
  await page.goto(base + "/#/roads");
  await page.locator("#map polyline").first().waitFor({ state: "attached" });
  // Lines of the page that are only a value the page failed to leave out or to format
  const strays = (await text("#view")).split("\n").filter((l) => /^(null|undefined|NaN)$/.test(l.trim()));
  const segments = page.locator("#map polyline.segment");
  const colours = await segments.evaluateAll((els) => els.map((e) => e.getAttribute("stroke")));
  const target = page.locator(`#map polyline.segment[data-segment="${inputs.segment}"]`).first();
  // A straight road has a zero-height box, which Playwright calls hidden: click its middle
  const box = await target.boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForURL(/#\/roads\/.+/);
  await page.locator("#segment-detail h3").first().waitFor();
  const out = { strays, segments: colours.length, coloured: colours.filter((c) => c !== "#98a2b3").length,
    potholes: await page.locator("#map circle.pothole").count(), legend: await text(".legend"),
    priorities: await page.locator("#priorities tbody tr.clickable").count(), priorityText: await text("#priorities"),
    url: page.url(), detail: await text("#segment-detail"), points: await page.locator("#series circle").count(),
    streets: await page.locator("#map text.street").allTextContents(),
    scale: await page.locator("#scale-bar text").textContent(),
    selected: await text("#selected-segment"), halo: await page.locator("#map polyline.halo").count(),
    selectedWidth: await page.locator("#map polyline.segment.selected").first().evaluate((e) => getComputedStyle(e).strokeWidth),
    otherOpacity: await page.locator("#map polyline.segment:not(.selected)").first().evaluate((e) => getComputedStyle(e).opacity),
    ticks: await page.locator("#series text.tick").allTextContents() };
  await shot("roads");
  return out;
});

await step("searchUscc", async () => {
  await page.goto(base + "/#/chain");
  await page.locator("#blocks").waitFor();
  await search(inputs.uscc);
  await page.waitForURL(/#\/credit\//);
  await page.locator("#inquiries").waitFor();
  return { url: page.url() };
});

await step("credit", async () => {
  await page.locator("#bank-reads").waitFor();
  const out = { detail: await text("#sme-detail"), ratings: await page.locator("#ratings tbody tr.clickable").count(),
    ratingsText: await text("#ratings"), inquiries: await text("#inquiries"), reasons: await page.locator("#reasons li").allInnerTexts(),
    smes: await text("#smes"), smeOption: await text("#sme-org option:checked"),
    bankConsents: await text("#bank-consents"), bankReads: await text("#bank-reads") };
  await shot("credit");
  return out;
});

await step("bankReadProof", async () => {
  await page.locator("#bank-reads button.verify-read").first().click();
  await page.waitForURL(/#\/verify$/);
  await page.locator("#verify-result .result").waitFor();
  const out = { result: await text("#verify-result"), sentence: await text("#verify-sentence") };
  await shot("bank-read-proof");
  return out;
});

await step("identity", async () => {
  await page.goto(base + "/#/identity");
  await page.locator("#credential-counts").waitFor();
  const issuer = await text("#issuer");
  const before = await text("#credential-counts");
  await page.locator("#credentials button.revoke").first().click();
  await page.waitForFunction(() => /1 revoked/.test(document.querySelector("#credential-counts")?.textContent || ""));
  const after = await text("#credential-counts");
  await shot("identity"); // the issued one next to the revoked one
  await page.locator("#credential-status").selectOption("revoked");
  await page.waitForFunction(() => /^1 shown: 0 issued/.test(document.querySelector("#credential-counts")?.textContent || ""));
  const out = { issuer, before, after, revokedRows: await page.locator("#credentials tbody tr").count(),
    revoked: await text("#credentials") };
  await page.locator("#credential-status").selectOption("");
  return out;
});

await step("searchDid", async () => {
  await search(inputs.did);
  await page.waitForURL(/#\/did\//);
  await page.locator("main pre").first().waitFor();
  const out = { url: page.url(), text: await text("main") };
  await shot("did");
  return out;
});

await step("searchUnknown", async () => {
  await search("f".repeat(64));
  await page.locator("main .error").waitFor();
  return { text: await text("main .error") };
});

await browser.close();
process.stdout.write(JSON.stringify(seen));
