import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { inspect } from 'node:util'
import { describe, test } from 'node:test'
import { Larder, LarderError } from '../src/index.ts'
import { keysFromEnv } from '../src/crypto/keys.ts'
import { entryFiles, tempDir } from './helpers.ts'
import { A_THEN_B, corruptEvents, edit, KEY_A, KEY_B, layout, ONLY_A, ONLY_B, open, readAll } from './encryption-helpers.ts'

const MiB = 1024 * 1024
const SECRET = 'plain-text-marker-that-must-not-reach-the-disk'

describe('encryption: keys and options', () => {
  test('keys are accepted as bytes, hex and base64; cache.options and inspect show only the key ids', async () => {
    const dir = tempDir()
    const cache = await open(dir, {
      encryption: { keys: { raw: KEY_A, hex: KEY_B.toString('hex'), b64: KEY_A.toString('base64') }, activeKey: 'hex' },
    })
    const shown = [inspect(cache.options, { depth: 9 }), JSON.stringify(cache.options), inspect(cache.options.encryption)]
    for (const text of shown) {
      for (const key of [KEY_A, KEY_B]) {
        assert.ok(!text.includes(key.toString('hex')) && !text.includes(key.toString('base64')), 'no key material')
      }
    }
    assert.deepEqual(JSON.parse(JSON.stringify(cache.options.encryption)), { keys: ['raw', 'hex', 'b64'], activeKey: 'hex' })
    await cache.set('k', 1)
    assert.equal(await cache.get('k'), 1)
    await cache.close()
  })

  test('a bad key, key id or activeKey is ERR_INVALID_OPTION naming the field, never printing the key', async () => {
    const dir = tempDir()
    const short = KEY_A.subarray(0, 31)
    const cases: Array<[unknown, string]> = [
      [{ keys: { a: short }, activeKey: 'a' }, 'encryption.keys.a'],
      [{ keys: { a: short.toString('hex') }, activeKey: 'a' }, 'encryption.keys.a'],
      [{ keys: { a: KEY_A.toString('base64') + 'AA' }, activeKey: 'a' }, 'encryption.keys.a'],
      [{ keys: { a: KEY_A }, activeKey: 'b' }, 'encryption.activeKey'],
      [{ keys: {}, activeKey: 'a' }, 'encryption.keys'],
      [{ keys: { 'a:b': KEY_A }, activeKey: 'a:b' }, 'encryption.keys'],
      [{ keys: { a: KEY_A }, activeKey: 'a', extra: 1 }, 'encryption.extra'],
      ['secret', 'encryption'],
      // A key written where its id belongs (id and key swapped): refused before any message or
      // field name (`encryption.keys.<id>`) could show it, hex or base64url.
      [{ keys: { [KEY_A.toString('hex')]: 'k1' }, activeKey: 'k1' }, 'encryption.keys'],
      [{ keys: { [KEY_A.toString('base64url')]: 'k1' }, activeKey: 'k1' }, 'encryption.keys'],
    ]
    for (const [encryption, field] of cases) {
      await assert.rejects(
        Larder.open({ dir, encryption } as never),
        (error: LarderError) => {
          assert.equal(error.code, 'ERR_INVALID_OPTION')
          assert.equal(error.field, field)
          for (const leak of [KEY_A.toString('hex'), short.toString('hex'), KEY_A.toString('base64'), KEY_A.toString('base64url')])
            assert.ok(!error.message.includes(leak))
          return true
        },
        field,
      )
    }
    assert.deepEqual(entryFiles(dir), [], 'nothing written')
  })

  test('a key pasted where an option name belongs (the keys level left out, or at the top of a config file) is refused without being shown', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'larder.config.json')
    const leaks = [KEY_A.toString('hex'), KEY_A.toString('base64'), KEY_A.toString('base64url')]
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ['call, encryption: { [key]: id }', () => Larder.open({ dir, encryption: { [KEY_A.toString('hex')]: 'k1' } } as never), 'encryption'],
      ['call, top level', () => Larder.open({ dir, [KEY_A.toString('base64')]: 'k1' }), 'options'],
      [
        'file, encryption: { [key]: id }',
        () => {
          fs.writeFileSync(
            file,
            JSON.stringify({ encryption: { keys: { k1: KEY_B.toString('hex') }, [KEY_A.toString('base64')]: 'k1' } }),
            { mode: 0o600 },
          )
          return Larder.open({ dir, config: { env: false, file } })
        },
        'encryption',
      ],
      [
        'file, top level',
        () => {
          fs.writeFileSync(file, JSON.stringify({ [KEY_A.toString('base64url')]: 'k1' }), { mode: 0o600 })
          return Larder.open({ dir, config: { env: false, file } })
        },
        'options',
      ],
    ]
    for (const [label, opening, field] of cases) {
      await assert.rejects(
        opening(),
        (error: LarderError) => {
          assert.equal(error.code, 'ERR_INVALID_OPTION')
          assert.equal(error.field, field)
          if (label.startsWith('file')) assert.match(error.message, /larder\.config\.json: /, 'names its source')
          const shown = [error.message, error.field, inspect(error, { depth: 9 }), JSON.stringify(error)].join('\n')
          for (const leak of leaks) assert.ok(!shown.includes(leak), `${label}: the key is not shown`)
          return true
        },
        label,
      )
    }
    const cache = await Larder.open({ dir: path.join(dir, 'c'), encryption: { keys: { k1: KEY_B } } })
    await assert.rejects(cache.configure({ encryption: { keys: { k1: KEY_B }, [KEY_A.toString('hex')]: 'k1' } }), (error: LarderError) => {
      assert.equal(error.field, 'encryption')
      for (const leak of leaks) assert.ok(!error.message.includes(leak), 'configure(): the key is not shown')
      return true
    })
    await cache.close()
  })

  test('one key needs no activeKey (it is the active one); with several, leaving it out is refused as required, not as a wrong id', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, encryption: { keys: { only: KEY_A } } })
    assert.equal(cache.options.encryption?.activeKey, 'only')
    await cache.set('k', 'sealed')
    await cache.close()
    const reader = await Larder.open({ dir, encryption: { keys: { only: KEY_A }, activeKey: 'only' } })
    assert.equal(await reader.get('k'), 'sealed')
    await reader.close()
    const plain = await Larder.open({ dir })
    assert.equal(await plain.get('k'), undefined, 'sealed: a reader without the key misses')
    await plain.close()
    await assert.rejects(
      Larder.open({ dir: tempDir(), encryption: { keys: { a: KEY_A, b: KEY_B } } }),
      (error: LarderError) =>
        error.code === 'ERR_INVALID_OPTION' &&
        error.field === 'encryption.activeKey' &&
        /required with more than one key: one of the key ids \(a, b\)/.test(error.message),
    )
  })

  test('LARDER_ENCRYPTION_KEYS is parsed (first id active unless LARDER_ENCRYPTION_ACTIVE_KEY), bad input names the variable', () => {
    const a = KEY_A.toString('base64')
    const b = KEY_B.toString('hex')
    assert.equal(keysFromEnv({}), undefined)
    assert.deepEqual(keysFromEnv({ LARDER_ENCRYPTION_KEYS: `a:${a}, b:${b}` }), { keys: { a, b }, activeKey: 'a' })
    assert.deepEqual(keysFromEnv({ LARDER_ENCRYPTION_KEYS: `a:${a},b:${b}`, LARDER_ENCRYPTION_ACTIVE_KEY: 'b' }), {
      keys: { a, b },
      activeKey: 'b',
    })
    const bad: Array<[NodeJS.ProcessEnv, string]> = [
      [{ LARDER_ENCRYPTION_KEYS: a }, 'LARDER_ENCRYPTION_KEYS'],
      [{ LARDER_ENCRYPTION_KEYS: `a:${a.slice(4)}` }, 'LARDER_ENCRYPTION_KEYS (key a)'],
      [{ LARDER_ENCRYPTION_KEYS: `a:${a},a:${b}` }, 'LARDER_ENCRYPTION_KEYS'],
      [{ LARDER_ENCRYPTION_KEYS: `a:${a}`, LARDER_ENCRYPTION_ACTIVE_KEY: 'c' }, 'LARDER_ENCRYPTION_ACTIVE_KEY'],
      [{ LARDER_ENCRYPTION_KEYS: `${b}:k1` }, 'LARDER_ENCRYPTION_KEYS'], // swapped: the key first
      [{ LARDER_ENCRYPTION_KEYS: `${KEY_A.toString('base64url')}:k1,${b}:k2` }, 'LARDER_ENCRYPTION_KEYS'],
    ]
    for (const [env, field] of bad) {
      assert.throws(
        () => keysFromEnv(env),
        (error: LarderError) =>
          error.code === 'ERR_INVALID_OPTION' &&
          error.field === field &&
          !error.message.includes(a.slice(4, 30)) &&
          !error.message.includes(b.slice(4, 30)) &&
          !error.message.includes(KEY_A.toString('base64url').slice(4, 30)),
      )
    }
  })
})

describe('encryption: round trips', () => {
  for (const serializer of ['json', 'v8', 'msgpack', 'raw'] as const) {
    test(`${serializer} values round trip, and the file holds no plain text`, async () => {
      const dir = tempDir()
      const cache = await open(dir, { serializer, encryption: ONLY_A, compression: 'none' })
      const value = serializer === 'raw' ? `${SECRET} ${'x'.repeat(100)}` : { note: SECRET, n: [1, 2, 3] }
      await cache.set('k', value)
      assert.deepEqual(await cache.get('k'), value)
      const [file] = entryFiles(dir)
      const bytes = fs.readFileSync(file!)
      assert.equal(bytes[7]! & 2, 2, 'SEALED')
      assert.ok(!bytes.includes(SECRET), 'no plain text on disk')
      await cache.close()
    })
  }

  test('a value over 64 KiB (read through its handle) round trips with get and getStream, compressed first', async () => {
    const dir = tempDir()
    const cache = await open(dir, { encryption: ONLY_A })
    const value = (SECRET + '\n').repeat(20_000)
    await cache.set('big', value)
    const [file] = entryFiles(dir)
    assert.ok(fs.statSync(file!).size > 64 * 1024 || fs.statSync(file!).size < value.length / 4, 'compressed before sealing')
    assert.ok((await cache.get('big')) === value)
    assert.ok(JSON.parse((await readAll(await cache.getStream('big')))!.toString()) === value, 'getStream: the serialized bytes')
    const raw = await open(dir, { encryption: ONLY_A, compression: 'none' })
    await raw.set('plain-big', value)
    assert.ok((await raw.get('plain-big')) === value)
    assert.ok(JSON.parse((await readAll(await raw.getStream('plain-big')))!.toString()) === value, 'deciphered as it streams')
    await raw.close()
    await cache.close()
  })

  test('streams of several frames (compressible and random, with and without compression) and an empty stream round trip', async () => {
    const dir = tempDir()
    const random = crypto.randomBytes(2 * MiB + 4321)
    const text = Buffer.from((SECRET + ' line\n').repeat(60_000))
    for (const compression of ['gzip', 'none'] as const) {
      const cache = await open(dir, { encryption: ONLY_A, compression })
      for (const [name, bytes] of [
        ['random', random],
        ['text', text],
        ['empty', Buffer.alloc(0)],
      ] as const) {
        await cache.setStream(name, [bytes.subarray(0, 1000), bytes.subarray(1000)])
        assert.ok((await readAll(await cache.getStream(name)))?.equals(bytes), `${compression} ${name} by getStream`)
        assert.ok(((await cache.get(name)) as Buffer | undefined)?.equals(bytes), `${compression} ${name} by get`)
      }
      for (const file of entryFiles(dir)) assert.ok(!fs.readFileSync(file).includes(SECRET))
      assert.equal((await cache.stats()).corrupt, 0)
      await cache.close()
    }
  })
})

describe('encryption: tampering (entries edited and re-checksummed by someone who can write the directory)', () => {
  async function sealedEntry(kind: 'value' | 'stream') {
    const dir = tempDir()
    const cache = await open(dir, { encryption: ONLY_A })
    if (kind === 'value') await cache.set('k', { note: SECRET }, { ttl: '1h', tags: ['t'] })
    else await cache.setStream('k', [crypto.randomBytes(3 * MiB + 17)], { ttl: '1h' })
    await cache.set('other', 'another value')
    // The entry whose header holds the key 'k' (length at 24, the key at 64): searching the
    // bytes for 'k\0' also matched the other entry when a time in its header held those bytes.
    const file = entryFiles(dir).find((f) => {
      const head = fs.readFileSync(f).subarray(0, 65)
      return head.readUInt32LE(24) === 1 && head.subarray(64, 65).toString() === 'k'
    })!
    return { dir, cache, file }
  }

  async function expectKeyMiss(cache: Larder, file: string, read: () => Promise<unknown>, expected = 'key:authentication failed') {
    const events = corruptEvents(cache)
    assert.equal(await read(), undefined)
    assert.deepEqual(events, [expected])
    await new Promise((r) => setImmediate(r))
    assert.equal(fs.existsSync(file), false, 'an entry failing authentication under a key we hold is removed')
  }

  test('a flipped ciphertext bit', async () => {
    const { cache, file } = await sealedEntry('value')
    edit(file, (b) => void (b[layout(b).payloadOffset + 1]! ^= 4))
    await expectKeyMiss(cache, file, () => cache.get('k'))
    await cache.close()
  })

  test('a sealed entry made into an unsealed one (flag cleared, key id and nonce zeroed, lengths fixed), or one planted unsealed', async () => {
    const { dir, cache, file } = await sealedEntry('value')
    edit(file, (b) => {
      b[7] = b[7]! & ~2 // the SEALED flag
      b.fill(0, 40, 64)
      b.writeBigUInt64LE(b.readBigUInt64LE(b.length - 32), b.length - 24) // logical = stored
    })
    await expectKeyMiss(cache, file, () => cache.get('k'), 'key:not sealed')
    const planter = await open(dir) // no keys: writes unsealed entries, as an intruder could
    await planter.set('planted', 'a forged value')
    await planter.close()
    const events = corruptEvents(cache)
    assert.equal(await cache.get('planted'), undefined, 'a cache with keys serves no unsealed entry')
    assert.equal(await cache.has('planted'), false)
    assert.deepEqual(events, ['key:not sealed'])
    await cache.close()
  })

  test('a swapped (changed) nonce', async () => {
    const { cache, file } = await sealedEntry('value')
    edit(file, (b) => void (b[layout(b).nonceAt + 3]! ^= 1))
    await expectKeyMiss(cache, file, () => cache.get('k'))
    await cache.close()
  })

  test('a header edited: a later expiry, then tags removed', async () => {
    for (const change of [(b: Buffer) => b.writeDoubleLE(b.readDoubleLE(16) + 3_600_000, 16), (b: Buffer) => b.writeDoubleLE(0, 16)]) {
      const { cache, file } = await sealedEntry('value')
      edit(file, (b) => void change(b))
      await expectKeyMiss(cache, file, () => cache.get('k'))
      await cache.close()
    }
  })

  test("an entry moved under another key's name, its key edited to match", async () => {
    const { cache, file, dir } = await sealedEntry('value')
    const other = entryFiles(dir).find((f) => f !== file)!
    // 'k' → 'o' is not enough (another length): rebuild the head with the other key.
    const bytes = fs.readFileSync(file)
    const { payloadOffset } = layout(bytes)
    const tags = bytes.subarray(64 + 1, payloadOffset)
    const head = Buffer.concat([bytes.subarray(0, 64), Buffer.from('other'), tags])
    head.writeUInt32LE(5, 24)
    fs.writeFileSync(other, Buffer.concat([head, bytes.subarray(payloadOffset)]))
    edit(other, () => {})
    await expectKeyMiss(cache, other, () => cache.get('other'))
    await cache.close()
  })

  test('a grace added to the trailer', async () => {
    const { cache, file } = await sealedEntry('value')
    edit(file, (b) => void b.writeUInt32LE(3600, b.length - 12))
    await expectKeyMiss(cache, file, () => cache.get('k'))
    await cache.close()
  })

  test('a large value written by set() (one sealed box) read with getStream, a ciphertext bit flipped: no byte is handed out', async () => {
    const dir = tempDir()
    const cache = await open(dir, { encryption: ONLY_A, serializer: 'raw', compression: 'none' })
    const value = crypto.randomBytes(3 * MiB)
    await cache.set('big', value)
    assert.ok((await readAll(await cache.getStream('big')))!.equals(value), 'intact, it streams whole')
    const [file] = entryFiles(dir)
    edit(file!, (b) => void (b[layout(b).payloadOffset + 100]! ^= 0x01))
    let handedOut = 0
    await assert.rejects(
      (async () => {
        for await (const chunk of (await cache.getStream('big'))!) handedOut += (chunk as Buffer).length
      })(),
      (error: LarderError) => error.code === 'ERR_CORRUPT',
    )
    assert.equal(handedOut, 0, 'the tag is checked before the first byte')
    await cache.close()
  })

  test('stream frames reordered, truncated (trailer lengths fixed) and one frame flipped: never a wrong byte', async () => {
    for (const damage of ['swap', 'truncate', 'flip'] as const) {
      const { cache, file } = await sealedEntry('stream')
      const bytes = fs.readFileSync(file)
      const { payloadOffset, payloadEnd } = layout(bytes)
      const frames: Buffer[] = []
      for (let at = payloadOffset; at < payloadEnd;) {
        const end = at + 8 + bytes.readUInt32LE(at + 4)
        frames.push(bytes.subarray(at, end))
        at = end
      }
      assert.equal(frames.length, 4)
      let body: Buffer[] = frames
      if (damage === 'swap') body = [frames[1]!, frames[0]!, frames[2]!, frames[3]!]
      if (damage === 'truncate') body = frames.slice(0, 3)
      if (damage === 'flip') {
        // One ciphertext bit inverted (a byte set to a fixed value is already that value once in 256 runs).
        const flipped = Buffer.from(frames[1]!)
        flipped[100] = flipped[100]! ^ 0x01
        body = [frames[0]!, flipped, frames[2]!, frames[3]!]
      }
      const payload = Buffer.concat(body)
      const trailer = Buffer.from(bytes.subarray(payloadEnd))
      trailer.writeBigUInt64LE(BigInt(payload.length), 0)
      const logical = body.reduce((sum, f) => sum + (f.readUInt32LE(0) & 0x7fffffff), 0)
      trailer.writeBigUInt64LE(BigInt(logical), 8)
      fs.writeFileSync(file, Buffer.concat([bytes.subarray(0, payloadOffset), payload, trailer]))
      edit(file, () => {})
      const stream = await cache.getStream('k')
      await assert.rejects(readAll(stream), (error: LarderError) => error.code === 'ERR_CORRUPT', damage)
      await new Promise((r) => setImmediate(r))
      assert.equal(fs.existsSync(file), false, `${damage}: removed`)
      await cache.close()
    }
  })

  test('with verifyFirst, a sealed entry edited and re-checksummed is a miss, removed and counted: no byte of it is handed out', async () => {
    // The checksum is no secret: only the tags tell such an entry, and the stream handed out
    // every frame before the edited one (3 MiB here) before it failed.
    for (const kind of ['stream', 'value'] as const) {
      const { cache, file } = await sealedEntry('stream')
      if (kind === 'value') await cache.set('k', crypto.randomBytes(3 * MiB), { tags: ['t'] })
      const bytes = fs.readFileSync(file)
      edit(file, (b) => void (b[layout(bytes).payloadEnd - 100]! ^= 0x01))
      await expectKeyMiss(cache, file, () => cache.getStream('k', { verifyFirst: true }))
      assert.equal((await cache.stats()).corrupt, 1, kind)
      await cache.close()
    }
  })

  test('a sealed entry whose trailer was edited to claim more than maxValueSize (re-checksummed) is a corrupt miss for get, not ERR_TOO_LARGE at every read', async () => {
    const dir = tempDir()
    const cache = await open(dir, { encryption: ONLY_A, maxValueSize: '4MiB' })
    await cache.setStream('k', [crypto.randomBytes(3 * MiB)])
    const [file] = entryFiles(dir)
    edit(file!, (b) => void b.writeBigUInt64LE(BigInt(5 * MiB), b.length - 24))
    await expectKeyMiss(cache, file!, () => cache.get('k'))
    await cache.close()
  })
})

describe('encryption: keys missing, rotation and namespaces', () => {
  test('an entry whose key is not listed is a counted miss (reason key) that stays on disk, and reads again with the key', async () => {
    const dir = tempDir()
    const writer = await open(dir, { encryption: ONLY_A })
    await writer.set('k', 'sealed under a')
    await writer.setStream('s', [Buffer.from('streamed under a')])
    await writer.close()
    for (const options of [{ encryption: ONLY_B }, {}]) {
      const reader = await open(dir, options)
      const events = corruptEvents(reader)
      assert.equal(await reader.get('k'), undefined)
      assert.equal(await reader.getStream('s'), undefined)
      assert.equal(await reader.has('k'), false)
      assert.deepEqual(events, ['key:missing key', 'key:missing key', 'key:missing key'])
      assert.equal((await reader.stats()).corrupt, 3)
      await reader.close()
    }
    assert.equal(entryFiles(dir).length, 2, 'both entries stay')
    const rotated = await open(dir, { encryption: A_THEN_B })
    assert.equal(await rotated.get('k'), 'sealed under a')
    assert.equal((await readAll(await rotated.getStream('s')))?.toString(), 'streamed under a')
    await rotated.close()
  })

  test('a large entry whose key fingerprint took a flipped bit (not re-checksummed) is a damaged entry, removed: not one sealed under a key we lack', async () => {
    const dir = tempDir()
    const cache = await open(dir, { encryption: ONLY_A })
    const value = crypto.randomBytes(3 * MiB + 17) // over getStream's whole read: its head is judged first
    const reads: [string, () => Promise<unknown>][] = [
      ['get', () => cache.get('k')],
      ['getStream', () => cache.getStream('k')],
      ['has', () => cache.has('k')],
    ]
    for (const [name, read] of reads) {
      await cache.setStream('k', [value])
      const file = entryFiles(dir)[0]!
      const bytes = fs.readFileSync(file)
      bytes[layout(bytes).keyIdAt + 3]! ^= 0x10
      fs.writeFileSync(file, bytes)
      const events = corruptEvents(cache)
      assert.ok(!(await read()), `${name}: a miss`)
      assert.deepEqual(events, ['Corrupt cache entry: checksum mismatch'], name)
      assert.equal(fs.existsSync(file), false, `${name}: the damaged file is removed`)
      cache.removeAllListeners('corrupt')
    }
    assert.equal((await cache.stats()).corrupt, 3)
    await cache.setStream('k', [value])
    await cache.close()
    const other = await open(dir, { encryption: ONLY_B })
    assert.equal(await other.getStream('k'), undefined)
    assert.equal(entryFiles(dir).length, 1, 'an intact entry under a key this cache lacks stays')
    await other.close()
  })

  test('two keys under one id (a role name, mid-rotation): a reader holding the other key leaves the entry, which its writer still reads', async () => {
    const dir = tempDir()
    const writer = await open(dir, { encryption: { keys: { current: KEY_A }, activeKey: 'current' } })
    await writer.set('k', 'sealed under A, named current')
    const reader = await open(dir, { encryption: { keys: { current: KEY_B }, activeKey: 'current' } })
    const events = corruptEvents(reader)
    assert.equal(await reader.get('k'), undefined)
    assert.deepEqual(events, ['key:missing key'], 'not an authentication failure: not removed')
    assert.equal(entryFiles(dir).length, 1)
    assert.equal(await writer.get('k'), 'sealed under A, named current')
    await reader.close()
    await writer.close()
  })

  test('rotation: new writes use activeKey, entries of every listed key read', async () => {
    const dir = tempDir()
    const a = await open(dir, { encryption: ONLY_A })
    await a.set('old', 'old value')
    await a.close()
    const ab = await open(dir, { encryption: A_THEN_B })
    await ab.set('new', 'new value')
    assert.equal(await ab.get('old'), 'old value')
    assert.equal(await ab.get('new'), 'new value')
    await ab.close()
    const b = await open(dir, { encryption: ONLY_B })
    assert.equal(await b.get('new'), 'new value', 'written under b')
    assert.equal(await b.get('old'), undefined, 'still under a')
    await b.close()
  })

  test("an unencrypted entry copied from another namespace's directory is a corrupt miss, removed", async () => {
    const dir = tempDir()
    const one = await open(dir, { namespace: 'one' })
    await one.set('k', 'value of one')
    const two = await open(dir, { namespace: 'two' })
    await two.set('k', 'value of two')
    const oneFile = entryFiles(dir).find((f) => fs.readFileSync(f).includes('value of one'))!
    const twoFile = entryFiles(dir).find((f) => fs.readFileSync(f).includes('value of two'))!
    assert.equal(path.basename(oneFile), path.basename(twoFile), 'the same key, the same name in each namespace')
    fs.copyFileSync(oneFile, twoFile)
    const events = corruptEvents(two)
    assert.equal(await two.get('k'), undefined)
    assert.equal(events.length, 1)
    assert.match(events[0]!, /another namespace/)
    await one.close()
    await two.close()
  })

  test('verify and prune work without any key', async () => {
    const dir = tempDir()
    const cache = await open(dir, { encryption: ONLY_A })
    for (let i = 0; i < 20; i++) await cache.set(`k${i}`, `v${i}`)
    await cache.setStream('s', [crypto.randomBytes(MiB + 1)])
    await cache.close()
    const keyless = await open(dir)
    const report = await keyless.verify()
    assert.equal(report.corrupt, 0)
    assert.equal(report.scanned, 21)
    assert.equal(entryFiles(dir).length, 21)
    await keyless.close()
  })
})
