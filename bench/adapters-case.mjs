// One adapter benchmark case in one fresh process (issue 12): a cached read through a host
// library, with one store behind it.
//
//   node --expose-gc bench/adapters-case.mjs '{"host":"keyv","store":"larder","dir":"/tmp/x","seq":3000,"conc":10000}'
//
// Prints exactly one JSON line on stdout: { ok, host, store, p50, p99, opsSeq, opsC16, cpuSeq,
// cpuC16 } (µs, reads per second, CPU µs per read) or { ok: false, error }. bench/adapters.mjs spawns one per measurement;
// `HOSTS` below is the list it runs. larder and its adapters are the built ones (dist/), each
// over a cache opened here (no memory tier unless the store's name says so). Every read is
// checked: a wrong value fails the case. Sequential: `seq` reads one at a time, p50/p99 latency
// and reads/s; concurrent: `conc` reads with 16 in flight, reads/s. Opening the store, filling
// it and the warm-up reads (WARM_UP) are not timed. The TypeORM case needs a PostgreSQL server (`pgPort`).
import { once } from 'node:events'
import http from 'node:http'
import path from 'node:path'
import { createRequire } from 'node:module'
import { Larder } from '../dist/index.js'
import { KeyvLarder } from '../dist/adapters/keyv.js'
import { LarderCacheStore } from '../dist/adapters/undici.js'
import { LarderQueryResultCache } from '../dist/adapters/typeorm.js'
import { LarderDrizzleCache } from '../dist/adapters/drizzle.js'
import { LarderCacheAdapter } from '../dist/adapters/mikro-orm.js'
import { inFlight, settle } from './measure.mjs'
import { loadKeyvSqlite } from './adapters-peers.mjs'
import { ORM_ROWS as ROWS } from './data.mjs'

const require = createRequire(import.meta.url)

/** Each host library's operation and the stores it is measured with, in report order. A store
 *  marked `persistent` keeps its data in a file or a database: the goal is to beat those. */
export const HOSTS = {
  keyv: {
    title: 'Keyv 5: get of a ~150 B object',
    stores: [
      { name: 'larder', persistent: true },
      { name: 'larder (memory tier)', persistent: true },
      { name: 'keyv-file', persistent: true },
      // A SQLite file through the native sqlite3 package: installed by the bench outside the
      // repository (bench/adapters-peers.mjs), skipped when that fails.
      { name: '@keyv/sqlite (a file)', persistent: true, needs: '@keyv/sqlite' },
      { name: 'Keyv default (Map, memory only)' },
      // Keyv's documented `serialize: undefined, deserialize: undefined`: the store holds and
      // answers Keyv's `{ value, expires }` object, so no get parses a string. Compared with
      // each other only (`group`): keyv-file then answers its Map's object too.
      { name: 'larder (memory tier), Keyv serialize off', persistent: true, group: 'serialize off' },
      { name: 'keyv-file, Keyv serialize off', persistent: true, group: 'serialize off' },
    ],
  },
  undici: {
    title: 'undici 7: fetch of a cached ~1 KB response',
    stores: [
      { name: 'larder', persistent: true },
      { name: 'larder (memory tier)', persistent: true },
      { name: 'SqliteCacheStore (file)', persistent: true, needs: 'node:sqlite' },
      { name: 'MemoryCacheStore (memory only)' },
      { name: 'no cache (the origin, on loopback)' },
    ],
  },
  typeorm: {
    title: 'TypeORM 1.x on PostgreSQL: find() of 8 rows, cached by id',
    stores: [
      { name: 'larder', persistent: true },
      { name: 'larder (memory tier)', persistent: true },
      { name: "TypeORM 'database' cache (a PostgreSQL table)", persistent: true },
      { name: 'no cache (the query on PostgreSQL)' },
    ],
  },
  drizzle: {
    title: 'Drizzle 0.45 on libsql: select of 8 rows',
    stores: [
      { name: 'larder', persistent: true },
      { name: 'larder (memory tier)', persistent: true },
      { name: 'no cache (the query on libsql, a file)' },
    ],
  },
  mikro: {
    title: 'MikroORM 6 on libsql: find() of 8 rows',
    stores: [
      { name: 'larder', persistent: true },
      { name: 'larder (memory tier)', persistent: true },
      { name: 'MemoryCacheAdapter (default, memory only)' },
      { name: 'no cache (the query on libsql, a file)' },
    ],
  },
}

/** A larder cache for `store` ('larder' or 'larder (memory tier)'), or undefined for a peer. */
async function larderFor(store, dir, options = {}) {
  if (!store.startsWith('larder')) return undefined
  return Larder.open({ dir: path.join(dir, 'larder'), ...options, ...(store.includes('memory tier') ? { memory: true } : {}) })
}

function same(expected) {
  const want = JSON.stringify(expected)
  return (actual) => {
    if (JSON.stringify(actual) !== want) throw new Error(`wrong value: ${JSON.stringify(actual)?.slice(0, 200)}`)
  }
}

const cpuMicros = ({ user, system }) => user + system
/** Untimed reads first: a cached read is a hot path, measured once the JIT has compiled it.
 *  At least WARM_UP reads and WARM_UP_MS of them: with 1,000 reads alone, a store answering
 *  from memory (~5 µs a read) was timed while V8 was still compiling its path, and the same
 *  case moved 2× between processes (3,000 timed reads after it: 12.2 and 6.2 µs of CPU per
 *  read for the same build, 13.8 and 6.0 for keyv-file). 300 ms was still short for a path
 *  with more JavaScript in it: larder's undici get was being compiled for ~60,000 reads
 *  (`--trace-opt`; its compiler threads took ~3 µs a read meanwhile, bench/adapters-undici-cpu.mjs),
 *  while SQLite's, mostly native, was steady sooner. Every store gets the same 3 s. */
const WARM_UP = 1000
const WARM_UP_MS = 3000
/** And each timed part lasts at least this long (more reads than asked when they are fast). */
const MIN_TIMED_MS = 300

/** Times `read(i)` at least `seq` times one at a time, then at least `conc` times 16 at once
 *  (each part at least MIN_TIMED_MS); `check` validates each. */
async function measure({ seq, conc }, read, check) {
  const warmUntil = performance.now() + WARM_UP_MS
  for (let i = 0; i < WARM_UP || performance.now() < warmUntil; i++) check(await read(i))
  settle()
  const latencies = []
  // CPU time (user + system, this process) beside wall time: two other jobs share these cores,
  // and CPU per read moves far less with them than reads per second do.
  let cpu = process.cpuUsage()
  const timedUntil = performance.now() + MIN_TIMED_MS
  for (let i = 0; i < seq || performance.now() < timedUntil; i++) {
    const started = performance.now()
    const result = await read(i)
    latencies.push(performance.now() - started)
    check(result)
  }
  const reads = latencies.length
  const cpuSeq = cpuMicros(process.cpuUsage(cpu)) / reads
  const total = latencies.reduce((a, b) => a + b, 0)
  latencies.sort((a, b) => a - b)
  // The concurrent part: as many reads as the sequential part managed in MIN_TIMED_MS, scaled
  // by conc / seq, so that it too lasts long enough (16 in flight is not slower per read).
  const concReads = Math.max(conc, Math.ceil((reads * conc) / seq))
  cpu = process.cpuUsage()
  const started = performance.now()
  await inFlight(concReads, 16, async (i) => check(await read(i)))
  const seconds = (performance.now() - started) / 1000
  const cpuC16 = cpuMicros(process.cpuUsage(cpu)) / concReads
  return {
    cpuSeq,
    cpuC16,
    p50: latencies[Math.floor(reads * 0.5)] * 1000,
    p99: latencies[Math.floor(reads * 0.99)] * 1000,
    opsSeq: reads / (total / 1000),
    opsC16: concReads / seconds,
  }
}

const CASES = {
  async keyv(args) {
    const { default: Keyv } = await import('keyv')
    const cache = await larderFor(args.store, args.dir)
    const serialization = args.store.endsWith('Keyv serialize off') ? { serialize: undefined, deserialize: undefined } : {}
    let keyv
    if (cache !== undefined) keyv = new Keyv({ store: new KeyvLarder(cache), ...serialization })
    else if (args.store.startsWith('keyv-file')) {
      const { KeyvFile } = require('keyv-file')
      keyv = new Keyv({ store: new KeyvFile({ filename: path.join(args.dir, 'keyv-file.json'), writeDelay: 100 }), ...serialization })
    } else if (args.store.startsWith('@keyv/sqlite')) {
      if (args.keyvSqliteDir === undefined) throw new Error('no @keyv/sqlite installed (keyvSqliteDir)')
      const KeyvSqlite = loadKeyvSqlite(args.keyvSqliteDir)
      keyv = new Keyv({ store: new KeyvSqlite({ uri: `sqlite://${path.join(args.dir, 'keyv.sqlite')}` }) })
    } else keyv = new Keyv()
    const keys = Array.from({ length: 1000 }, (_, i) => `user:${i}`)
    await Promise.all(keys.map((key, i) => keyv.set(key, { ...ROWS[i % 8], key: i })))
    const result = await measure(
      args,
      (i) => keyv.get(keys[i % 1000]).then((v) => [v, i % 1000]),
      ([v, i]) => {
        if (v?.key !== i) throw new Error(`wrong value for key ${i}`)
      },
    )
    await keyv.disconnect()
    await cache?.close()
    return result
  },

  async undici(args) {
    const { Agent, fetch, interceptors, cacheStores } = await import('undici')
    const body = JSON.stringify(ROWS)
    let served = 0
    const origin = http.createServer((_request, response) => {
      served++
      response.writeHead(200, { 'cache-control': 'public, max-age=3600', 'content-type': 'application/json' })
      response.end(body)
    })
    origin.listen(0, '127.0.0.1')
    await once(origin, 'listening')
    const url = `http://127.0.0.1:${origin.address().port}/rows`
    const cache = await larderFor(args.store, args.dir)
    let store
    if (cache !== undefined) store = new LarderCacheStore(cache)
    else if (args.store.startsWith('SqliteCacheStore'))
      store = new cacheStores.SqliteCacheStore({ location: path.join(args.dir, 'undici.sqlite') })
    else if (args.store.startsWith('MemoryCacheStore')) store = new cacheStores.MemoryCacheStore()
    const agent = new Agent({ connections: 16 })
    const dispatcher = store === undefined ? agent : agent.compose(interceptors.cache({ store }))
    const get = async () => {
      const response = await fetch(url, { dispatcher })
      return { text: await response.text(), cached: response.headers.get('age') !== null }
    }
    // The store's write follows the response: ask until the store answers.
    if (store !== undefined) {
      for (let i = 0; !(await get()).cached; i++) {
        if (i === 200) throw new Error('the response was never served from the store')
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    }
    const before = served
    const result = await measure(args, async () => (await get()).text, same(body))
    if (store !== undefined && served !== before) throw new Error(`${served - before} requests reached the origin`)
    await agent.close()
    store?.close?.()
    await cache?.close()
    origin.close()
    return result
  },

  async typeorm(args) {
    if (args.pgPort === undefined) throw new Error('no PostgreSQL server (pgPort)')
    const { DataSource, EntitySchema } = await import('typeorm')
    const User = new EntitySchema({
      name: 'User',
      tableName: 'users',
      columns: {
        id: { type: Number, primary: true, generated: true },
        name: { type: String },
        email: { type: String },
        score: { type: 'double precision' },
      },
    })
    const cache = await larderFor(args.store, args.dir)
    const cacheOption =
      cache !== undefined
        ? { provider: (ds) => new LarderQueryResultCache(ds, cache) }
        : args.store.startsWith('TypeORM')
          ? { type: 'database', tableName: 'query_result_cache' }
          : false
    const ds = new DataSource({
      type: 'postgres',
      host: '127.0.0.1',
      port: args.pgPort,
      username: 'postgres',
      database: 'postgres',
      entities: [User],
      synchronize: true,
      dropSchema: true,
      cache: cacheOption,
    })
    await ds.initialize()
    const users = ds.getRepository(User)
    await users.insert(ROWS.map((r) => ({ name: r.name, email: r.email, score: r.score })))
    const expected = await users.find({ order: { id: 'ASC' } })
    const cached = cacheOption === false ? false : { id: 'users', milliseconds: 3_600_000 }
    const result = await measure(args, () => users.find({ order: { id: 'ASC' }, cache: cached }), same(expected))
    await ds.destroy()
    await cache?.close()
    return result
  },

  async drizzle(args) {
    const { drizzle } = await import('drizzle-orm/libsql')
    const { sqliteTable, integer, text, real } = await import('drizzle-orm/sqlite-core')
    const users = sqliteTable('users', { id: integer('id').primaryKey(), name: text('name'), email: text('email'), score: real('score') })
    const cache = await larderFor(args.store, args.dir, { serializer: 'v8' })
    const drizzleCache = cache === undefined ? undefined : new LarderDrizzleCache(cache)
    const db = drizzle({
      connection: { url: `file:${path.join(args.dir, 'drizzle.db')}` },
      ...(drizzleCache ? { cache: drizzleCache } : {}),
    })
    await db.run('create table users (id integer primary key, name text, email text, score real)')
    await db.insert(users).values(ROWS.map((r) => ({ name: r.name, email: r.email, score: r.score })))
    const expected = await db.select().from(users).orderBy(users.id)
    const select = () => db.select().from(users).orderBy(users.id)
    const result = await measure(args, () => (drizzleCache ? select().$withCache() : select()), same(expected))
    db.$client.close()
    await cache?.close()
    return result
  },

  async mikro(args) {
    const { MikroORM, EntitySchema } = await import('@mikro-orm/libsql')
    const { MemoryCacheAdapter } = await import('@mikro-orm/core')
    const User = new EntitySchema({
      name: 'User',
      tableName: 'users',
      properties: { id: { type: 'number', primary: true }, name: { type: 'string' }, email: { type: 'string' }, score: { type: 'double' } },
    })
    const cache = await larderFor(args.store, args.dir)
    const adapter =
      cache !== undefined ? LarderCacheAdapter.using(cache) : args.store.startsWith('MemoryCacheAdapter') ? MemoryCacheAdapter : undefined
    const orm = await MikroORM.init({
      dbName: path.join(args.dir, 'mikro.db'),
      entities: [User],
      ...(adapter ? { resultCache: { adapter, expiration: 3_600_000 } } : {}),
      allowGlobalContext: true,
      debug: false,
    })
    await orm.schema.createSchema()
    const em = orm.em.fork()
    for (const r of ROWS) em.create(User, { name: r.name, email: r.email, score: r.score })
    await em.flush()
    const plain = (list) => list.map((u) => ({ id: u.id, name: u.name, email: u.email, score: u.score }))
    const expected = plain(await orm.em.fork().find(User, {}, { orderBy: { id: 'asc' } }))
    const result = await measure(
      args,
      async () =>
        plain(await orm.em.fork().find(User, {}, { orderBy: { id: 'asc' }, ...(adapter ? { cache: ['users', 3_600_000] } : {}) })),
      same(expected),
    )
    await orm.close()
    await cache?.close()
    return result
  },
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = JSON.parse(process.argv[2] ?? '{}')
  let exitCode = 0
  try {
    const run = CASES[args.host]
    if (!run) throw new Error(`unknown host ${args.host} (known: ${Object.keys(CASES).join(', ')})`)
    process.stdout.write(`${JSON.stringify({ ok: true, host: args.host, store: args.store, ...(await run(args)) })}\n`)
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ ok: false, host: args.host, store: args.store, error: String(error?.stack ?? error) })}\n`)
    exitCode = 1
  }
  process.exit(exitCode) // some stores keep timers or sockets alive: the case is over
}
