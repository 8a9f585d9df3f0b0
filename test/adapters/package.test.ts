/**
 * The adapters as a consumer gets them: `npm pack`, install the tarball with the host
 * libraries into a fresh project, then use every subpath (`larder/keyv`, `larder/undici`,
 * `larder/typeorm`, `larder/drizzle`, `larder/mikro-orm`) from ESM and CJS child processes, and
 * type-check a strict TypeScript consumer of each under NodeNext (.mts and .cts).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { test } from 'node:test'
import { tempDir } from '../helpers.ts'
import { repoRoot } from '../children/shared.ts'

const exec = promisify(execFile)

/** Runs a command in `cwd`; a failure carries its output. */
async function run(file: string, args: string[], cwd: string, timeout = 120_000): Promise<string> {
  try {
    return (await exec(file, args, { cwd, timeout, maxBuffer: 32 * 1024 * 1024, env: { ...process.env, CI: 'true' } })).stdout
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string }
    throw new Error(`${path.basename(file)} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`, { cause: error })
  }
}

/** The host libraries at the versions the repository tests (read from its lock). */
function hostVersions(): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version: string }>
  }
  return ['keyv', 'undici', 'typeorm', 'drizzle-orm', '@mikro-orm/core'].map(
    (name) => `${name}@${lock.packages[`node_modules/${name}`]!.version}`,
  )
}

/** Type-checks `files` of a consumer project under strict NodeNext with the repository's tsc. */
async function typeCheck(project: string, files: string[]): Promise<void> {
  fs.writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        // Declaration files are not checked on their own: the host libraries' do not pass
        // (drizzle-orm's name drivers that are not installed). larder's core declarations are
        // checked by test/package.test.ts; here every adapter's are used, under strict, and
        // the @ts-expect-error lines prove they did not degrade to `any`.
        skipLibCheck: true,
        types: ['node'],
        typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
      },
      files,
    }),
  )
  await run(path.join(repoRoot, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', project], project)
}

// One body for both module systems: every adapter over a cache the app opened (so the adapter
// must use the app's copy of larder), a round trip through each, and the results as JSON.
const body = `
const dir = process.argv[2]
const cache = await Larder.open({ dir })
const out = {}
const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'app' })
await keyv.set('k', { v: 1 })
out.keyv = await keyv.get('k')

const store = new LarderCacheStore(cache)
const key = { origin: 'http://x', path: '/', method: 'GET', headers: {} }
const now = Date.now()
const writable = store.createWriteStream(key, { statusCode: 200, statusMessage: 'OK', headers: {}, cacheControlDirectives: {}, cachedAt: now, staleAt: now + 60000, deleteAt: now + 60000 })
await new Promise((resolve, reject) => writable.on('finish', resolve).on('error', reject).end('body'))
const got = await store.get(key)
let text = ''
if (Buffer.isBuffer(got.body)) text = got.body.toString() // a small response is one Buffer (undici takes either)
else for await (const chunk of got.body) text += chunk
out.undici = text

const typeorm = new LarderQueryResultCache(undefined, cache)
await typeorm.storeInCache({ identifier: 'q', time: now, duration: 60000, result: '[1]' })
out.typeorm = (await typeorm.getFromCache({ identifier: 'q', duration: 60000 })).result

const drizzle = new LarderDrizzleCache(cache)
await drizzle.put('hash', [[1, 'ann']], ['users'], false)
const before = await drizzle.get('hash', ['users'], false)
await drizzle.onMutate({ tables: ['users'] })
out.drizzle = [before, (await drizzle.get('hash', ['users'], false)) ?? null]

const Adapter = LarderCacheAdapter.using(cache)
const mikro = new Adapter({ expiration: 60000 })
await mikro.set('m', { rows: 2 }, '')
out.mikro = await mikro.get('m')
await cache.close()
console.log(JSON.stringify(out))
`

const imports = {
  esm: `import { Larder } from 'larder'
import Keyv from 'keyv'
import { KeyvLarder } from 'larder/keyv'
import { LarderCacheStore } from 'larder/undici'
import { LarderQueryResultCache } from 'larder/typeorm'
import { LarderDrizzleCache } from 'larder/drizzle'
import { LarderCacheAdapter } from 'larder/mikro-orm'
`,
  cjs: `'use strict'
const { Larder } = require('larder')
const { Keyv } = require('keyv')
const { KeyvLarder } = require('larder/keyv')
const { LarderCacheStore } = require('larder/undici')
const { LarderQueryResultCache } = require('larder/typeorm')
const { LarderDrizzleCache } = require('larder/drizzle')
const { LarderCacheAdapter } = require('larder/mikro-orm')
`,
}

// Strict use of every adapter with the host library's own types; the @ts-expect-error lines
// fail the check if a declaration degrades to `any`.
const typed = `
export async function use(): Promise<void> {
  const cache: Larder = await Larder.open({ dir: '/tmp/larder-adapter-types' })
  const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'app' })
  const fromOptions = new Keyv({ store: new KeyvLarder({ dir: '/tmp/larder-adapter-types', memory: true }) })
  await keyv.set('k', 1)
  await fromOptions.disconnect()
  // @ts-expect-error not one of larder's options
  void new KeyvLarder({ directory: '/tmp' })

  const store = new LarderCacheStore(cache, { maxEntrySize: 1024, errorCallback: (error: Error) => void error })
  void new Agent().compose(interceptors.cache({ store }))
  // @ts-expect-error maxEntrySize is a number of bytes
  void new LarderCacheStore(cache, { maxEntrySize: '1MB' })

  const source = new DataSource({ type: 'sqljs', cache: { provider: (ds: DataSource) => new LarderQueryResultCache(ds, cache) } })
  const resultCache: QueryResultCache = new LarderQueryResultCache(source, { dir: '/tmp/larder-adapter-types' })
  await resultCache.remove(['id'])
  // @ts-expect-error not one of larder's options
  void new LarderQueryResultCache(source, { directory: '/tmp' })

  const drizzleCache: Cache = new LarderDrizzleCache(cache, { strategy: 'all', ttl: '5m', onError: (error: Error) => void error })
  const db = drizzle(async () => ({ rows: [] }), { cache: drizzleCache })
  void db
  // @ts-expect-error not a strategy
  void new LarderDrizzleCache(cache, { strategy: 'sometimes' })

  const config: Options = { resultCache: { adapter: LarderCacheAdapter, expiration: 1000, options: { dir: '/tmp/larder-adapter-types' } } }
  const shared: CacheAdapter = new (LarderCacheAdapter.using(cache))({ expiration: 1000 })
  void [config, shared]
  // @ts-expect-error using() takes an open cache, not options
  void LarderCacheAdapter.using({ dir: '/tmp' })
  await cache.close()
}
`
const typeImports = `import { Larder } from 'larder'
import Keyv from 'keyv'
import { KeyvLarder } from 'larder/keyv'
import { Agent, interceptors } from 'undici'
import { LarderCacheStore } from 'larder/undici'
import { DataSource } from 'typeorm'
import type { QueryResultCache } from 'typeorm/cache/QueryResultCache.js'
import { LarderQueryResultCache } from 'larder/typeorm'
import type { Cache } from 'drizzle-orm/cache/core'
import { drizzle } from 'drizzle-orm/sqlite-proxy'
import { LarderDrizzleCache } from 'larder/drizzle'
import type { CacheAdapter, Options } from '@mikro-orm/core'
import { LarderCacheAdapter } from 'larder/mikro-orm'
`

test(
  'the packed adapters install beside their host libraries and work from ESM, CJS and strict TypeScript',
  { timeout: 240_000 },
  async (t) => {
    if (!fs.existsSync(path.join(repoRoot, 'dist', 'adapters', 'mikro-orm.d.cts'))) await run('npm', ['run', 'build', '--silent'], repoRoot)
    const work = tempDir('larder-adapters-package')
    const project = path.join(work, 'consumer')
    fs.mkdirSync(project)
    const tarball = path.join(
      work,
      (await run('npm', ['pack', '--silent', '--pack-destination', work], repoRoot)).trim().split('\n').at(-1)!,
    )

    await t.test('the tarball ships every adapter as ESM, CJS and declarations of both', async () => {
      const files = new Set((await run('tar', ['-tzf', tarball], work)).split('\n'))
      const missing = ['keyv', 'undici', 'typeorm', 'drizzle', 'mikro-orm']
        .flatMap((name) => ['js', 'cjs', 'd.ts', 'd.cts'].map((ext) => `package/dist/adapters/${name}.${ext}`))
        .filter((file) => !files.has(file))
      assert.deepEqual(missing, [])
    })

    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'adapters-consumer', version: '1.0.0', private: true }))
    await run(
      'npm',
      ['install', tarball, ...hostVersions(), '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock'],
      project,
      180_000,
    )

    for (const [kind, file] of [
      ['esm', 'consumer.mjs'],
      ['cjs', 'consumer.cjs'],
    ] as const) {
      await t.test(`${kind.toUpperCase()} consumer: every adapter over the app's own cache`, async () => {
        const source =
          kind === 'esm'
            ? imports.esm + body
            : `${imports.cjs};(async () => {\n${body}\n})().catch((error) => { console.error(error); process.exitCode = 1 })\n`
        fs.writeFileSync(path.join(project, file), source)
        const out = JSON.parse(
          (await run(process.execPath, [file, path.join(work, `cache-${kind}`)], project)).trim().split('\n').at(-1)!,
        ) as unknown
        assert.deepEqual(out, { keyv: { v: 1 }, undici: 'body', typeorm: '[1]', drizzle: [[[1, 'ann']], null], mikro: { rows: 2 } })
      })
    }

    await t.test("an ESM app's cache works with an adapter loaded by require (two copies of larder)", async () => {
      fs.writeFileSync(
        path.join(project, 'mixed.mjs'),
        `
      import { createRequire } from 'node:module'
      import { Larder } from 'larder'
      import Keyv from 'keyv'
      const { KeyvLarder } = createRequire(import.meta.url)('larder/keyv')
      const cache = await Larder.open({ dir: process.argv[2] })
      const keyv = new Keyv({ store: new KeyvLarder(cache) })
      await keyv.set('k', 'v')
      console.log(JSON.stringify([await keyv.get('k'), await cache.get('keyv:k')]))
      await cache.close()
    `,
      )
      assert.deepEqual(JSON.parse(await run(process.execPath, ['mixed.mjs', path.join(work, 'cache-mixed')], project)), [
        'v',
        JSON.stringify({ value: 'v' }),
      ])
    })

    await t.test('strict TypeScript consumers type-check under NodeNext (.mts and .cts)', async () => {
      fs.writeFileSync(path.join(project, 'types.mts'), typeImports + typed)
      fs.writeFileSync(path.join(project, 'types.cts'), typeImports + typed)
      await typeCheck(project, ['types.mts', 'types.cts'])
    })

    // A CommonJS TypeScript project on the older resolution (TypeORM's own starter sets
    // module commonjs, so node10), which reads no `exports`: typesVersions leads it to each
    // subpath's declarations, and the @ts-expect-error lines prove they are not `any`.
    await t.test('a strict CommonJS TypeScript project under moduleResolution node10 finds every subpath’s types', async () => {
      fs.writeFileSync(
        path.join(project, 'node10.ts'),
        `import { Larder } from 'larder'
import { KeyvLarder } from 'larder/keyv'
import { LarderCacheStore } from 'larder/undici'
import { LarderQueryResultCache } from 'larder/typeorm'
import { LarderDrizzleCache } from 'larder/drizzle'
import { LarderCacheAdapter } from 'larder/mikro-orm'
import { DataSource } from 'typeorm'
export async function use(): Promise<void> {
  const cache: Larder = await Larder.open({ dir: '/tmp/larder-node10' })
  // @ts-expect-error not one of larder's options
  void new KeyvLarder({ directory: '/tmp' })
  // @ts-expect-error maxEntrySize is a number of bytes
  void new LarderCacheStore(cache, { maxEntrySize: '1MB' })
  // @ts-expect-error not one of larder's options
  void new LarderQueryResultCache(new DataSource({ type: 'sqljs' }), { directory: '/tmp' })
  // @ts-expect-error not a strategy
  void new LarderDrizzleCache(cache, { strategy: 'sometimes' })
  // @ts-expect-error using() takes an open cache, not options
  void LarderCacheAdapter.using({ dir: '/tmp' })
  await cache.close()
}
`,
      )
      const config = path.join(project, 'tsconfig.node10.json')
      fs.writeFileSync(
        config,
        JSON.stringify({
          compilerOptions: {
            module: 'commonjs',
            moduleResolution: 'node10',
            target: 'ES2021',
            strict: true,
            noEmit: true,
            esModuleInterop: true,
            skipLibCheck: true,
            types: ['node'],
            typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
          },
          files: ['node10.ts'],
        }),
      )
      await run(path.join(repoRoot, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', config], project)
    })

    // MikroORM 7 (its runtime needs Node >= 22.17: test/adapters/mikro-orm-7.test.ts) beside the
    // same tarball: the adapter is still its CacheAdapter and fits its resultCache option.
    await t.test('strict TypeScript: larder/mikro-orm against MikroORM 7’s declarations', async () => {
      const project7 = path.join(work, 'consumer-mikro-orm-7')
      fs.mkdirSync(project7)
      fs.writeFileSync(
        path.join(project7, 'package.json'),
        JSON.stringify({ name: 'mikro-orm-7-consumer', version: '1.0.0', private: true }),
      )
      const core7 = JSON.parse(fs.readFileSync(path.join(repoRoot, 'test', 'adapters', 'mikro-orm-7', 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { version: string }>
      }
      const version = core7.packages['node_modules/@mikro-orm/core']!.version
      assert.match(version, /^7\./)
      await run(
        'npm',
        [
          'install',
          tarball,
          `@mikro-orm/core@${version}`,
          '--no-audit',
          '--no-fund',
          '--prefer-offline',
          '--no-package-lock',
          '--engine-strict=false',
        ],
        project7,
        180_000,
      )
      fs.writeFileSync(
        path.join(project7, 'types.mts'),
        `import type { CacheAdapter, Options } from '@mikro-orm/core'
import { Larder } from 'larder'
import { LarderCacheAdapter } from 'larder/mikro-orm'
const cache = await Larder.open({ dir: '/tmp/larder-adapter-types' })
const config: NonNullable<Options['resultCache']> = { adapter: LarderCacheAdapter, expiration: 1000, options: { dir: '/tmp/larder-adapter-types' } }
const shared: CacheAdapter = new (LarderCacheAdapter.using(cache))({ expiration: 1000 })
const found: unknown = await shared.get('key', '')
void [config, found]
// @ts-expect-error using() takes an open cache, not options
void LarderCacheAdapter.using({ dir: '/tmp' })
await cache.close()
`,
      )
      await typeCheck(project7, ['types.mts'])
    })
  },
)
