import assert from 'node:assert/strict'
import { inspect } from 'node:util'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'
import { Larder, LarderError } from '../src/index.ts'
import { layerOptions } from '../src/config/layered-options.ts'
import { envName, OPTION_ROWS } from '../src/config/option-table.ts'
import { getPath } from '../src/config/option-paths.ts'
import { resolveOptions } from '../src/options.ts'
import { tempDir } from './helpers.ts'

/** The env a row's example needs beside it: a shared tier for the Redis-only options. */
function companions(rowPath: string): Record<string, string> {
  if (rowPath === 'redis.cluster' || rowPath === 'redis.url') return {}
  const redis = { LARDER_REDIS_URL: 'redis://127.0.0.1:1' }
  if (rowPath === 'encryption.activeKey') return { ...redis, LARDER_ENCRYPTION_KEYS: `k1:${'1'.repeat(64)},k2:${'2'.repeat(64)}` }
  return redis
}

function isLarderError(code: string, pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof LarderError, String(error))
    assert.equal(error.code, code)
    assert.match(error.message, pattern)
    return true
  }
}

describe('configuration: sources and precedence', () => {
  test('every option that may come from the environment is read from its variable (a loop over the option table)', async () => {
    const rows = OPTION_ROWS.filter((row) => row.env !== false)
    assert.ok(rows.length > 40, 'the table lists the options')
    const defaults = resolveOptions({ redis: 'redis://127.0.0.1:1' }) as unknown as Record<string, unknown>
    for (const row of rows) {
      assert.ok(row.example !== undefined, `${row.path} has an example`)
      const variable = envName(row.path)
      const env = { ...companions(row.path), [variable]: row.example }
      const layered = await layerOptions({ config: { env, file: false } })
      if (row.path === 'profile') {
        assert.equal(layered.profile, row.example)
        assert.equal(layered.sources.profile, 'env:LARDER_PROFILE')
        continue
      }
      assert.equal(layered.sources[row.path], `env:${variable}`, `${variable} is the source of ${row.path}`)
      const read =
        row.path === 'memory'
          ? layered.resolved.memory !== false
          : row.path === 'maintenance'
            ? layered.resolved.maintenance.auto
            : row.path.startsWith('encryption.') // a Keyring shows its ids, never its keys
              ? layered.resolved.encryption?.toJSON()
              : getPath(layered.resolved as unknown as Record<string, unknown>, row.path)
      const before = row.path === 'memory' ? defaults.memory !== false : row.path === 'maintenance' ? true : getPath(defaults, row.path)
      assert.notDeepEqual(read, before, `${variable}=${row.example} changed ${row.path}`)
    }
  })

  test('a switch (memory, memoryPressure, maintenance) takes true and false from code as from its variable, to the same options', async () => {
    for (const row of OPTION_ROWS.filter((r) => r.env === 'switch')) {
      for (const value of [true, false]) {
        const fromEnv = await layerOptions({ config: { env: { [envName(row.path)]: String(value) }, file: false } })
        const fromCode = resolveOptions({ [row.path]: value })
        assert.deepEqual(
          getPath(fromCode as unknown as Record<string, unknown>, row.path),
          getPath(fromEnv.resolved as unknown as Record<string, unknown>, row.path),
          `${row.path}: ${value}`,
        )
      }
    }
  })

  test('a number variable that is not a number is refused, naming the variable and its text', async () => {
    for (const row of OPTION_ROWS.filter((r) => r.env === 'number')) {
      const variable = envName(row.path)
      await assert.rejects(
        layerOptions({ config: { env: { ...companions(row.path), [variable]: 'lots' }, file: false } }),
        isLarderError('ERR_INVALID_OPTION', new RegExp(`^${variable}="lots": `)),
        variable,
      )
    }
  })

  test('a number variable reads as the number a config file or code writing it means (.9, 5., 1e3)', async () => {
    const read = async (env: Record<string, string>) => (await layerOptions({ config: { env, file: false } })).resolved
    const pressure = (await read({ LARDER_MEMORY: 'true', LARDER_MEMORY_PRESSURE_HIGH_WATER: '.9' })).memoryPressure
    assert.ok(pressure !== false)
    assert.equal(pressure.highWater, 0.9)
    assert.equal((await read({ LARDER_MAX_ENTRIES: '1e3' })).maxEntries, 1000)
    assert.equal((await read({ LARDER_COMPRESSION_LEVEL: '5.' })).compressionLevel, 5)
    assert.equal((await read({ LARDER_MAINTENANCE_LOW_WATER: '+0.5' })).maintenance.lowWater, 0.5)
    for (const text of ['.', 'e3', '1e', '0x10', '1_000', '1,5'])
      await assert.rejects(read({ LARDER_MAX_ENTRIES: text }), isLarderError('ERR_INVALID_OPTION', /^LARDER_MAX_ENTRIES=/), text)
  })

  test('LARDER_SHARED takes each value its row names: false (and its other words), group, everyone', async () => {
    const shared = async (value: string) => (await layerOptions({ config: { env: { LARDER_SHARED: value }, file: false } })).resolved.shared
    for (const off of ['false', '0', 'no', 'OFF']) assert.equal(await shared(off), false, off)
    assert.equal(await shared('group'), 'group')
    assert.equal(await shared('everyone'), 'everyone')
    await assert.rejects(shared('world'), isLarderError('ERR_INVALID_OPTION', /^LARDER_SHARED="world": /))
  })

  test('a duration in upper-case M ("1M": a month? ms reads a minute) is refused for every duration option, from env, file and code, naming the field', async () => {
    const root = tempDir('larder-config')
    const rows = OPTION_ROWS.filter((row) => row.doc.includes('(duration'))
    assert.ok(rows.length >= 15, 'the table marks its durations')
    const beside = { memory: true, redis: 'redis://127.0.0.1:1' }
    const ambiguous = isLarderError('ERR_INVALID_OPTION', /"1M" is ambiguous.*write "1m" for minutes.*"30d"/)
    for (const row of rows) {
      const variable = envName(row.path)
      const inEnv = layerOptions({
        config: { env: { LARDER_MEMORY: 'true', LARDER_REDIS_URL: 'redis://127.0.0.1:1', [variable]: '1M' }, file: false },
      })
      await assert.rejects(inEnv, (error: unknown) => ambiguous(error) && (error as LarderError).field === row.path, variable)
      const tree: Record<string, unknown> = {}
      const parts = row.path.split('.')
      parts.reduce<Record<string, unknown>>(
        (node, part, i) => (node[part] = i === parts.length - 1 ? '1 M' : {}) as Record<string, unknown>,
        tree,
      )
      const file = path.join(root, 'larder.config.json')
      fs.writeFileSync(file, JSON.stringify(tree))
      const inFile = layerOptions({ ...beside, config: { env: false, file } })
      await assert.rejects(inFile, isLarderError('ERR_INVALID_OPTION', /larder\.config\.json: .*"1 M" is ambiguous/), `file ${row.path}`)
      assert.throws(
        () => resolveOptions({ ...beside, ...tree }),
        isLarderError('ERR_INVALID_OPTION', /"1 M" is ambiguous/),
        `code ${row.path}`,
      )
    }
    // What ms reads without doubt is still read: minutes in lower case, hours in upper case.
    assert.equal(resolveOptions({ defaultTtl: '1m' }).defaultTtl, 60_000)
    assert.equal(resolveOptions({ defaultTtl: '2H' }).defaultTtl, 7_200_000)
    const cache = await Larder.open({ dir: path.join(root, 'c') })
    try {
      await assert.rejects(cache.set('k', 1, { ttl: '1M' }), isLarderError('ERR_INVALID_TTL', /"1M" is ambiguous/))
      assert.equal(await cache.has('k'), false, 'nothing was written')
    } finally {
      await cache.close()
    }
  })

  test('a size in lower-case m ("1m": minutes? megabytes?) is refused for every size option, naming the field', async () => {
    const rows = OPTION_ROWS.filter((row) => row.doc.includes('(size'))
    assert.ok(rows.length >= 6, 'the table marks its sizes')
    for (const row of rows) {
      const variable = envName(row.path)
      await assert.rejects(
        layerOptions({
          config: { env: { LARDER_MEMORY: 'true', LARDER_REDIS_URL: 'redis://127.0.0.1:1', [variable]: '1m' }, file: false },
        }),
        (error: unknown) =>
          isLarderError('ERR_INVALID_OPTION', /"1m" is not a size|a size .*got "1m"/)(error) && (error as LarderError).field === row.path,
        variable,
      )
    }
  })

  test('compressLater reads the same from env, file and code: 0 and false/off/no are off, true/on/yes the default size, a size its bytes', async () => {
    const root = tempDir('larder-config')
    const file = path.join(root, 'larder.config.json')
    const cases: [string | number | boolean, number | false][] = [
      [0, false],
      ['0', false],
      [false, false],
      ['false', false],
      ['off', false],
      ['No', false],
      ['FALSE', false],
      [true, 32 * 1024],
      ['true', 32 * 1024],
      ['on', 32 * 1024],
      ['yes', 32 * 1024],
      ['64KB', 64_000],
      [65536, 65536],
    ]
    for (const [value, expected] of cases) {
      fs.writeFileSync(file, JSON.stringify({ compressLater: value }))
      const fromFile = (await layerOptions({ config: { env: false, file } })).resolved.compressLater
      const fromCode = resolveOptions({ compressLater: value }).compressLater
      assert.equal(fromFile, expected, `file ${JSON.stringify(value)}`)
      assert.equal(fromCode, expected, `code ${JSON.stringify(value)}`)
      if (typeof value === 'boolean') continue // the environment holds text
      const fromEnv = (await layerOptions({ config: { env: { LARDER_COMPRESS_LATER: String(value) }, file: false } })).resolved
        .compressLater
      assert.equal(fromEnv, expected, `LARDER_COMPRESS_LATER=${value}`)
    }
    await assert.rejects(
      layerOptions({ config: { env: { LARDER_COMPRESS_LATER: 'lots' }, file: false } }),
      isLarderError('ERR_INVALID_OPTION', /^LARDER_COMPRESS_LATER="lots": .*compressLater.*a size .*or false \(off/),
    )
  })

  test('memoryPressure without the memory tier or Redis (nothing to shed) is off, from env, file and code alike; its fields are still checked', async () => {
    const root = tempDir('larder-config')
    const file = path.join(root, 'larder.config.json')
    const dir = path.join(root, 'c')
    for (const pressure of [true, { interval: '5s' }, { highWater: 0.9 }] as const) {
      fs.writeFileSync(file, JSON.stringify({ memoryPressure: pressure }))
      const env =
        pressure === true
          ? { LARDER_MEMORY_PRESSURE: 'true' }
          : 'interval' in pressure
            ? { LARDER_MEMORY_PRESSURE_INTERVAL: '5s' }
            : { LARDER_MEMORY_PRESSURE_HIGH_WATER: '0.9' }
      const shown = JSON.stringify(pressure)
      const sources = {
        env: (beside: Record<string, unknown>, besideEnv: Record<string, string>) =>
          layerOptions({ dir, ...beside, config: { env: { ...env, ...besideEnv }, file: false } }),
        file: (beside: Record<string, unknown>) => layerOptions({ dir, ...beside, config: { env: false, file } }),
        code: (beside: Record<string, unknown>) =>
          Promise.resolve({ resolved: resolveOptions({ dir, ...beside, memoryPressure: pressure }) }),
      }
      for (const [name, read] of Object.entries(sources)) {
        assert.equal((await read({}, {})).resolved.memoryPressure, false, `${name} ${shown}: no memory tier, no Redis`)
        assert.notEqual((await read({ memory: true }, {})).resolved.memoryPressure, false, `${name} ${shown}: with the memory tier`)
        // Redis's write-back queue is bounded under pressure too (writeStrategy may change live).
        const redis = (await read({ redis: 'redis://127.0.0.1:1' }, {})).resolved.memoryPressure
        assert.notEqual(redis, false, `${name} ${shown}: with Redis`)
      }
    }
    await assert.rejects(
      layerOptions({ dir, config: { env: { LARDER_MEMORY_PRESSURE_HIGH_WATER: '2' }, file: false } }),
      isLarderError('ERR_INVALID_OPTION', /^LARDER_MEMORY_PRESSURE_HIGH_WATER="2": /),
      'a bad threshold is refused even where the watch is off',
    )
  })

  test('LARDER_DIR=false means no file tier, as dir: false does in a file or code (it made a directory named "false")', async () => {
    const root = tempDir('larder-config')
    const file = path.join(root, 'larder.config.json')
    fs.writeFileSync(file, JSON.stringify({ dir: false, memory: true }))
    const fromFile = await layerOptions({ config: { env: false, file } })
    const fromEnv = await layerOptions({ config: { env: { LARDER_DIR: 'false', LARDER_MEMORY: 'true' }, file: false, cwd: root } })
    assert.equal(fromFile.resolved.dir, false)
    assert.equal(fromEnv.resolved.dir, false)
    assert.equal(fromEnv.sources.dir, 'env:LARDER_DIR')
    await assert.rejects(
      layerOptions({ config: { env: { LARDER_DIR: 'true' }, file: false } }),
      isLarderError('ERR_INVALID_OPTION', /^LARDER_DIR="true": .*a non-empty path string, or false/),
    )
    assert.equal(
      (await layerOptions({ config: { env: { LARDER_DIR: path.join(root, 'cache') }, file: false } })).resolved.dir,
      path.join(root, 'cache'),
    )
  })

  test('a bad size from the environment names the variable and writes nothing', async () => {
    const dir = path.join(tempDir('larder-config'), 'cache')
    await assert.rejects(Larder.open({ dir, config: { env: { LARDER_MAX_SIZE: '5 gigs' }, file: false } }), (error: unknown) => {
      assert.ok(error instanceof LarderError)
      assert.equal(error.code, 'ERR_INVALID_OPTION')
      assert.equal(error.field, 'maxSize')
      assert.match(error.message, /^LARDER_MAX_SIZE="5 gigs": .*not a size.*"500MB"/)
      return true
    })
    assert.equal(fs.existsSync(dir), false, 'nothing was created')
  })

  test('encryption keys from LARDER_ENCRYPTION_KEYS: entries sealed, the source named, a bad key refused without being shown', async () => {
    const dir = path.join(tempDir('larder-config'), 'cache')
    const secret = 'ab'.repeat(32)
    const env = { LARDER_ENCRYPTION_KEYS: `old:${'cd'.repeat(32)},new:${secret}`, LARDER_ENCRYPTION_ACTIVE_KEY: 'new' }
    const cache = await Larder.open({ dir, config: { env, file: false } })
    assert.deepEqual(cache.options.encryption?.toJSON(), { keys: ['old', 'new'], activeKey: 'new' })
    assert.equal(cache.optionSources['encryption.keys'], 'env:LARDER_ENCRYPTION_KEYS')
    assert.equal(cache.optionSources['encryption.activeKey'], 'env:LARDER_ENCRYPTION_ACTIVE_KEY')
    assert.ok(!JSON.stringify(cache.optionSources).includes(secret) && !JSON.stringify(cache.options).includes(secret))
    await cache.set('plain text to hide', 'a value nobody may read on disk')
    await cache.close()
    const files = fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    assert.ok(files.length > 0)
    for (const file of files) assert.ok(!fs.readFileSync(path.join(file.parentPath, file.name)).includes('a value nobody may read'))
    const again = await Larder.open({ dir, config: { env: { LARDER_ENCRYPTION_KEYS: `new:${secret}` }, file: false } })
    assert.equal(await again.get('plain text to hide'), 'a value nobody may read on disk', 'the first key listed is the active one')
    await again.close()

    const dir2 = path.join(tempDir('larder-config'), 'cache')
    const badKey = 'zz'.repeat(20)
    await assert.rejects(
      Larder.open({ dir: dir2, config: { env: { LARDER_ENCRYPTION_KEYS: `k1:${badKey}` }, file: false } }),
      (error: unknown) => {
        assert.ok(error instanceof LarderError)
        assert.equal(error.code, 'ERR_INVALID_OPTION')
        assert.match(error.message, /LARDER_ENCRYPTION_KEYS/)
        assert.ok(!error.message.includes(badKey), 'the key is never shown')
        return true
      },
    )
    assert.equal(fs.existsSync(dir2), false, 'nothing was created')
  })

  test('a bad LARDER_REDIS_URL is refused without showing its password', async () => {
    const env = { LARDER_REDIS_URL: 'http://admin:hunter2@cache.internal:6379' }
    await assert.rejects(Larder.open({ dir: false, config: { env, file: false } }), (error: unknown) => {
      assert.ok(error instanceof LarderError)
      assert.equal(error.code, 'ERR_INVALID_OPTION')
      assert.match(error.message, /^LARDER_REDIS_URL=.*cache\.internal.*expected a redis:\/\//)
      assert.ok(!error.message.includes('hunter2'), error.message)
      return true
    })
    await assert.rejects(Larder.open({ dir: false, redis: { url: 'http://admin:hunter2@cache.internal' } }), (error: unknown) => {
      assert.ok(error instanceof LarderError && !error.message.includes('hunter2'), String(error))
      return true
    })
    // ioredis takes a password from the query string too; and a password pasted into the
    // variable itself is not a URL at all: neither is shown.
    for (const [where, value] of [
      ['query', 'redis://127.0.0.1:99999/?password=hunter2'],
      ['bare', 'hunter2'],
      ['bare env', undefined],
    ] as const) {
      const opening =
        value === undefined
          ? Larder.open({ dir: false, config: { env: { LARDER_REDIS_URL: 'hunter2' }, file: false } })
          : Larder.open({ dir: false, redis: { url: value } })
      await assert.rejects(opening, (error: unknown) => {
        assert.ok(error instanceof LarderError && error.field === 'redis.url', String(error))
        assert.ok(!error.message.includes('hunter2'), `${where}: ${error.message}`)
        return true
      })
    }
  })

  test('cache.options, logged (JSON, util.inspect), shows the Redis URL without its password; options.redis.url is the URL', async () => {
    const url = 'redis://admin:hunter2@127.0.0.1:1/2' // nothing listens: the cache opens all the same (fail-open)
    const cache = await Larder.open({ dir: false, redis: { url, commandTimeout: 50 } })
    try {
      for (const shown of [JSON.stringify(cache.options), inspect(cache.options, { depth: 9 }), inspect(cache.options.redis)]) {
        assert.ok(!shown.includes('hunter2'), shown)
        assert.match(shown, /redis:\/\/\(credentials hidden\)@127\.0\.0\.1:1\/2/)
      }
      assert.equal(cache.options.redis?.url, url)
    } finally {
      await cache.close()
    }
    const inQuery = await Larder.open({ dir: false, redis: { url: 'redis://127.0.0.1:1/?password=hunter2&db=2', commandTimeout: 50 } })
    try {
      for (const shown of [JSON.stringify(inQuery.options), inspect(inQuery.options, { depth: 9 })]) {
        assert.ok(!shown.includes('hunter2'), shown)
        assert.match(shown, /password=\(hidden\)&db=2/)
      }
    } finally {
      await inQuery.close()
    }
  })

  test('a bad value in the config file names the file and the field, and writes nothing', async () => {
    const root = tempDir('larder-config')
    fs.writeFileSync(path.join(root, 'larder.config.json'), JSON.stringify({ dir: 'cache', maxSize: 'lots' }))
    await assert.rejects(
      Larder.open({ config: { env: false, cwd: root } }),
      isLarderError('ERR_INVALID_OPTION', /larder\.config\.json: maxSize: Invalid maxSize: "lots" is not a size/),
    )
    fs.writeFileSync(path.join(root, 'larder.config.json'), JSON.stringify({ dir: 'cache', maxSizee: '1GB' }))
    await assert.rejects(
      Larder.open({ config: { env: false, cwd: root } }),
      isLarderError('ERR_INVALID_OPTION', /larder\.config\.json: maxSizee: .*unknown option/),
    )
    fs.writeFileSync(path.join(root, 'larder.config.json'), '{ "dir": "cache", "__proto__": { "polluted": true } }')
    await assert.rejects(
      Larder.open({ config: { env: false, cwd: root } }),
      isLarderError('ERR_INVALID_OPTION', /larder\.config\.json: __proto__: .*unknown option/),
    )
    fs.writeFileSync(path.join(root, 'larder.config.json'), '{ "dir": ')
    await assert.rejects(
      Larder.open({ config: { env: false, cwd: root } }),
      isLarderError('ERR_INVALID_OPTION', /larder\.config\.json: is not JSON/),
    )
    assert.equal(fs.existsSync(path.join(root, 'cache')), false, 'nothing was created')
  })

  test('null for any option (a group, a field of one) is refused naming the option and the file, as from a call: never a silent default or off', async () => {
    const root = tempDir('larder-config')
    const file = path.join(root, 'larder.config.json')
    const nulls: Array<[Record<string, unknown>, string]> = [
      [{ memory: null }, 'memory'],
      [{ defaultTtl: null }, 'defaultTtl'],
      [{ compression: null }, 'compression'],
      [{ shared: null }, 'shared'],
      [{ writeBack: null }, 'writeBack'],
      [{ maintenance: { interval: null } }, 'maintenance.interval'],
      [{ memory: { maxEntries: 5, ttl: null } }, 'memory.ttl'],
    ]
    for (const [options, field] of nulls) {
      fs.writeFileSync(file, JSON.stringify({ dir: 'cache', ...options }))
      await assert.rejects(Larder.open({ config: { env: false, cwd: root } }), (error: LarderError) => {
        assert.equal(error.code, 'ERR_INVALID_OPTION')
        assert.equal(error.field, field)
        assert.match(error.message, new RegExp(`larder\\.config\\.json: ${field}: .*got null`))
        return true
      })
      await assert.rejects(
        Larder.open({ dir: path.join(root, 'cache'), ...options }),
        isLarderError('ERR_INVALID_OPTION', /got null/),
        `from a call: ${field}`,
      )
    }
    assert.equal(fs.existsSync(path.join(root, 'cache')), false, 'nothing was created')
  })

  test('a JSON config file holding encryption keys that others can read is refused (ERR_UNSAFE_DIR), the key never shown; readable by its owner only, it is used', async () => {
    const root = tempDir('larder-config')
    const file = path.join(root, 'larder.config.json')
    const key = 'c'.repeat(64)
    fs.writeFileSync(file, JSON.stringify({ dir: 'cache', encryption: { keys: { k1: key }, activeKey: 'k1' } }))
    for (const [mode, who] of [
      [0o644, /readable by anyone \(mode 0644\)/],
      [0o640, /readable by its group \(mode 0640\)/],
    ] as const) {
      fs.chmodSync(file, mode)
      const error = await Larder.open({ config: { env: false, cwd: root } }).then(
        () => assert.fail('opened'),
        (e: unknown) => e,
      )
      assert.ok(error instanceof LarderError && error.code === 'ERR_UNSAFE_DIR' && error.field === 'config', String(error))
      assert.match(error.message, /larder\.config\.json: not used: it holds encryption keys/)
      assert.match(error.message, who)
      assert.ok(!error.message.includes(key), 'the key was shown')
    }
    assert.equal(fs.existsSync(path.join(root, 'cache')), false, 'nothing was created')
    fs.chmodSync(file, 0o600)
    const cache = await Larder.open({ config: { env: false, cwd: root } })
    try {
      assert.deepEqual(cache.options.encryption?.toJSON(), { keys: ['k1'], activeKey: 'k1' })
    } finally {
      await cache.close()
    }
    fs.writeFileSync(file, JSON.stringify({ dir: 'cache', memory: true }))
    fs.chmodSync(file, 0o644)
    await (await Larder.open({ config: { env: false, cwd: root } })).close() // no keys: readable is fine
  })

  test('a profile that is not one of the three is refused, naming its source', async () => {
    await assert.rejects(
      layerOptions({ config: { env: { LARDER_PROFILE: 'staging' }, file: false } }),
      isLarderError('ERR_INVALID_OPTION', /^LARDER_PROFILE="staging": .*development, production, test/),
    )
    // @ts-expect-error a wrong name in the call
    await assert.rejects(Larder.open({ profile: 'prod' }), isLarderError('ERR_INVALID_OPTION', /^Invalid option "profile"/))
    // NODE_ENV is only a fallback: a value that is not a profile's name means no profile.
    assert.equal((await layerOptions({ config: { env: { NODE_ENV: 'staging' }, file: false } })).profile, undefined)
    assert.equal((await layerOptions({ config: { env: { NODE_ENV: 'production' }, file: false } })).profile, 'production')
    assert.equal(
      (await layerOptions({ config: { env: { NODE_ENV: 'production', LARDER_PROFILE: 'development' }, file: false } })).profile,
      'development',
    )
  })

  test('precedence: call > environment > file > profile > default, for every combination of sources', async () => {
    const root = tempDir('larder-config')
    // durable: production's profile says true; the sources alternate, so each winner shows.
    const values = { call: false, env: true, file: false } as const
    for (let mask = 0; mask < 16; mask++) {
      const has = { call: (mask & 1) !== 0, env: (mask & 2) !== 0, file: (mask & 4) !== 0, profile: (mask & 8) !== 0 }
      const cwd = fs.mkdtempSync(path.join(root, 'case-'))
      if (has.file) fs.writeFileSync(path.join(cwd, 'larder.config.json'), JSON.stringify({ durable: values.file }))
      const env: Record<string, string> = has.env ? { LARDER_DURABLE: String(values.env) } : {}
      if (has.profile) env.LARDER_PROFILE = 'production'
      const layered = await layerOptions({
        dir: path.join(cwd, 'cache'),
        ...(has.call ? { durable: values.call } : {}),
        config: { env, cwd },
      })
      const [winner, value] = has.call
        ? ['call', values.call]
        : has.env
          ? ['env:LARDER_DURABLE', values.env]
          : has.file
            ? [`file:${path.join(cwd, 'larder.config.json')}`, values.file]
            : has.profile
              ? ['profile:production', true]
              : ['default', false]
      assert.equal(layered.resolved.durable, value, `case ${JSON.stringify(has)}`)
      assert.equal(layered.sources.durable, winner, `case ${JSON.stringify(has)}`)
    }
  })

  test('groups merge field by field across sources, and a group switched off stays off', async () => {
    const root = tempDir('larder-config')
    fs.writeFileSync(path.join(root, 'larder.config.json'), JSON.stringify({ memory: { maxEntries: 50, ttl: '1m' } }))
    const merged = await layerOptions({
      dir: path.join(root, 'c'),
      memory: { maxSize: '1MB' },
      config: { env: { LARDER_MEMORY_TTL: '5s' }, cwd: root },
    })
    assert.deepEqual(merged.resolved.memory, { maxEntries: 50, maxSize: 1_000_000, ttl: 5000 })
    assert.equal(merged.sources['memory.maxEntries'], `file:${path.join(root, 'larder.config.json')}`)
    assert.equal(merged.sources['memory.maxSize'], 'call')
    assert.equal(merged.sources['memory.ttl'], 'env:LARDER_MEMORY_TTL')
    const off = await layerOptions({
      dir: path.join(root, 'c'),
      memory: false,
      config: { env: { LARDER_MEMORY_MAX_ENTRIES: '5' }, cwd: root },
    })
    assert.equal(off.resolved.memory, false)
  })

  test('without config, Larder.open reads neither the environment nor a config file', async () => {
    const root = tempDir('larder-config')
    fs.writeFileSync(path.join(root, 'larder.config.json'), JSON.stringify({ defaultTtl: '1h' }))
    const saved = process.env.LARDER_MAX_SIZE
    process.env.LARDER_MAX_SIZE = '1GB'
    try {
      const plain = await layerOptions({ dir: path.join(root, 'c') })
      assert.equal(plain.resolved.maxSize, undefined)
      assert.equal(plain.sources.maxSize, 'default')
      const opted = await layerOptions({ dir: path.join(root, 'c'), config: { cwd: root } })
      assert.equal(opted.resolved.maxSize, 1_000_000_000)
      assert.equal(opted.sources.maxSize, 'env:LARDER_MAX_SIZE')
      assert.equal(opted.resolved.defaultTtl, 3_600_000)
    } finally {
      if (saved === undefined) delete process.env.LARDER_MAX_SIZE
      else process.env.LARDER_MAX_SIZE = saved
    }
  })
})

describe('configuration: the config file', () => {
  test('is found by walking up from the working directory; the nearest wins; a relative dir is the file’s', async () => {
    const root = tempDir('larder-config')
    const deep = path.join(root, 'a', 'b', 'c')
    fs.mkdirSync(deep, { recursive: true })
    fs.writeFileSync(path.join(root, 'larder.config.json'), JSON.stringify({ dir: 'outer-cache', defaultTtl: '1h' }))
    const found = await layerOptions({ config: { env: false, cwd: deep } })
    assert.equal(found.configFile, path.join(root, 'larder.config.json'))
    assert.equal(found.resolved.dir, path.join(root, 'outer-cache'))
    fs.writeFileSync(path.join(root, 'a', 'larder.config.json'), JSON.stringify({ defaultTtl: '2h' }))
    const nearer = await layerOptions({ dir: path.join(root, 'x'), config: { env: false, cwd: deep } })
    assert.equal(nearer.configFile, path.join(root, 'a', 'larder.config.json'))
    assert.equal(nearer.resolved.defaultTtl, 7_200_000, 'files do not merge: the first found wins')
  })

  test('a JSON config file that begins with a byte order mark (as Windows editors save it) is read', async () => {
    const root = tempDir('larder-config')
    const file = path.join(root, 'larder.config.json')
    fs.writeFileSync(file, '\uFEFF' + JSON.stringify({ dir: 'cache', defaultTtl: '1h' }))
    const found = await layerOptions({ config: { env: false, cwd: root } })
    assert.equal(found.resolved.dir, path.join(root, 'cache'))
    assert.equal(found.resolved.defaultTtl, 3_600_000)
    assert.equal(found.sources.defaultTtl, `file:${file}`)
  })

  test('both larder.config.json and larder.config.mjs in one directory are refused', async () => {
    const root = tempDir('larder-config')
    fs.writeFileSync(path.join(root, 'larder.config.json'), '{}')
    fs.writeFileSync(path.join(root, 'larder.config.mjs'), 'export default {}')
    await assert.rejects(layerOptions({ config: { env: false, cwd: root } }), isLarderError('ERR_INVALID_OPTION', /are both in/))
  })

  test('a config file found by searching up is not used (ERR_UNSAFE_DIR) when another user owns it or anyone may write it or its directory; its code does not run', async () => {
    const root = tempDir('larder-config')
    const ran = path.join(root, 'ran')
    const plant = (dir: string, uid = 0, mode = 0o644): void => {
      fs.mkdirSync(dir, { recursive: true })
      const file = path.join(dir, 'larder.config.mjs')
      fs.writeFileSync(file, `import fs from 'node:fs'\nfs.writeFileSync(${JSON.stringify(ran)}, 'x')\nexport default {}`)
      fs.chmodSync(file, mode)
      if (process.getuid?.() === 0) fs.chownSync(file, uid, uid)
    }
    const refused = async (cwd: string, why: RegExp): Promise<void> => {
      await assert.rejects(layerOptions({ config: { env: false, cwd } }), isLarderError('ERR_UNSAFE_DIR', why))
      assert.ok(!fs.existsSync(ran), 'the planted code ran')
    }
    if (process.getuid?.() === 0) {
      plant(path.join(root, 'by-nobody'), 65534)
      await refused(path.join(root, 'by-nobody', 'deeper'), /owned by uid 65534/)
    }
    plant(path.join(root, 'anyone-writes'), 0, 0o666)
    await refused(path.join(root, 'anyone-writes'), /writable by anyone/)
    const open = path.join(root, 'open-dir')
    plant(open)
    fs.chmodSync(open, 0o777)
    await refused(open, /its directory is writable by anyone/)
    // A sticky directory (as /tmp) with a file of one's own, and a group-writable file: used.
    const sticky = path.join(root, 'sticky')
    plant(sticky, process.getuid?.() ?? 0, 0o664)
    fs.chmodSync(sticky, 0o1777)
    assert.equal((await layerOptions({ config: { env: false, cwd: sticky } })).configFile, path.join(sticky, 'larder.config.mjs'))
    assert.ok(fs.existsSync(ran))
  })

  test('a Redis URL whose database is not a number, or whose password does not percent-decode, is ERR_INVALID_OPTION naming redis.url', async () => {
    for (const url of ['redis://127.0.0.1:6379/abc', 'redis://:w%rd@127.0.0.1:6379', 'redis://us%zzer:pw@127.0.0.1:6379/2']) {
      await assert.rejects(Larder.open({ dir: false, redis: url }), (error: unknown) => {
        assert.ok(error instanceof LarderError && error.code === 'ERR_INVALID_OPTION', String(error))
        assert.equal(error.field, 'redis.url')
        assert.ok(!error.message.includes('w%rd') && !error.message.includes(':pw'), error.message)
        return true
      })
    }
  })

  test('redis.cluster seeds with a port out of range are ERR_INVALID_OPTION naming redis.cluster', async () => {
    for (const cluster of [['127.0.0.1:99999'], [{ host: '127.0.0.1', port: 0 }], [' '], [{ host: '', port: 7000 }]]) {
      await assert.rejects(Larder.open({ dir: false, redis: { cluster } }), (error: unknown) => {
        assert.ok(error instanceof LarderError && error.code === 'ERR_INVALID_OPTION' && error.field === 'redis.cluster', String(error))
        return true
      })
    }
  })

  test('a mistake inside `config` names its field (config.evn, config.file)', async () => {
    for (const [config, field] of [
      [{ evn: true }, 'config.evn'],
      [{ file: 3 }, 'config.file'],
      [{ cwd: '' }, 'config.cwd'],
      [{ env: 'yes' }, 'config.env'],
      [{ env: { LARDER_MAX_SIZE: 5 } }, 'config.env.LARDER_MAX_SIZE'],
      [{ env: { LARDER_PROFILE: 7 } }, 'config.env.LARDER_PROFILE'],
      [{ env: { LARDER_DURABLE: true } }, 'config.env.LARDER_DURABLE'],
      ['yes', 'config'],
    ] as const) {
      await assert.rejects(Larder.open({ dir: false, config: config as never }), (error: unknown) => {
        assert.ok(error instanceof LarderError && error.code === 'ERR_INVALID_OPTION', String(error))
        assert.equal(error.field, field)
        assert.match(error.message, new RegExp(`"${field.replaceAll('.', '\\.')}"`))
        return true
      })
    }
  })

  test('optionSources names the source that turned a group off for its fields, not a source below it', async () => {
    const root = tempDir('larder-config')
    fs.writeFileSync(path.join(root, 'larder.config.json'), JSON.stringify({ maintenance: { interval: '5m' } }), { mode: 0o600 })
    const cache = await Larder.open({ dir: path.join(root, 'cache'), config: { env: { LARDER_MAINTENANCE: 'false' }, cwd: root } })
    try {
      assert.equal(cache.options.maintenance.interval, 3_600_000, "the default: the file's interval is not in force")
      assert.equal(cache.optionSources.maintenance, 'env:LARDER_MAINTENANCE')
      assert.equal(cache.optionSources['maintenance.interval'], 'env:LARDER_MAINTENANCE')
    } finally {
      await cache.close()
    }
    // A field's own variable beside its group's off is not in force either: not named.
    const both = await layerOptions({
      dir: path.join(root, 'cache'),
      config: { env: { LARDER_MAINTENANCE: 'false', LARDER_MAINTENANCE_INTERVAL: '5m' }, file: false },
    })
    assert.equal(both.resolved.maintenance.interval, 3_600_000)
    assert.equal(both.sources['maintenance.interval'], 'env:LARDER_MAINTENANCE')
    const kept = await Larder.open({ dir: path.join(root, 'cache'), config: { env: { LARDER_MAINTENANCE: 'true' }, cwd: root } })
    try {
      assert.equal(kept.options.maintenance.interval, 300_000, 'true keeps the fields below')
      assert.equal(kept.optionSources['maintenance.interval'], `file:${path.join(root, 'larder.config.json')}`)
    } finally {
      await kept.close()
    }
  })

  test('larder.config.mjs may export a function, and carry what JSON cannot (a custom serializer)', async () => {
    const root = tempDir('larder-config')
    fs.writeFileSync(
      path.join(root, 'larder.config.mjs'),
      `export default async () => ({
        dir: 'cache',
        serializer: {
          serialize: (value) => 'upper:' + String(value).toUpperCase(),
          deserialize: (bytes) => bytes.toString().slice('upper:'.length),
        },
      })\n`,
    )
    const cache = await Larder.open({ config: { env: false, cwd: root } })
    try {
      await cache.set('k', 'shout')
      assert.equal(await cache.get('k'), 'SHOUT')
      assert.equal(cache.dir, path.join(root, 'cache'))
      assert.equal(cache.optionSources.serializer, `file:${path.join(root, 'larder.config.mjs')}`)
    } finally {
      await cache.close()
    }
  })

  test('a larder.config.mjs whose exported function throws is ERR_INVALID_OPTION naming the file', async () => {
    const root = tempDir('larder-config')
    fs.writeFileSync(path.join(root, 'larder.config.mjs'), `export default async () => { throw new Error('no secrets here') }\n`)
    await assert.rejects(
      Larder.open({ config: { env: false, cwd: root } }),
      isLarderError('ERR_INVALID_OPTION', /larder\.config\.mjs: its default export threw: no secrets here/),
    )
  })
})

describe('configuration: profiles', () => {
  test('test: a fresh temp dir, removed at close; no maintenance timer; a memory tier without its own ttl', async () => {
    const a = await Larder.open({ profile: 'test' })
    const b = await Larder.open({ profile: 'test' })
    const dir = a.dir as string
    try {
      assert.ok(dir.startsWith(os.tmpdir()), dir)
      assert.notEqual(dir, b.dir, 'each cache its own directory')
      assert.equal(a.options.maintenance.auto, false)
      assert.deepEqual(a.options.memory, { maxEntries: 10_000, maxSize: undefined, ttl: 0 })
      assert.equal(a.optionSources.dir, 'profile:test')
      await a.set('k', 1)
      assert.equal(await b.get('k'), undefined)
      assert.ok(fs.existsSync(dir))
    } finally {
      await a.close()
      await b.close()
    }
    assert.equal(fs.existsSync(dir), false, 'removed at close')
    // A dir given explicitly is the caller's: kept.
    const own = tempDir('larder-config')
    const c = await Larder.open({ profile: 'test', dir: own })
    await c.set('k', 1)
    await c.close()
    assert.ok(fs.existsSync(own))
  })

  test('production: durable writes, the memory tier and maintenance on; explicit options override it', async () => {
    const dir = tempDir('larder-config')
    const cache = await Larder.open({ profile: 'production', dir, memory: { maxEntries: 7 } })
    try {
      assert.equal(cache.options.durable, true)
      assert.equal(cache.options.maintenance.auto, true)
      assert.equal(cache.options.memory && cache.options.memory.maxEntries, 7)
      assert.equal(cache.optionSources.durable, 'profile:production')
      assert.equal(cache.optionSources['memory.maxEntries'], 'call')
    } finally {
      await cache.close()
    }
  })

  test('development: the defaults, unchanged', async () => {
    const dir = tempDir('larder-config')
    const layered = await layerOptions({ profile: 'development', dir })
    assert.deepEqual(layered.resolved, resolveOptions({ dir }))
  })
})
