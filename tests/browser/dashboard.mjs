// Drives headless Chromium through the dashboard and prints what a user saw, as JSON.
// usage: node dashboard.mjs <base-url> <screenshot-dir> <inputs.json>
// inputs: {"height": N (a block with transactions), "bundle": {...}, "tampered": {...},
//          "did": "...", "uscc": "..."}
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [base, shots, inputsPath] = process.argv.slice(2);
const inputs = JSON.parse(readFileSync(inputsPath, "utf8"));
const seen = { errors: [], console: [] };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(15000);
page.on("pageerror", (e) => seen.errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") seen.console.push(m.text()); });
const external = [];
page.on("request", (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });

async function step(name, fn) {
  try { seen[name] = await fn(); } catch (e) { seen[name] = { failed: String(e) }; }
}
const text = (sel) => page.locator(sel).innerText();
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

await step("chain", async () => {
  await page.goto(base + "/");
  await page.locator("#blocks table tbody tr").first().waitFor();
  const out = { title: await page.title(), url: page.url(), height: await text("#chain-height"),
    rows: await page.locator("#blocks tbody tr").count(), evidence: await text("#evidence"),
    validators: await page.locator(".card table tbody tr").count() };
  await shot("chain");
  return out;
});

await step("block", async () => {
  await page.locator("#search-input").fill(String(inputs.height));
  await page.locator("#search button").click();
  await page.locator("#certificate table").waitFor();
  await page.locator("#txs tbody tr").first().waitFor();
  const out = { url: page.url(), hash: await text("#block-hash"), certificate: await text("#certificate"),
    txs: await text("#txs"), txRows: await page.locator("#txs tbody tr.clickable").count() };
  await shot("block");
  return out;
});

await step("txProof", async () => {
  await page.locator("#txs tbody tr.clickable").first().click();
  await page.locator("#tx-hash").waitFor();
  const hash = await text("#tx-hash");
  await page.locator("#verify-tx").click();
  await page.locator("#verify-result .result").waitFor();
  return { hash, result: await text("#verify-result") };
});

async function verify(bundle, name) {
  await page.goto(base + "/#/verify");
  await page.getByRole("button", { name: "Clear" }).click();
  await page.locator("#bundle").fill(typeof bundle === "string" ? bundle : JSON.stringify(bundle, null, 2));
  await page.locator("#verify-button").click();
  await page.locator("#verify-result .result").waitFor();
  const out = { result: await text("#verify-result"), ok: await page.locator("#verify-result .result.ok").count() === 1 };
  await shot(name);
  return out;
}
await step("verifyValid", () => verify(inputs.bundle, "verify-valid"));
await step("verifyTampered", () => verify(inputs.tampered, "verify-tampered"));
await step("verifyGarbage", () => verify("{not json", "verify-garbage"));

await step("roads", async () => {
  await page.goto(base + "/#/roads");
  await page.locator("#map polyline").first().waitFor({ state: "attached" });
  const segments = await page.locator("#map polyline.segment").count();
  const legend = await text(".legend");
  const priorities = await page.locator("#priorities tbody tr").count();
  const first = page.locator("#map polyline.segment").first();
  const id = await first.getAttribute("data-segment");
  // A straight road has a zero-height box, which Playwright calls hidden: click its middle
  const box = await first.boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.locator("#segment-detail h3").first().waitFor();
  const out = { segments, legend, priorities, id, url: page.url(), detail: await text("#segment-detail"),
    selected: await page.locator("#map polyline.selected").count() };
  await shot("roads");
  return out;
});

await step("credit", async () => {
  await page.goto(base + "/#/credit");
  await page.locator("#inquiries, #sme-detail p").first().waitFor();
  const out = { smes: await text("#smes"), detail: await text("#sme-detail") };
  await shot("credit");
  return out;
});

await step("searchUscc", async () => {
  await page.goto(base + "/#/chain");
  await page.locator("#blocks").waitFor();
  await page.locator("#search-input").fill(inputs.uscc);
  await page.locator("#search button").click();
  await page.waitForURL(/#\/credit\//);
  await page.locator("#inquiries").waitFor();
  return { url: page.url(), detail: await text("#sme-detail") };
});

await step("identity", async () => {
  await page.goto(base + "/#/identity");
  await page.locator("#issuer").waitFor();
  const out = { text: await text("main") };
  await shot("identity");
  return out;
});

await step("searchDid", async () => {
  await page.locator("#search-input").fill(inputs.did);
  await page.locator("#search button").click();
  await page.waitForURL(/#\/did\//);
  await page.locator("main pre").first().waitFor();
  return { url: page.url(), text: await text("main") };
});

await step("searchUnknown", async () => {
  await page.locator("#search-input").fill("f".repeat(64));
  await page.locator("#search button").click();
  await page.locator("main .error").waitFor();
  return { text: await text("main .error") };
});

seen.external = external;
await browser.close();
process.stdout.write(JSON.stringify(seen));
