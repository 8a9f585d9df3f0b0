/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core, against a
 * server with known traffic. The numbers the page shows must be the ones /api/cache/metrics
 * answers; a screenshot is saved (LARDER_SCREENSHOT, default <tmp>/larder-dashboard.png).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { chromium } from 'playwright-core'
import { call, type MetricsAnswer, startServer } from './helpers.ts'

const CHROMIUM = '/usr/bin/chromium'
const json = (body: unknown): RequestInit => ({
  method: 'PUT',
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
})

test('dashboard: the page (no CDN) shows the figures of /api/cache/metrics, per protocol and namespace, in chromium', async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is not installed (.ci/run installs Debian's chromium)`)
    return
  }
  const { url } = await startServer({
    tokens: ['dash-token'],
    namespaceTokens: [{ namespace: 'turbo:web', token: 'team-token', access: 'read' }],
    maxSize: 50_000_000,
  })
  const auth = { authorization: 'Bearer dash-token' }
  // Known traffic: the cache API (sets, memory and file hits, misses, a delete) and turbo.
  for (let i = 0; i < 6; i++)
    await call(`${url}/api/cache/item:${i}`, { ...json({ value: { i }, tags: ['items'] }), headers: { ...json({}).headers, ...auth } })
  for (let i = 0; i < 9; i++) await call(`${url}/api/cache/item:${i % 7}`, { headers: auth })
  await call(`${url}/cache/l1`, { method: 'DELETE', headers: auth })
  await call(`${url}/api/cache/item:1`, { headers: auth })
  await call(`${url}/api/cache/item:2`, { method: 'DELETE', headers: auth })
  for (const team of ['web', 'mobile']) {
    for (let i = 0; i < (team === 'web' ? 3 : 1); i++) {
      const hash = `${team === 'web' ? 'a' : 'b'}${i}`.padEnd(16, '0')
      await call(`${url}/v8/artifacts/${hash}?slug=${team}`, {
        method: 'PUT',
        body: randomBytes(200_000),
        headers: { 'content-type': 'application/octet-stream', ...auth },
      })
      await call(`${url}/v8/artifacts/${hash}?slug=${team}`, { headers: auth })
    }
  }
  await call(`${url}/v8/artifacts/ffffffffffffffff?slug=web`, { headers: auth })
  const expected = (await call(`${url}/api/cache/metrics`, { headers: auth })).json<MetricsAnswer>()
  assert.equal(expected.hits, 9)
  assert.equal(expected.misses, 1)

  // A fresh profile (playwright passes it as --user-data-dir), removed only once the browser
  // is closed: removed before (tempDir's hook runs first), chromium was still writing into it,
  // the removal failed and the browser was never closed, which held the test file open.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-chromium-'))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport: { width: 1280, height: 1100 },
  })
  t.after(async () => {
    await browser.close()
    fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5 })
  })
  const page = browser.pages()[0] ?? (await browser.newPage())
  const offsite: string[] = []
  page.on('request', (request) => {
    if (!request.url().startsWith(url)) offsite.push(request.url())
  })
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  // The console too: a failed load (the browser's own /favicon.ico, answered 401) is an error there.
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`${message.text()} ${message.location().url}`)
  })
  // The token in the fragment: never sent to the server, kept in the tab's sessionStorage.
  await page.goto(`${url}/#token=dash-token`)
  await page.waitForSelector('body[data-loaded="true"]')
  const value = async (id: string): Promise<number> => Number(await page.getAttribute(`#${id}`, 'data-value'))
  const text = async (id: string): Promise<string> => (await page.textContent(`#${id}`)) ?? ''
  assert.equal(await value('api-hits'), expected.hits)
  assert.equal(await value('api-misses'), expected.misses)
  assert.equal(await value('api-hit-rate'), expected.hit_rate)
  assert.equal(await text('api-hit-rate'), `${(expected.hit_rate * 100).toFixed(1)} %`)
  assert.equal(await value('api-sets'), expected.sets)
  assert.equal(await value('api-deletes'), expected.deletes)
  assert.equal(await value('l1-size'), expected.l1_size)
  assert.equal(await value('total-entries'), expected.total.entries)
  assert.equal(await text('total-entries'), expected.total.entries.toLocaleString('en-US'))
  assert.equal(await value('total-size'), expected.total.size_bytes)
  assert.equal(await value('bytes-in'), expected.total.bytes_in)
  assert.equal(await value('bytes-out'), expected.total.bytes_out)
  assert.equal(await value('namespace-count'), expected.namespaces.length)
  // Per protocol and per namespace (largest first), as the tables show them.
  const turboRow = await page.locator('#protocols tbody tr[data-name="turbo"] td').allTextContents()
  assert.deepEqual(turboRow.slice(0, 3), ['turbo', String(expected.protocols.turbo.hits), String(expected.protocols.turbo.misses)])
  const namespaces = await Promise.all((await page.locator('#namespaces tbody tr').all()).map((row) => row.getAttribute('data-name')))
  assert.deepEqual(
    namespaces,
    expected.namespaces.map((n) => n.name),
  )
  assert.equal(namespaces[0], 'turbo:web', 'the largest namespace first')
  assert.match(await text('budget-text'), /of /)
  assert.deepEqual(offsite, [], 'nothing fetched from anywhere but the server')
  assert.deepEqual(errors, [])
  // A namespace token opens no server-wide figures: the page says what it needs.
  const team = await browser.newPage()
  await team.goto(`${url}/#token=team-token`)
  await team.locator('#status', { hasText: 'needs a server token' }).waitFor()
  assert.equal(await team.getAttribute('body', 'data-loaded'), null)
  await team.close()
  // A tab with no token asks for one before it asks for the figures: no 401, no console error.
  const fresh = await browser.newPage()
  const freshErrors: string[] = []
  fresh.on('console', (message) => {
    if (message.type() === 'error') freshErrors.push(`${message.text()} ${message.location().url}`)
  })
  await fresh.goto(`${url}/`)
  await fresh.locator('#status', { hasText: 'a token is needed' }).waitFor()
  assert.equal(await fresh.isVisible('#token-form'), true)
  assert.deepEqual(freshErrors, [])
  await fresh.close()
  const shot = process.env.LARDER_SCREENSHOT ?? path.join(os.tmpdir(), 'larder-dashboard.png')
  await page.screenshot({ path: shot, fullPage: true })
  assert.ok(fs.statSync(shot).size > 10_000)
  t.diagnostic(`screenshot: ${shot}`)
})

test('dashboard: --no-dashboard serves no page', async () => {
  const { url } = await startServer({ dashboard: false })
  assert.equal((await call(`${url}/`)).status, 404)
  assert.equal((await call(`${url}/dashboard/dashboard.js`)).status, 404)
})
