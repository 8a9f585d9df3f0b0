/**
 * The published package, as a consumer gets it: `npm pack`, install the tarball into a fresh
 * project, then use it from real child processes (ESM `import`, CJS `require`) and type-check
 * a TypeScript consumer against it. This catches what the in-repo tests cannot: a broken
 * `exports` map, files missing from the tarball, a CJS build that fails to load, declarations
 * that do not resolve under NodeNext.
 *
 * Every child runs on `process.execPath`, so under CI's Node 24 pass this checks Node 24 too.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const tsc = path.join(root, 'node_modules', '.bin', 'tsc')

/** Runs a command; on failure, the error carries the command's output so the test log explains it. */
async function sh(file: string, args: string[], cwd: string, timeout = 60_000): Promise<string> {
  try {
    const { stdout } = await run(file, args, { cwd, timeout, maxBuffer: 32 * 1024 * 1024, env: { ...process.env, CI: 'true' } })
    return stdout
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string }
    throw new Error(
      `${file} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n--- stdout\n${e.stdout ?? ''}\n--- stderr\n${e.stderr ?? ''}`,
      { cause: error },
    )
  }
}

/** Runs a consumer script with the current node and parses the one JSON line it prints. */
async function consume(script: string, cwd: string, cacheDir: string): Promise<Record<string, unknown>> {
  const stdout = await sh(process.execPath, [script, cacheDir], cwd, 30_000)
  const last = stdout.trim().split('\n').at(-1) ?? ''
  try {
    return JSON.parse(last) as Record<string, unknown>
  } catch {
    throw new Error(`${script} did not print a JSON result; stdout was:\n${stdout}`)
  }
}

// The consumers do the same thing through the two module systems. Each check is recorded
// rather than asserted in the child, so a failure shows up as a readable diff here.
const consumerBody = `
const dir = process.argv[2]
const result = { node: process.version }
result.errorIsConstructor = typeof LarderError === 'function' && new LarderError('ERR_INVALID_KEY', 'probe') instanceof Error
const cache = await Larder.open({ dir })
await cache.set('greeting', { hello: 'world', n: 42 }, { ttl: '1h', tags: ['t'] })
result.value = await cache.get('greeting')
result.missing = await cache.get('absent') ?? null
try {
  await cache.get('')
  result.invalidKey = 'did not reject'
} catch (error) {
  result.invalidKey = { code: error.code, isLarderError: error instanceof LarderError }
}
// prune and verify run in piscina threads from dist/maintenance-worker.js: proves the
// worker file ships in the package and loads from both the ESM and the CJS bundle.
for (let i = 0; i < 20; i++) await cache.set('bulk-' + i, 'x'.repeat(100))
const pruned = await cache.prune({ pattern: 'bulk-1*' })
const verified = await cache.verify()
result.maintenance = { matched: pruned.matched, remainingEntries: pruned.remainingEntries, verifiedCorrupt: verified.corrupt, verifiedScanned: verified.scanned }
await cache.close()
// A second instance reads what the first wrote: the value really went to disk.
const reopened = await Larder.open({ dir })
result.persisted = await reopened.get('greeting')
await reopened.close()
console.log(JSON.stringify(result))
`

const esmConsumer = `import { Larder, LarderError } from 'larder'
const resolved = import.meta.resolve('larder')
${consumerBody.replace('const result = { node: process.version }', 'const result = { node: process.version, resolved }')}`

// CommonJS has no top-level await: the same body runs inside an async function.
const cjsConsumer = `'use strict'
const { Larder, LarderError } = require('larder')
const resolved = require.resolve('larder')
;(async () => {
${consumerBody.replace('const result = { node: process.version }', 'const result = { node: process.version, resolved }')}
})().catch((error) => { console.error(error); process.exitCode = 1 })
`

// Type-level use of the public API. The @ts-expect-error lines fail the check if the
// declarations degrade to \`any\` (they would no longer be errors).
const tsConsumerBody = `
const options: LarderOptions = { dir: '/tmp/larder-types', memory: { maxEntries: 10 }, compression: 'brotli' }
export async function use(): Promise<number> {
  const cache: Larder = await Larder.open(options)
  await cache.set('k', { a: 1 }, { ttl: '5m', tags: ['x'] })
  const value: unknown = await cache.get('k')
  const loaded: string = await cache.getOrSet('s', async () => 'v', { grace: '1m' })
  const total: number = await cache.increment('n', 2)
  const stats: Stats = await cache.stats()
  cache.on('hit', (key: string, tier: 'memory' | 'disk') => void [key, tier])
  // @ts-expect-error ttl must be a Duration, not a boolean
  await cache.set('k', 1, { ttl: true })
  // @ts-expect-error unknown option
  await Larder.open({ directory: '/tmp' })
  await cache.close()
  const code: LarderErrorCode = new LarderError('ERR_INVALID_KEY', 'm').code
  // @ts-expect-error not a LarderErrorCode
  void new LarderError('ERR_NOT_A_CODE', 'm')
  return total + stats.hits + loaded.length + (isLarderError(value, 'ERR_CLOSED') ? 1 : 0) + code.length
}
`

test('the packed package installs and works for ESM, CJS and TypeScript consumers', { timeout: 120_000 }, async (t) => {
  // `npm test` builds first; a bare `node --test` run may not have.
  if (!['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts'].every((f) => fs.existsSync(path.join(root, 'dist', f)))) {
    await sh('npm', ['run', 'build', '--silent'], root, 120_000)
  }

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-package-test-'))
  t.after(() => fs.rmSync(work, { recursive: true, force: true }))
  const packDir = path.join(work, 'pack')
  const project = path.join(work, 'consumer')
  fs.mkdirSync(packDir)
  fs.mkdirSync(project)

  await sh('npm', ['pack', '--pack-destination', packDir], root)
  const tarballs = fs.readdirSync(packDir).filter((f) => f.endsWith('.tgz'))
  assert.equal(tarballs.length, 1, `expected one tarball in ${packDir}, found ${tarballs.join(', ')}`)
  const tarball = path.join(packDir, tarballs[0]!)

  await t.test('tarball ships the builds and declarations, not sources or tests', async () => {
    const entries = (await sh('tar', ['-tzf', tarball], work)).split('\n').filter(Boolean)
    for (const file of [
      'package/package.json',
      'package/dist/index.js',
      'package/dist/index.cjs',
      'package/dist/index.d.ts',
      'package/dist/index.d.cts',
      'package/dist/maintenance-worker.js',
    ]) {
      assert.ok(entries.includes(file), `${file} missing from tarball; it has:\n${entries.join('\n')}`)
    }
    const leaked = entries.filter((e) => /^package\/(src|test)\//.test(e))
    assert.deepEqual(leaked, [], 'sources or tests leaked into the tarball')
  })

  // A fresh project that knows nothing of the repo. Runtime deps come from the registry, or
  // from npm's cache (which `npm ci` filled) thanks to --prefer-offline.
  fs.writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({ name: 'larder-consumer', version: '1.0.0', private: true }, null, 2),
  )
  await sh(
    'npm',
    ['install', tarball, '--prefix', project, '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock'],
    project,
    90_000,
  )
  assert.ok(
    fs.existsSync(path.join(project, 'node_modules', 'larder', 'package.json')),
    'larder was not installed into the consumer project',
  )

  const expected = { hello: 'world', n: 42 }
  // 21 entries; 'bulk-1' and 'bulk-10'…'bulk-19' match the pattern.
  const expectedMaintenance = { matched: 11, remainingEntries: 10, verifiedCorrupt: 0, verifiedScanned: 10 }

  await t.test('ESM consumer: import { Larder, LarderError } from "larder"', async () => {
    fs.writeFileSync(path.join(project, 'consumer.mjs'), esmConsumer)
    const result = await consume('consumer.mjs', project, path.join(work, 'cache-esm'))
    assert.equal(result.node, process.version)
    assert.equal(result.resolved, pathToFileURL(path.join(project, 'node_modules', 'larder', 'dist', 'index.js')).href)
    assert.deepEqual(
      {
        errorIsConstructor: result.errorIsConstructor,
        value: result.value,
        missing: result.missing,
        invalidKey: result.invalidKey,
        persisted: result.persisted,
        maintenance: result.maintenance,
      },
      {
        errorIsConstructor: true,
        value: expected,
        missing: null,
        invalidKey: { code: 'ERR_INVALID_KEY', isLarderError: true },
        persisted: expected,
        maintenance: expectedMaintenance,
      },
    )
  })

  await t.test('CJS consumer: const { Larder, LarderError } = require("larder")', async () => {
    fs.writeFileSync(path.join(project, 'consumer.cjs'), cjsConsumer)
    const result = await consume('consumer.cjs', project, path.join(work, 'cache-cjs'))
    assert.equal(result.node, process.version)
    assert.equal(result.resolved, path.join(project, 'node_modules', 'larder', 'dist', 'index.cjs'))
    assert.deepEqual(
      {
        errorIsConstructor: result.errorIsConstructor,
        value: result.value,
        missing: result.missing,
        invalidKey: result.invalidKey,
        persisted: result.persisted,
        maintenance: result.maintenance,
      },
      {
        errorIsConstructor: true,
        value: expected,
        missing: null,
        invalidKey: { code: 'ERR_INVALID_KEY', isLarderError: true },
        persisted: expected,
        maintenance: expectedMaintenance,
      },
    )
  })

  await t.test('an error from the CJS copy is recognised by the ESM copy, and the other way round', async () => {
    // An app that imports larder while one of its dependencies requires it loads both builds.
    fs.writeFileSync(
      path.join(project, 'dual.mjs'),
      `
      import { createRequire } from 'node:module'
      import * as esm from 'larder'
      const cjs = createRequire(import.meta.url)('larder')
      const out = []
      for (const [from, to] of [[cjs, esm], [esm, cjs]]) {
        const cache = await from.Larder.open({ dir: process.argv[2] })
        const error = await cache.get('').catch((e) => e)
        out.push([error instanceof to.LarderError, to.isLarderError(error, 'ERR_INVALID_KEY'), error instanceof Error])
        await cache.close()
      }
      console.log(JSON.stringify(out))
    `,
    )
    const out = await sh(process.execPath, ['dual.mjs', path.join(work, 'cache-dual')], project)
    assert.deepEqual(JSON.parse(out.trim().split('\n').at(-1)!), [
      [true, true, true],
      [true, true, true],
    ])
  })

  await t.test('the package installs a working `larder` bin', async () => {
    const bin = path.join(project, 'node_modules', '.bin', 'larder')
    assert.ok(fs.existsSync(bin), 'node_modules/.bin/larder was not linked')
    const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }
    assert.equal((await sh(bin, ['--version'], project)).trim(), version)
    // The cache the ESM consumer left: the bin finds its worker (prune walks in a thread).
    const stats = JSON.parse(await sh(bin, ['stats', '--json', '--dir', path.join(work, 'cache-esm')], project)) as { entries: number }
    assert.equal(stats.entries, 10)
  })

  await t.test('TypeScript consumers type-check under module NodeNext (.mts via "import", .cts via "require")', async () => {
    const imports = `import { Larder, LarderError, isLarderError, type LarderErrorCode, type LarderOptions, type Stats } from 'larder'\n`
    fs.writeFileSync(path.join(project, 'esm-consumer.mts'), imports + tsConsumerBody)
    fs.writeFileSync(path.join(project, 'cjs-consumer.cts'), imports + tsConsumerBody)
    fs.writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify(
        {
          compilerOptions: {
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            target: 'ES2022',
            strict: true,
            noEmit: true,
            // Check the shipped declarations themselves, not only our use of them (TypeScript's
            // own lib files are skipped: they are not ours, and checking them triples the time).
            skipLibCheck: false,
            skipDefaultLibCheck: true,
            // The declarations reference node:events and node:stream; borrow the repo's @types/node
            // rather than installing it into the consumer.
            types: ['node'],
            typeRoots: [path.join(root, 'node_modules', '@types')],
          },
          files: ['esm-consumer.mts', 'cjs-consumer.cts'],
        },
        null,
        2,
      ),
    )
    await sh(tsc, ['--noEmit', '-p', project], project, 60_000)
  })
})

test('the declarations present as values only what the runtime exports (a type-only name imported as a value would fail to link)', async () => {
  if (!fs.existsSync(path.join(root, 'dist', 'index.d.ts'))) await sh('npm', ['run', 'build', '--silent'], root, 120_000)
  const exported = Object.keys((JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: object }).exports)
  const entries = exported.filter((name) => name.startsWith('./') && name !== './package.json').map((name) => `adapters/${name.slice(2)}`)
  entries.unshift('index')
  for (const entry of entries) {
    const declarations = fs.readFileSync(path.join(root, 'dist', `${entry}.d.ts`), 'utf8')
    const values = [...declarations.matchAll(/^export \{([^}]*)\};?$/gm)]
      .flatMap((m) => m[1]!.split(','))
      .map((name) => name.trim())
      .filter((name) => name !== '' && !name.startsWith('type '))
      .map((name) => name.split(' as '))
      // a value: a class, function or constant under its declared name (a type alias never is)
      .filter(([declared]) =>
        new RegExp(`declare (abstract )?(class|function|const|let|var|enum) ${declared!.replace('$', '\\$')}\\b`).test(declarations),
      )
      .map((names) => names.at(-1)!)
    const runtime = Object.keys((await import(pathToFileURL(path.join(root, 'dist', `${entry}.js`)).href)) as object)
    for (const name of values)
      assert.ok(runtime.includes(name), `${entry}.d.ts exports ${name} as a value; the runtime has ${runtime.join(', ')}`)
  }
})
