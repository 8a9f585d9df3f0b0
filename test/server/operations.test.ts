import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { after } from 'node:test'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { call, eventually, type MetricsAnswer, type ReadyAnswer, startServer } from './helpers.ts'

const octets = { 'content-type': 'application/octet-stream' }

test('/metrics: Prometheus text with hits and misses per protocol and tier, bytes in and out, entries, size, budget, breaker state and request durations', async () => {
  const { url } = await startServer({ maxSize: 10_000_000 })
  await call(`${url}/v8/artifacts/abcdef0123456789?slug=t`, { method: 'PUT', body: randomBytes(1000), headers: octets })
  await call(`${url}/v8/artifacts/abcdef0123456789?slug=t`)
  await call(`${url}/v8/artifacts/0000000000000000?slug=t`)
  await call(`${url}/api/cache/k`, { method: 'PUT', body: '{"value":1}', headers: { 'content-type': 'application/json' } })
  await call(`${url}/api/cache/k`)
  const metrics = await call(`${url}/metrics`)
  assert.equal(metrics.status, 200)
  assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/)
  const text = metrics.text
  for (const line of [
    'larder_cache_hits_total{protocol="turbo",tier="file"} 1',
    'larder_cache_hits_total{protocol="api",tier="memory"} 1',
    'larder_cache_misses_total{protocol="turbo"} 1',
    'larder_bytes_in_total{protocol="turbo"} 1000',
    'larder_bytes_out_total{protocol="turbo"} 1000',
    'larder_entries{namespace="turbo:t"} 1',
    'larder_budget_bytes{namespace="turbo:t"} 10000000',
    'larder_breaker_state{namespace="turbo:t",state="closed"} 1',
    'larder_breaker_state{namespace="turbo:t",state="open"} 0',
    'larder_http_request_duration_seconds_count{method="GET",route="/v8/artifacts/:hash",status="200"} 1',
    'larder_http_request_duration_seconds_count{method="GET",route="/v8/artifacts/:hash",status="404"} 1',
  ])
    assert.ok(text.includes(line), `missing: ${line}`)
  assert.match(text, /larder_size_bytes\{namespace="turbo:t"\} (\d+)/)
  assert.ok(Number(text.match(/larder_size_bytes\{namespace="turbo:t"\} (\d+)/)![1]) > 1000)
})

test("/metrics: the process's metrics under Prometheus's standard names (process_*, nodejs_*), never a doubled prefix", async () => {
  const { url } = await startServer()
  const names = new Set(
    (await call(`${url}/metrics`)).text
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => /^[a-z_:]+/i.exec(line)![0]),
  )
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes'])
    assert.ok(names.has(name), `missing: ${name}`)
  assert.deepEqual(
    [...names].filter((name) => /process_process|larder_process|larder_nodejs/.test(name)),
    [],
  )
})

test('/healthz and /readyz answer 200; /readyz is 503 with the reason when the cache directory cannot be written (read-only mount)', async (t) => {
  let mounted = false
  let close = async (): Promise<void> => {}
  const unmount = (): void => {
    if (!mounted) return
    mounted = false
    execFileSync('umount', [dir])
  }
  // Registered before tempDir's removal hook, so it runs first: close, unmount, then remove.
  after(async () => {
    await close()
    unmount()
  })
  const base = tempDir('larder-readyz')
  const dir = path.join(base, 'cache')
  fs.mkdirSync(dir)
  const running = await startServer({ dir })
  const url = running.url
  close = running.close
  assert.deepEqual((await call(`${url}/healthz`)).json(), { status: 'ok' })
  assert.equal((await call(`${url}/readyz`)).status, 200)
  try {
    execFileSync('mount', ['--bind', dir, dir], { stdio: 'pipe' })
  } catch (error) {
    t.skip(`mounting was refused (${(error as Error).message.split('\n')[0]}): run as root for the read-only case`)
    return
  }
  mounted = true
  execFileSync('mount', ['-o', 'remount,ro,bind', dir])
  const ready = await call(`${url}/readyz`)
  assert.equal(ready.status, 503)
  assert.equal(ready.json<ReadyAnswer>().status, 'unavailable')
  assert.match(ready.json<ReadyAnswer>().disk, /not writable/)
  assert.ok(!ready.text.includes(dir), `anyone may ask /readyz: no path in its answer (${ready.text})`)
  assert.equal((await call(`${url}/healthz`)).status, 200, 'alive, though not ready')
  await close()
  unmount()
})

test('budget: uploads past --max-size are pruned by eviction; the namespace ends within its budget and the prunes are reported', async () => {
  const budget = 1_000_000
  const { url, dir, close } = await startServer({ maxSize: budget })
  for (let i = 0; i < 30; i++) {
    const hash = i.toString(16).padStart(16, '0')
    assert.equal(
      (await call(`${url}/v8/artifacts/${hash}?slug=big`, { method: 'PUT', body: randomBytes(100_000), headers: octets })).status,
      202,
    )
  }
  await eventually(async () => (await call(`${url}/api/cache/metrics`)).json<MetricsAnswer>().evictions > 0, 'an eviction')
  const data = (await call(`${url}/dashboard/data`)).json<{ prunes: { namespace: string; evicted: number }[] }>()
  assert.ok(data.prunes.some((p) => p.namespace === 'turbo:big' && p.evicted > 0))
  await close()
  const cache = await Larder.open({ dir, namespace: 'turbo:big', readOnly: true })
  const usage = await cache.usage()
  await cache.close()
  assert.ok(usage.storedBytes <= budget, `${usage.storedBytes} bytes on disk, budget ${budget}`)
  assert.ok(usage.entries > 0 && usage.entries < 30)
  const newest = (29).toString(16).padStart(16, '0')
  const reopened = await startServer({ dir, maxSize: budget })
  assert.equal((await call(`${reopened.url}/v8/artifacts/${newest}?slug=big`)).status, 200, 'the newest upload is kept (LRU)')
  await reopened.close() // before the first server's directory goes
})

test('budget: an upload its namespace could not keep (larger than --max-size times lowWater) is a 413 before a byte is read, and the artifacts already stored stay', async () => {
  const budget = 1_000_000
  const { url, close } = await startServer({ maxSize: budget })
  const small = (i: number): string => `${url}/v8/artifacts/${i.toString(16).padStart(16, '0')}?slug=keep`
  for (let i = 0; i < 5; i++) {
    assert.equal((await call(small(i), { method: 'PUT', body: randomBytes(50_000), headers: octets })).status, 202)
  }
  const big = await call(`${url}/v8/artifacts/${'f'.repeat(16)}?slug=keep`, {
    method: 'PUT',
    body: randomBytes(budget * 0.9 - 64 * 1024 + 1),
    headers: octets,
  })
  assert.equal(big.status, 413)
  assert.match(big.text, /too large for this cache: its budget keeps at most 834464 bytes \(--max-size\)/)
  assert.equal((await call(`${url}/v8/artifacts/${'f'.repeat(16)}?slug=keep`)).status, 404)
  // Just under what a prune brings the namespace down to: stored as before.
  const fits = await call(`${url}/v8/artifacts/${'e'.repeat(16)}?slug=keep`, {
    method: 'PUT',
    body: randomBytes(800_000),
    headers: octets,
  })
  assert.equal(fits.status, 202)
  const nx = await call(`${url}/v1/cache/${'a'.repeat(16)}`, { method: 'PUT', body: randomBytes(budget), headers: octets })
  assert.equal(nx.status, 403, 'nx uploads share the rule (told 403: nx fails its run on a 413)')
  assert.match(nx.text, /budget keeps/)
  await close()
})
