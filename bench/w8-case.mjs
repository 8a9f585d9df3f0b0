// One W8 case in one fresh process (see w8.mjs):
//   node bench/w8-case.mjs '{"case":"hit","impl":"larder","url":"redis://127.0.0.1:6379","n":5000}'
// Prints one JSON line: { ok, usPerOp } (or, for "bus", { ok, p50, p99 } in ms).
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const args = JSON.parse(process.argv[2] ?? '{}')
const { url, n } = args
/** Untimed operations of the same kind on other keys before the timed n (`"warm"`, w8.mjs
 *  `--warm`): without them the timed operations of a fresh process include V8 compiling each
 *  implementation's path (larder's first 1,000 gets from Redis cost 2-3× the CPU of its later
 *  ones; the peers' too), which a server does once in millions of operations. */
const WARM = args.warm ?? 0
const value = { id: 1, name: 'a small value', tags: ['x', 'y'], n: 42 }

/** A cache with get/set/getOrSet/close, memory + Redis. `strategy` is larder's write strategy;
 *  `bus: false` leaves the invalidation bus out (cacheable never has one). */
async function open(impl, strategy = 'write-through', { bus = true } = {}) {
  if (impl === 'larder') {
    const { Larder } = await import('../dist/index.js')
    const cache = await Larder.open({
      dir: false,
      memory: { maxEntries: 100_000 },
      maintenance: false,
      writeStrategy: strategy,
      bus,
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
    const store = bentostore()
      .useL1Layer(memoryDriver({ maxItems: 100_000 }))
      .useL2Layer(redisDriver({ connection }))
    const bento = new BentoCache({ default: 'c', stores: { c: bus ? store.useBus(redisBusDriver({ connection })) : store } })
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

/** µs per operation over n operations one after another: the mean (`usPerOp`, what the
 *  table shows) and the median of the single operations (`p50`), which a loaded machine's
 *  scheduling stalls (one op in a hundred taking 5-90 ms here) move far less than the mean. */
async function timed(ops) {
  const each = new Float64Array(n)
  const profiler = await startProfile()
  const cpu = process.cpuUsage()
  const started = process.hrtime.bigint()
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint()
    await ops(i)
    each[i] = Number(process.hrtime.bigint() - t) / 1000
  }
  const usPerOp = Number(process.hrtime.bigint() - started) / 1000 / n
  const { user, system } = process.cpuUsage(cpu)
  await profiler?.stop()
  // CPU of this process (user + system, all its threads) per operation: the load of other
  // work moves it far less than the times.
  return { usPerOp, p50: each.sort()[n >> 1], cpuPerOp: (user + system) / n }
}

/** With `"profile": "<file>"`, a CPU profile of the timed operations alone (not the set-up,
 *  module loading or warm-up): read it with `node bench/profile-top.mjs <file>`. */
async function startProfile() {
  if (args.profile === undefined) return undefined
  const { Session } = await import('node:inspector/promises')
  const { writeFileSync } = await import('node:fs')
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: args.interval ?? 50 })
  await session.post('Profiler.start')
  return {
    async stop() {
      const { profile } = await session.post('Profiler.stop')
      writeFileSync(args.profile, JSON.stringify(profile))
      session.disconnect()
    },
  }
}

/**
 * A memory hit costs less than reading the clock, so it is timed in batches of 1,000, after
 * 300 ms of warm-up: a hit path is JIT-compiled within the first few thousand calls, and the
 * old measure (1,000 hits after 1,000) timed about a millisecond of that compilation, on a
 * machine whose background compiler thread shares two cores with other work (0.6-2 µs for
 * the same code from run to run). A hot key in a server is hit millions of times.
 */
async function timedHits(ops) {
  const warm = performance.now()
  while (performance.now() - warm < 300) for (let i = 0; i < 1000; i++) await ops(i)
  const batches = []
  for (let b = 0; b < Math.max(21, n / 1000); b++) {
    const t = process.hrtime.bigint()
    for (let i = 0; i < 1000; i++) await ops(i)
    batches.push(Number(process.hrtime.bigint() - t) / 1000 / 1000)
  }
  const p50 = batches.sort((a, b) => a - b)[batches.length >> 1]
  return { usPerOp: p50, p50 }
}

const cases = {
  async hit(impl) {
    const c = await open(impl)
    await c.set('hot', value)
    const result = await timedHits(() => c.get('hot'))
    await c.close()
    return result
  },
  async l2get(impl) {
    const writer = await open(impl)
    for (let i = 0; i < n; i++) await writer.set(`k${i}`, value)
    for (let i = 0; i < WARM; i++) await writer.set(`w${i}`, value)
    await writer.close()
    const reader = await open(impl) // a fresh instance: its memory is empty, Redis has them
    for (let i = 0; i < WARM; i++) await reader.get(`w${i}`)
    const result = await timed((i) => reader.get(`k${i}`))
    await reader.close()
    return result
  },
  async setThrough(impl) {
    const c = await open(impl)
    for (let i = 0; i < WARM; i++) await c.set(`w${i}`, value)
    const result = await timed((i) => c.set(`k${i}`, value))
    await c.close()
    return result
  },
  // Like for like with cacheable, which has no bus: larder and bentocache without theirs (a
  // set is then the write alone; with a bus, larder's script and bentocache's PUBLISH also
  // tell the other instances, and each writer hears its own message back from Redis: larder
  // recognises its own by their first bytes and never decodes them, src/bus/messages.ts).
  async setNoBus(impl) {
    const c = await open(impl, 'write-through', { bus: false })
    for (let i = 0; i < WARM; i++) await c.set(`w${i}`, value)
    const result = await timed((i) => c.set(`k${i}`, value))
    await c.close()
    return result
  },
  async setBack(impl) {
    const c = await open(impl, 'write-back')
    for (let i = 0; i < WARM; i++) await c.set(`w${i}`, value)
    const result = await timed((i) => c.set(`k${i}`, value))
    await c.close()
    return result
  },
  async getOrSet(impl) {
    const c = await open(impl)
    for (let i = 0; i < WARM; i++) await c.getOrSet(`w${i}`, async () => value)
    const result = await timed((i) => c.getOrSet(`k${i}`, async () => value))
    await c.close()
    return result
  },
  // Two processes: this one writes, a child reads until it sees each new value. The child
  // also hears the bus channel on a plain subscriber of its own, to split each latency into
  // set called → message arrived at the reader's host (A's set, Redis, delivery, the OS) and
  // message arrived → new value read (larder's handling, the drop, the Redis read). With
  // `"idle": true` the reader does not spin between changes: it waits for the message and
  // reads only then, so its busy loop does not compete with A and Redis for the two cores.
  async bus() {
    const now = () => performance.timeOrigin + performance.now()
    const child = fork(fileURLToPath(import.meta.url), [JSON.stringify({ ...args, case: 'busReader' })])
    const a = await open('larder')
    await a.set('watched', { t: 0, i: -1 })
    const seen = new Promise((resolve) => child.on('message', (m) => m.type === 'ready' && resolve()))
    child.send({ type: 'start' })
    await seen
    const total = []
    const toHeard = []
    const heardToRead = []
    for (let i = 0; i < n; i++) {
      const answered = new Promise((resolve) => child.once('message', resolve))
      await a.set('watched', { t: now(), i })
      const m = await answered
      total.push(m.latency)
      toHeard.push(m.heard)
      heardToRead.push(m.latency - m.heard)
    }
    child.send({ type: 'stop' })
    await a.close()
    const q = (xs, p) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * p)]
    return {
      p50: q(total, 0.5),
      p99: q(total, 0.99),
      heard: { p50: q(toHeard, 0.5), p99: q(toHeard, 0.99) },
      read: { p50: q(heardToRead, 0.5), p99: q(heardToRead, 0.99) },
    }
  },
  async busReader() {
    const now = () => performance.timeOrigin + performance.now()
    const { Redis } = await import('ioredis')
    const b = await open('larder')
    const listener = new Redis(url)
    /** Each message heard: the creation time of the entry it names (A's set made it just after
     *  the value's `t`), and when it arrived here. */
    const arrivals = []
    let wake = () => {}
    listener.on('message', (_channel, text) => {
      arrivals.push({ at: JSON.parse(text).keys?.[0]?.[1] ?? 0, arrived: now() })
      wake()
    })
    await listener.subscribe('w8:bus:default')
    await new Promise((resolve) => process.once('message', resolve))
    const v = await b.get('watched')
    let last = v?.i ?? -1
    process.send({ type: 'ready' })
    let stop = false
    process.on('message', (m) => {
      if (m.type === 'stop') {
        stop = true
        wake()
      }
    })
    while (!stop) {
      if (args.idle && arrivals.length === 0) await new Promise((r) => (wake = r))
      const v = await b.get('watched') // a memory hit until the bus drops it
      if (v !== undefined && v.i !== last) {
        last = v.i
        const at = now()
        const message = arrivals.find((m) => m.at >= Math.floor(v.t)) // Date.now() of the set, or just after
        process.send({ type: 'seen', latency: at - v.t, heard: (message?.arrived ?? at) - v.t })
        arrivals.length = 0
      }
      await new Promise((r) => setImmediate(r))
    }
    listener.disconnect()
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
