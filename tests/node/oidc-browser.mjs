// A browser signing in through the gateway's `oidc` policy: headless Chromium (playwright-core)
// opens a protected page, is sent to the OpenID provider (npm `oidc-provider`'s development
// login and consent pages), signs in as LOGIN, and comes back to the page. Then, with the
// browser's cookies: the page again (signed in), the session cookie tampered with (refused),
// and logout (ends access). Prints one JSON report.
//
//   node oidc-browser.mjs GATEWAY_BASE PATH LOGIN LOGOUT_PATH
//
// Chromium: $CHROMIUM or /usr/bin/chromium.

import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

const [base, path, login, logoutPath] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!existsSync(executablePath)) {
  console.error(`Chromium not found at ${executablePath} (apt-get install chromium, or set CHROMIUM)`);
  process.exit(2);
}
const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
const out = { steps: [] };
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(base + path);
  // The provider's pages until the browser is back at the gateway.
  for (let i = 0; i < 6 && !page.url().startsWith(base); i++) {
    out.steps.push(new URL(page.url()).pathname);
    if (await page.locator('input[name="login"]').count()) {
      await page.fill('input[name="login"]', login);
      await page.fill('input[name="password"]', "any-password");
    }
    await Promise.all([page.waitForNavigation({ timeout: 15000 }), page.click("button[type=submit]")]);
  }
  out.url = page.url();
  out.text = (await page.textContent("body")).trim();

  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name.startsWith("agw_oidc_s_"));
  out.sessionCookie = session ? { httpOnly: session.httpOnly, sameSite: session.sameSite } : null;
  const status = async () => (await context.request.get(base + path, { maxRedirects: 0 })).status();
  out.again = await status();
  if (session) {
    // One character changed: the sealed cookie no longer opens.
    const flipped = session.value.slice(0, -2) + (session.value.at(-2) === "A" ? "B" : "A") + session.value.at(-1);
    await context.addCookies([{ ...session, value: flipped }]);
    out.tampered = await status();
    await context.addCookies([session]);
    out.restored = await status();
  }
  await page.goto(base + logoutPath);
  out.afterLogout = await status();
  await context.close();
} catch (e) {
  out.error = String(e.message).slice(0, 500);
}
await browser.close();
console.log(JSON.stringify(out));
