// End-to-end test of the admin page in headless Chromium (driven by playwright-core).
//
//   node ui-e2e.mjs <admin base URL> <token file> <route name> [screenshot dir]
//
// Loads /ui/, finds the route in the overview, opens the playground, pastes the token, lists
// the tools, calls `echo`, asks for the explanation, goes back to the overview until its live
// figures count the call, and prints what it saw as one JSON line:
//   {"routeShown":true,"tools":[...],"echo":"...","explanation":"...","toolCalls":1}
// Exits non-zero with a message on any failure. Chromium: $CHROMIUM or /usr/bin/chromium.
import { readFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, tokenFile, routeName, shots] = process.argv.slice(2);
if (!base || !tokenFile || !routeName) {
  console.error('usage: node ui-e2e.mjs <admin base URL> <token file> <route name> [screenshot dir]');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  console.error(`Chromium not found at ${executablePath} (apt-get install chromium, or set CHROMIUM)`);
  process.exit(3);
}
const token = readFileSync(tokenFile, 'utf8').trim();
const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });

  await page.goto(`${base}/ui/`);
  const row = page.locator(`#routes tr[data-route="${routeName}"]`);
  await row.waitFor({ timeout: 15000 });
  await page.locator('#stats .card').first().waitFor({ timeout: 15000 });

  await page.click('#tab-playground');
  const value = await page.$$eval('#route option', (options, name) => {
    const o = options.find((opt) => opt.textContent.startsWith(name + ' '));
    return o ? o.value : null;
  }, routeName);
  if (value === null) throw new Error(`route ${routeName} is not offered in the playground`);
  await page.selectOption('#route', value);
  await page.fill('#token', token);
  await page.click('#connect');
  await page.waitForFunction(() => /Connected|Not connected/.test(document.getElementById('status').textContent), null, { timeout: 20000 });
  const status = await page.textContent('#status');
  if (!status.startsWith('Connected')) {
    throw new Error(`connect failed: ${status} ${await page.textContent('#error')}`);
  }
  const tools = await page.$$eval('#tools li[data-name]', (lis) => lis.map((li) => li.dataset.name));

  await page.click('#tools li[data-name="echo"]');
  await page.fill('#args', JSON.stringify({ message: 'hello from the admin page' }));
  await page.click('#call');
  await page.waitForFunction(() => !/^(—|Calling…)$/.test(document.getElementById('result').textContent), null, { timeout: 20000 });
  const echo = await page.textContent('#result');
  await page.click('#explain');
  await page.waitForFunction(() => document.getElementById('explanation').textContent.includes('decision:'), null, { timeout: 20000 });
  const explanation = await page.textContent('#explanation');
  if (shots) {
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'admin-playground.png'), fullPage: true });
  }

  // Back to the overview: the live figures have counted the playground's traffic.
  await page.click('#tab-overview');
  await page.waitForFunction(() => {
    const n = document.querySelector('#stats [data-figure="toolCalls"] .n');
    return n && Number(n.textContent) >= 1;
  }, null, { timeout: 15000 });
  const toolCalls = Number(await page.textContent('#stats [data-figure="toolCalls"] .n'));
  if (shots) await page.screenshot({ path: join(shots, 'admin-overview.png'), fullPage: true });
  if (problems.length) throw new Error('the page reported errors: ' + problems.join('; '));
  console.log(JSON.stringify({ routeShown: true, tools, echo, explanation, toolCalls }));
} finally {
  await browser.close();
}
