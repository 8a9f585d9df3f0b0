// One W8 case in one fresh process (see w8.mjs):
//   node bench/w8-case.mjs '{"case":"hit","impl":"larder","url":"redis://127.0.0.1:6379","n":5000}'
// Prints one JSON line: { ok, usPerOp } (or, for "bus", { ok, p50, p99 } in ms).
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const args = JSON.parse(process.argv[2] ?? '{}')
const { url, n } = args
const value = { id: 1, name: 'a small value', tags: ['x', 'y'], n: 42 }

/** A cache with get/set/getOrSet/close, memory + Redis. `strategy` is larder's write strategy. */
async function open(impl, strategy = 'write-through') {
  if (impl === 'larder') {
    const { Larder } = await import('../dist/index.js')
    const cache = await Larder.open({
      dir: false,
      memory: { maxEntries: 100_000 },
      maintenance: false,
      writeStrategy: strategy,
      redis: { url, prefix: 'w8:' },
    })
    return {
      get: (k) => cache.get(k),
      set: (k, v) => cache.set(k, v),
      getOrSet: (k, f) => cache.getOrSet(k, f),
      close: () => cache.close(),
    }
  }
  if (impl === 'bentocache') {
    const { BentoCache, bentostore } = await import('bentocache')
    const { memoryDriver } = await import('bentocache/drivers/memory')
    const { redisDriver, redisBusDriver } = await import('bentocache/drivers/redis')
    const { port, hostname } = new URL(url)
    const connection = { host: hostname, port: Number(port) }
    const bento = new BentoCache({
      default: 'c',
      stores: {
        c: bentostore()
          .useL1Layer(memoryDriver({ maxItems: 100_000 }))
          .useL2Layer(redisDriver({ connection }))
          .useBus(redisBusDriver({ connection })),
      },
    })
    return {
      get: (k) => bento.get({ key: k }),
      set: (k, v) => bento.set({ key: k, value: v }),
      getOrSet: (k, f) => bento.getOrSet({ key: k, factory: f }),
      close: () => bento.disconnect(),
    }
  }
  if (impl === 'cacheable') {
    const { Cacheable } = await import('cacheable')
    const KeyvRedis = (await import('@keyv/redis')).default
    const cache = new Cacheable({ secondary: new KeyvRedis(url) })
    return {
      get: (k) => cache.get(k),
      set: (k, v) => cache.set(k, v),
      getOrSet: (k, f) => cache.getOrSet(k, f),
      close: () => cache.disconnect(),
    }
  }
  throw new Error(`unknown impl ${impl}`)
}

async function timed(ops) {
  const started = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await ops(i)
  return Number(process.hrtime.bigint() - started) / 1000 / n
}

const cases = {
  async hit(impl) {
    const c = await open(impl)
    await c.set('hot', value)
    for (let i = 0; i < 1000; i++) await c.get('hot') // warm-up
    const usPerOp = await timed(() => c.get('hot'))
    await c.close()
    return { usPerOp }
  },
  async l2get(impl) {
    const writer = await open(impl)
    for (let i = 0; i < n; i++) await writer.set(`k${i}`, value)
    await writer.close()
    const reader = await open(impl) // a fresh instance: its memory is empty, Redis has them
    const usPerOp = await timed((i) => reader.get(`k${i}`))
    await reader.close()
    return { usPerOp }
  },
  async setThrough(impl) {
    const c = await open(impl)
    const usPerOp = await timed((i) => c.set(`k${i}`, value))
    await c.close()
    return { usPerOp }
  },
  async setBack(impl) {
    const c = await open(impl, 'write-back')
    const usPerOp = await timed((i) => c.set(`k${i}`, value))
    await c.close()
    return { usPerOp }
  },
  async getOrSet(impl) {
    const c = await open(impl)
    const usPerOp = await timed((i) => c.getOrSet(`k${i}`, async () => value))
    await c.close()
    return { usPerOp }
  },
  // Two processes: this one writes, a child reads until it sees each new value.
  async bus() {
    const now = () => performance.timeOrigin + performance.now()
    const child = fork(fileURLToPath(import.meta.url), [JSON.stringify({ ...args, case: 'busReader' })])
    const a = await open('larder')
    await a.set('watched', { t: 0, i: -1 })
    const seen = new Promise((resolve) => child.on('message', (m) => m.type === 'ready' && resolve()))
    child.send({ type: 'start' })
    await seen
    const latencies = []
    for (let i = 0; i < n; i++) {
      const answered = new Promise((resolve) => child.once('message', resolve))
      await a.set('watched', { t: now(), i })
      const m = await answered
      latencies.push(m.latency)
    }
    child.send({ type: 'stop' })
    await a.close()
    latencies.sort((x, y) => x - y)
    return { p50: latencies[Math.floor(n * 0.5)], p99: latencies[Math.floor(n * 0.99)] }
  },
  async busReader() {
    const now = () => performance.timeOrigin + performance.now()
    const b = await open('larder')
    await new Promise((resolve) => process.once('message', resolve))
    const v = await b.get('watched')
    let last = v?.i ?? -1
    process.send({ type: 'ready' })
    let stop = false
    process.on('message', (m) => {
      if (m.type === 'stop') stop = true
    })
    while (!stop) {
      const v = await b.get('watched') // a memory hit until the bus drops it
      if (v !== undefined && v.i !== last) {
        last = v.i
        process.send({ type: 'seen', latency: now() - v.t })
      }
      await new Promise((r) => setImmediate(r))
    }
    await b.close()
    process.exit(0)
  },
}

let code = 0
try {
  const result = await cases[args.case](args.impl)
  process.stdout.write(JSON.stringify({ ok: true, ...result }) + '\n')
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error?.stack ?? error) }) + '\n')
  code = 1
}
process.exit(code)
