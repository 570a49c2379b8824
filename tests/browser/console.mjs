// End-to-end check of `ferry console` in a real headless browser (Debian's chromium, driven by
// playwright-core). tests/console.rs prepares the world (a scheme whose run dead-lettered two
// records, one holding Chinese text, one holding <script>), starts the console and runs:
//
//   node tests/browser/console.mjs
//
// with CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD, SCHEME, SECRETS (a JSON array of strings no
// page may show) and optionally SCREENSHOT (a PNG path). Each step prints `ok: ...`; the first
// failed expectation exits 1 with what was seen.
import { chromium } from 'playwright-core';

const url = need('CONSOLE_URL');
const user = need('CONSOLE_USER');
const password = need('CONSOLE_PASSWORD');
const scheme = need('SCHEME');
const secrets = JSON.parse(need('SECRETS'));
const WAIT_MS = 30000;

function need(name) {
  const value = process.env[name];
  if (!value) { console.error(`console.mjs: ${name} is not set`); process.exit(2); }
  return value;
}

function check(condition, what, seen) {
  if (!condition) throw new Error(`${what}${seen === undefined ? '' : `\n  seen: ${JSON.stringify(seen)}`}`);
  console.log(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
});
// Every body the browser received, to prove no secret ever reached it.
const received = [];
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 }, locale: 'zh-CN' });
  const page = await context.newPage();
  page.on('response', async (response) => {
    try { received.push(`${response.url()}\n${await response.text()}`); } catch (_) { /* redirects */ }
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('dialog', (d) => { errors.push(`a dialog opened: ${d.message()}`); d.dismiss(); });

  // 1. Without a login: the API refuses, the page asks to log in.
  const anonymous = await context.request.get(`${url}/api/schemes`);
  check(anonymous.status() === 401, 'the API refuses a request without the login (401)', anonymous.status());
  await page.goto(url);
  await page.waitForSelector('#login-submit', { timeout: WAIT_MS });
  check(await page.locator('#schemes').count() === 0, 'the page shows the login form, no data');

  // 2. A wrong password is refused; the right one logs in.
  await page.fill('#user', user);
  await page.fill('#password', 'not-the-password');
  await page.click('#login-submit');
  await page.waitForFunction(() => document.querySelector('#login-error')?.textContent.includes('wrong'), null, { timeout: WAIT_MS });
  check(true, 'a wrong password is refused');
  await page.fill('#password', password);
  await page.click('#login-submit');
  const row = page.locator(`tr[data-scheme="${scheme}"]`);
  await row.waitFor({ timeout: WAIT_MS });
  // Marks this document: it is gone if the page reloads.
  await page.evaluate(() => { window.__sameDocument = true; });

  // 3. The scheme whose run dead-lettered records.
  await page.waitForFunction((s) => document.querySelector(`tr[data-scheme="${s}"] .dead-cell`)?.textContent.trim() === '2', scheme, { timeout: WAIT_MS });
  const lastRun = await row.locator('.last-run').innerText();
  check(/2 dead-lettered/.test(lastRun), 'the Schemes page shows the run with 2 dead-lettered records', lastRun);
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });

  // 4. Its dead letters: the error, the field, the Chinese payload, the <script> as text.
  await row.locator('.dead-cell a').click();
  await page.waitForSelector('tr.letter', { timeout: WAIT_MS });
  const letters = page.locator('tr.letter');
  check(await letters.count() === 2, 'the Dead letters page lists 2 dead letters', await letters.count());
  const chinese = page.locator('tr.letter', { hasText: '李四🚀' });
  const chineseText = await chinese.innerText();
  check(chineseText.includes('"name": "李四🚀"') && chineseText.includes('上海市'), 'a Chinese payload is shown pretty-printed and intact', chineseText);
  check(/amount_small/.test(chineseText) && /record/.test(chineseText), 'its error and class are shown', chineseText);
  const scriptRow = page.locator('tr.letter', { hasText: '<script>' });
  check(await scriptRow.count() === 1, 'a record holding <script> is shown as text');
  check(await page.evaluate(() => window.__xss === undefined && document.querySelectorAll('main script').length === 0),
    'and it did not run or become an element');

  // 5. Filtering by text narrows the list (and the filtered replay's count).
  await page.fill('#filter-text', '李四');
  check(await letters.count() === 1, 'filtering by text shows 1 dead letter', await letters.count());
  check((await page.locator('#replay-filtered').innerText()).includes('(1)'), 'the filtered replay offers 1');
  await page.fill('#filter-text', '');

  // 6. A cross-site POST carrying the session is refused, and moves nothing.
  const evil = await context.newPage();
  await evil.route('http://evil.example/**', (route) => route.fulfill({
    contentType: 'text/html',
    body: `<form id="f" method="POST" action="${url}/api/schemes/${scheme}/replay" enctype="text/plain">
             <input name='{"dry_run":false,"x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`,
  }));
  const crossSite = evil.waitForResponse((r) => r.url().includes('/replay'), { timeout: WAIT_MS });
  await evil.goto('http://evil.example/attack');
  const refused = await crossSite;
  check(refused.status() === 403 || refused.status() === 401, 'a cross-site POST is refused', refused.status());
  await evil.close();
  await page.waitForTimeout(0);
  const summaryAfterAttack = await page.locator('#dl-summary').innerText();
  check(summaryAfterAttack.startsWith('2 dead letter'), 'the cross-site POST moved nothing', summaryAfterAttack);

  // 7. Replay one record, after a confirmation that says how many will move.
  await chinese.locator('button.replay-one').click();
  await page.waitForSelector('#modal:not([hidden])', { timeout: WAIT_MS });
  const question = await page.locator('#modal-text').innerText();
  check(question.startsWith('1 dead letter(s) will move'), 'the confirmation says 1 dead letter will move', question);
  await page.click('#modal-ok');
  await page.waitForFunction(() => document.querySelector('#dl-summary')?.textContent.startsWith('1 dead letter'), null, { timeout: WAIT_MS });
  check(true, 'the dead-letter count changes to 1 without reloading');
  await page.waitForFunction(() => document.querySelector('#replays')?.textContent.includes('record='), null, { timeout: WAIT_MS });
  const audit = await page.locator('#replays').innerText();
  check(audit.includes(user) && audit.includes('load'), 'the replay is recorded and shown (who, stage, filter)', audit);

  // 8. Back on the Schemes page (no reload), the replayed record is written and counted.
  await page.click('a.brand');
  await page.waitForFunction((s) => {
    const r = document.querySelector(`tr[data-scheme="${s}"]`);
    return r && r.querySelector('.dead-cell').textContent.trim() === '1' && /1 dead-lettered/.test(r.querySelector('.last-run').textContent)
      && /3 inserted/.test(r.querySelector('.last-run').textContent);
  }, scheme, { timeout: WAIT_MS });
  check(true, 'the Schemes page shows 3 inserted and 1 dead-lettered after the replay');
  check(await page.evaluate(() => window.__sameDocument === true), 'all of it without a page reload');

  // 9. The scheme's page: runs, counts, trace link, redacted metadata.
  await page.click(`tr[data-scheme="${scheme}"] a.name`);
  await page.waitForSelector('#runs', { timeout: WAIT_MS });
  const runs = await page.locator('#runs').innerText();
  check(/3 inserted/.test(runs) && /1 dead-lettered/.test(runs), 'the Scheme page lists the run with its counts', runs);
  check(await page.locator('#metadata').count() === 1, 'the Scheme page shows the metadata');
  check(errors.length === 0, 'no script error and no dialog on any page', errors);

  // 10. No page, no answer, showed a secret of the configuration.
  const everything = received.join('\n') + await page.content();
  for (const secret of secrets) {
    check(!everything.includes(secret), `no page shows the secret ${secret.slice(0, 3)}…`);
  }
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
