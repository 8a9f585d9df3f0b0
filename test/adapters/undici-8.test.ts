/**
 * larder/undici with the real undici 8 (its cache interceptor and fetch), which needs Node >=
 * 22.19: run by the Node 24 pass, skipped on Node 20. undici 8 lives in its own install
 * (test/adapters/undici-8/, put there by scripts/test-peers.mjs) beside the root's undici 7;
 * its CacheStore contract is undici 7's, and the store is the same class. Covered through
 * fetch from a loopback origin: a second fetch answered by the store (and by a new store over
 * the directory, as after a restart), Vary, a POST deleting the URL, and a body larger than
 * one buffered entry (streamed into larder) coming back whole.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import { LarderCacheStore } from 'larder/undici'
import { tempDir } from '../helpers.ts'

const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
const supported = major > 22 || (major === 22 && minor >= 19)
const skip = supported ? false : `undici 8 needs Node >= 22.19 (this is ${process.version}): the Node 24 pass runs these`
const INSTALL = path.join(import.meta.dirname, 'undici-8')

/** undici 8 as these tests use it (the root's undici 7 declarations describe these calls). */
type Undici = typeof import('undici')

function loadUndici8(): Undici {
  const manifest = path.join(INSTALL, 'node_modules', 'undici', 'package.json')
  if (!fs.existsSync(manifest)) throw new Error(`undici 8 is not installed in ${INSTALL}: run \`node scripts/test-peers.mjs\``)
  assert.match((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version: string }).version, /^8\./)
  return createRequire(path.join(INSTALL, 'package.json'))('undici') as Undici
}

const undici = supported ? loadUndici8() : undefined
const BIG = Buffer.alloc(300 * 1024, 'larder ') // over the 64 KiB a buffered entry holds

describe('larder/undici on undici 8: fetch through the cache interceptor', { skip }, () => {
  let origin: http.Server
  let base: string
  let served = 0
  const dir = tempDir('larder-undici8')
  let agent: InstanceType<Undici['Agent']>
  let store: LarderCacheStore
  let dispatcher: ReturnType<InstanceType<Undici['Agent']>['compose']>

  before(async () => {
    origin = http.createServer((request, response) => {
      served++
      if (request.url === '/greeting') {
        response.writeHead(200, { 'cache-control': 'public, max-age=60', vary: 'accept-language' })
        response.end(`hello (${request.headers['accept-language'] ?? 'none'}) #${served}`)
      } else if (request.url === '/big') {
        response.writeHead(200, { 'cache-control': 'public, max-age=60', 'content-length': BIG.length })
        response.end(BIG)
      } else {
        response.writeHead(200, { 'cache-control': 'public, max-age=60' })
        response.end(`resource ${request.url} #${served}`)
      }
    })
    origin.listen(0, '127.0.0.1')
    await once(origin, 'listening')
    base = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
    store = new LarderCacheStore({ dir })
    agent = new undici!.Agent()
    dispatcher = agent.compose(undici!.interceptors.cache({ store }))
  })
  after(async () => {
    await agent.close()
    await store.close()
    origin.close()
  })

  async function get(url: string, headers: Record<string, string> = {}, via = dispatcher) {
    const response = await undici!.fetch(`${base}${url}`, { headers, dispatcher: via })
    return { text: Buffer.from(await response.arrayBuffer()), age: response.headers.get('age') }
  }

  /** Waits until the store holds the response (its write follows the response), then
   *  fetches it: undici must answer from the store. */
  async function cached(url: string, headers: Record<string, string> = {}) {
    const key = { origin: base, path: url, method: 'GET', headers }
    for (let i = 0; i < 300 && (await store.get(key)) === undefined; i++) await sleep(10)
    const got = await get(url, headers)
    assert.notEqual(got.age, null, `${url} answered from the store`)
    return got
  }

  test('a second fetch is answered by the store, not the origin; so is one through a new store over the directory', async () => {
    const first = await get('/resource')
    assert.equal(first.age, null)
    const before = served
    const second = await cached('/resource')
    assert.equal(second.text.toString(), first.text.toString())
    assert.equal(served, before, 'the origin was not asked again')

    const restarted = new LarderCacheStore({ dir })
    const other = new undici!.Agent()
    const again = await get('/resource', {}, other.compose(undici!.interceptors.cache({ store: restarted })))
    assert.equal(again.text.toString(), first.text.toString())
    assert.notEqual(again.age, null)
    assert.equal(served, before)
    await other.close()
    await restarted.close()
  })

  test('Vary: each Accept-Language is cached apart', async () => {
    const en = await get('/greeting', { 'accept-language': 'en' })
    const fr = await get('/greeting', { 'accept-language': 'fr' })
    assert.match(en.text.toString(), /^hello \(en\)/)
    assert.match(fr.text.toString(), /^hello \(fr\)/)
    const before = served
    assert.equal((await cached('/greeting', { 'accept-language': 'fr' })).text.toString(), fr.text.toString())
    assert.equal((await cached('/greeting', { 'accept-language': 'en' })).text.toString(), en.text.toString())
    assert.equal(served, before)
  })

  test('a POST to a URL makes undici delete it: the next GET goes to the origin', async () => {
    await get('/posted')
    await cached('/posted')
    const before = served
    await (await undici!.fetch(`${base}/posted`, { method: 'POST', body: 'x', dispatcher })).text()
    assert.equal((await get('/posted')).age, null)
    assert.equal(served, before + 2)
  })

  test('a body over 64 KiB streams into larder and comes back whole from the store', async () => {
    const first = await get('/big')
    assert.ok(first.text.equals(BIG))
    const before = served
    const second = await cached('/big')
    assert.ok(second.text.equals(BIG), 'byte for byte')
    assert.equal(served, before)
  })
})
