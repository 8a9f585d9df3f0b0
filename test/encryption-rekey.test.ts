import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { repoRoot, runBin } from './cli-runner.ts'
import { A_THEN_B, KEY_A, KEY_B, ONLY_A, ONLY_B, open } from './encryption-helpers.ts'
import { entryFiles, tempDir } from './helpers.ts'
import { runScript } from './children/shared.ts'

const MiB = 1024 * 1024
const BIN = path.join(repoRoot, 'dist', 'cli.js')
const KEYS_ENV = `a:${KEY_A.toString('base64')},b:${KEY_B.toString('hex')}`
const valueOf = (i: number) => ({ i, text: `value ${i}` })
/** File times come from a coarse clock (a few ms a tick): wait one out, so "before" is strict. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 20))

/** A cache of `n` small entries under key a, a streamed one under a, and two written unencrypted. */
async function mixedCache(n: number) {
  const dir = tempDir()
  const stream = crypto.randomBytes(2 * MiB + 99)
  const a = await open(dir, { encryption: ONLY_A })
  for (let i = 0; i < n; i++) await a.set(`k${i}`, valueOf(i), { tags: [`t${i % 3}`] })
  await a.setStream('stream', [stream])
  await a.close()
  const plain = await open(dir)
  await plain.set('plain', 'written before encryption')
  await plain.setStream('plain-stream', [stream])
  await plain.close()
  return { dir, stream, total: n + 3 }
}

async function expectAllUnder(dir: string, n: number, stream: Buffer, encryption = ONLY_B): Promise<void> {
  const cache = await open(dir, { encryption })
  for (let i = 0; i < n; i++) assert.deepEqual(await cache.get(`k${i}`), valueOf(i), `k${i}`)
  assert.ok(((await cache.get('stream')) as Buffer).equals(stream))
  assert.ok(((await cache.get('plain-stream')) as Buffer).equals(stream))
  assert.equal(await cache.get('plain'), 'written before encryption')
  assert.equal((await cache.stats()).corrupt, 0)
  await cache.close()
}

describe('rekey', () => {
  test('keeps the running totals right: the entries it rewrote count at their new lengths', async () => {
    const dir = tempDir()
    const plain = await open(dir)
    for (let i = 0; i < 200; i++) await plain.set(`k${i}`, valueOf(i))
    await plain.close()
    const onDisk = (): number => entryFiles(dir).reduce((sum, file) => sum + fs.statSync(file).size, 0)
    const before = onDisk()
    const cache = await open(dir, { encryption: ONLY_A })
    assert.equal((await cache.stats()).size, before)
    assert.equal((await cache.rekey({ sealPlain: true })).rekeyed, 200)
    const after = onDisk()
    assert.ok(after > before, 'sealed entries are longer')
    assert.equal((await cache.stats()).size, after, 'this instance')
    await cache.close()
    const next = await open(dir, { encryption: ONLY_A })
    assert.deepEqual([(await next.stats()).entries, (await next.stats()).size], [200, after], 'another instance')
    await next.close()
  })

  test('rewrites every entry under an old key under the active key, and those not sealed at all only with sealPlain: the old key can then go', async () => {
    const { dir, stream, total } = await mixedCache(40)
    const before = new Map(entryFiles(dir).map((f) => [f, fs.statSync(f).mtimeMs]))
    const cache = await open(dir, { encryption: A_THEN_B })
    const progress: number[] = []
    const report = await cache.rekey({ onProgress: (p) => progress.push(p.done) })
    assert.equal(report.scanned, total)
    assert.equal(report.rekeyed, total - 2)
    assert.equal(report.unsealed, 2, 'the two written before encryption are left (a cache with keys reads them as forgeries)')
    assert.equal(report.corrupt + report.changed + report.missingKey, 0)
    assert.ok(progress.length >= 2 && progress.at(-1)! > 0)
    const sealing = await cache.rekey({ sealPlain: true })
    assert.equal(sealing.rekeyed, 2)
    assert.equal(sealing.unsealed, 0)
    await assert.rejects(cache.rekey({ sealPlain: 'yes' as unknown as boolean }), { code: 'ERR_INVALID_VALUE', field: 'sealPlain' })
    for (const [file, mtime] of before) assert.ok(Math.abs(fs.statSync(file).mtimeMs - mtime) < 1, 'the LRU position (mtime) stays')
    const again = await cache.rekey()
    assert.equal(again.current, total)
    assert.equal(again.rekeyed, 0)
    await cache.close()
    await expectAllUnder(dir, 40, stream)
  })

  test('sealPlain seals a plain stream larger than maxValueSize (an artifact in a cache of small values), never counting it corrupt', async () => {
    const dir = tempDir()
    const artifact = crypto.randomBytes(3 * MiB + 5)
    const options = { compression: 'none', maxValueSize: '1MiB' } as const
    const plain = await open(dir, options)
    await plain.setStream('artifact', [artifact])
    await plain.close()
    const cache = await open(dir, { ...options, encryption: ONLY_A })
    const report = await cache.rekey({ sealPlain: true })
    assert.deepEqual([report.rekeyed, report.corrupt], [1, 0])
    const chunks: Buffer[] = []
    for await (const chunk of (await cache.getStream('artifact'))!) chunks.push(chunk as Buffer)
    assert.ok(Buffer.concat(chunks).equals(artifact))
    assert.equal((await cache.stats()).corrupt, 0)
    await cache.close()
  })

  test('two rekeys of one directory at once (two instances) take turns: no entry is lost', async () => {
    const dir = tempDir('larder-rekey-twice')
    const writer = await open(dir, { encryption: ONLY_A })
    const total = 1_000
    for (let i = 0; i < total; i++) await writer.set(`k${i}`, `value ${i}`)
    await writer.close()
    const [one, two] = await Promise.all([open(dir, { encryption: A_THEN_B }), open(dir, { encryption: A_THEN_B })])
    const [first, second] = await Promise.all([one.rekey(), two.rekey()])
    assert.equal(first.rekeyed + second.rekeyed, total, 'each entry rewritten once')
    assert.equal(first.current + second.current, total, 'and found current by the other')
    const values = await one.getMany(Array.from({ length: total }, (_, i) => `k${i}`))
    assert.equal(values.filter((value, i) => value === `value ${i}`).length, total)
    await Promise.all([one.close(), two.close()])
  })

  test('entries under a key not listed are left as they are and counted; rekey without keys is refused', async () => {
    const dir = tempDir()
    const a = await open(dir, { encryption: ONLY_A })
    await a.set('k', 'under a')
    await a.close()
    const b = await open(dir, { encryption: ONLY_B })
    const report = await b.rekey()
    assert.equal(report.missingKey, 1)
    await b.close()
    const keyless = await open(dir)
    await assert.rejects(keyless.rekey(), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_OPTION')
    await keyless.close()
    const again = await open(dir, { encryption: ONLY_A })
    assert.equal(await again.get('k'), 'under a')
    await again.close()
  })

  test('an entry left aside by a killed rekey is put back only if nothing was written or removed since', async () => {
    const dir = tempDir()
    const cache = await open(dir, { encryption: ONLY_A })
    await cache.set('kept', 'kept value')
    await cache.set('deleted', 'deleted value')
    const [kept, deleted] = ['kept', 'deleted'].map((key) => entryFiles(dir).find((f) => fs.readFileSync(f).includes(key))!)
    const deadPid = 2 ** 22 + 17 // above Linux's pid_max default: no such process
    await tick() // the change log's last write and the rename aside fall in different ticks of the file clock
    fs.renameSync(kept!, `${kept}.rekey-${deadPid}`)
    const rekeyer = await open(dir, { encryption: A_THEN_B })
    assert.equal((await rekeyer.rekey()).recovered, 1)
    assert.equal(await rekeyer.get('kept'), 'kept value')
    // ... and rewritten under the active key in the same pass, so the old key can go.
    const newKeyOnly = await open(dir, { encryption: ONLY_B })
    assert.equal(await newKeyOnly.get('kept'), 'kept value', 'the entry put back is sealed under the active key')
    await newKeyOnly.close()
    // Now a delete after the entry went aside: putting it back would bring a deleted key back.
    fs.renameSync(deleted!, `${deleted}.rekey-${deadPid}`)
    await tick()
    await cache.delete('deleted')
    assert.equal((await rekeyer.rekey()).recovered, 0)
    assert.equal(await rekeyer.get('deleted'), undefined)
    assert.deepEqual(
      fs.readdirSync(path.dirname(deleted!)).filter((n) => n.includes('.rekey-')),
      [],
      'the stale aside is removed',
    )
    await rekeyer.close()
    await cache.close()
  })

  test('larder rekey killed midway (SIGKILL): no entry wrong, at most the one it held aside lost', async () => {
    const n = 600
    const { dir, stream } = await mixedCache(n)
    const child = spawn(process.execPath, [...runScript(path.join(import.meta.dirname, 'children', 'rekey-child.ts')), dir], {
      env: { ...process.env, LARDER_ENCRYPTION_KEYS: KEYS_ENV, LARDER_ENCRYPTION_ACTIVE_KEY: 'b' },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const said = await new Promise<string>((resolve) => {
      let text = ''
      child.stdout.on('data', (c: Buffer) => {
        text += c.toString()
        if (text.includes('progress') || text.includes('done')) resolve(text)
      })
      child.on('close', () => resolve(text))
    })
    assert.match(said, /progress/)
    child.kill('SIGKILL')
    await new Promise((r) => child.once('close', r))
    // Under old + new keys every entry reads as its value; at most the one entry caught in the
    // two system calls of a swap is missing (aside) until the next rekey puts it back.
    const both = await open(dir, { encryption: A_THEN_B })
    let missing = 0
    for (let i = 0; i < n; i++) {
      const value = await both.get(`k${i}`)
      if (value === undefined) missing++
      else assert.deepEqual(value, valueOf(i))
    }
    assert.ok(missing <= 1, `${missing} entries missing`)
    assert.equal((await both.stats()).corrupt, 0)
    const report = await both.rekey({ sealPlain: true })
    assert.ok(report.rekeyed > 0 && report.current > 0, 'the killed rekey had done part of the work')
    await both.close()
    // The entry the killed rekey held aside went there under the name every removal shares (so
    // that a delete in that moment is never undone), and is not put back: at most that one
    // entry is lost (a miss), and every other reads as its value under the new key alone.
    const after = await open(dir, { encryption: ONLY_B })
    let lost = 0
    for (let i = 0; i < n; i++) {
      const value = await after.get(`k${i}`)
      if (value === undefined) lost++
      else assert.deepEqual(value, valueOf(i))
    }
    for (const [key, expected] of [
      ['stream', stream],
      ['plain-stream', stream],
      ['plain', 'written before encryption'],
    ] as const) {
      const value = await after.get(key)
      if (value === undefined) lost++
      else assert.deepEqual(value, expected)
    }
    assert.ok(lost <= 1, `${lost} entries lost`)
    assert.equal((await after.stats()).corrupt, 0)
    await after.close()
  })

  test('larder rekey --json: keys from the environment, a report, and no key in any output', async () => {
    const { dir, stream } = await mixedCache(10)
    const run = await runBin(BIN, ['--dir', dir, '--json', 'rekey', '--keys-env', 'MY_KEYS', '--active-key', 'b', '--seal-plain'], {
      env: { MY_KEYS: KEYS_ENV },
    })
    assert.equal(run.code, 0, run.stderr)
    const report = JSON.parse(run.text) as { rekeyed: number; activeKey: string }
    assert.equal(report.rekeyed, 13)
    assert.equal(report.activeKey, 'b')
    await expectAllUnder(dir, 10, stream)
    const bad = await runBin(BIN, ['--dir', dir, 'rekey'], { env: { LARDER_ENCRYPTION_KEYS: `a:${KEY_A.toString('hex').slice(2)}` } })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /LARDER_ENCRYPTION_KEYS \(key a\)/)
    for (const text of [run.text, run.stderr, bad.text, bad.stderr]) {
      for (const key of [KEY_A, KEY_B])
        assert.ok(!text.includes(key.toString('hex').slice(4, 40)) && !text.includes(key.toString('base64').slice(4, 30)))
    }
    const none = await runBin(BIN, ['--dir', dir, 'rekey'])
    assert.equal(none.code, 2)
    assert.match(none.stderr, /LARDER_ENCRYPTION_KEYS is not set/)
    // An --active-key that names no key listed: the error names the flag and the variable
    // --keys-env named, not variables the caller never set.
    const unknown = await runBin(BIN, ['--dir', dir, 'rekey', '--keys-env', 'MY_KEYS', '--active-key', 'zz'], {
      env: { MY_KEYS: KEYS_ENV },
    })
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /--active-key.*not a key id of MY_KEYS/)
    assert.ok(!unknown.stderr.includes('LARDER_ENCRYPTION'), unknown.stderr)
  })

  test('larder set and get seal and open entries with LARDER_ENCRYPTION_KEYS; without the key the entry is a miss, intact', async () => {
    const dir = path.join(tempDir('larder-enc-cli'), 'cache')
    const env = { LARDER_ENCRYPTION_KEYS: `a:${KEY_A.toString('hex')}` }
    const set = await runBin(BIN, ['--dir', dir, 'set', 'greeting', '-'], { env, input: 'a secret greeting' })
    assert.equal(set.code, 0, set.stderr)
    for (const file of entryFiles(dir)) assert.ok(!fs.readFileSync(file).includes('secret greeting'), 'sealed on disk')
    const got = await runBin(BIN, ['--dir', dir, 'get', 'greeting'], { env })
    assert.equal(got.code, 0, got.stderr)
    assert.equal(got.text, 'a secret greeting')
    const keyless = await runBin(BIN, ['--dir', dir, 'get', 'greeting'])
    assert.equal(keyless.code, 1, 'a miss without the key')
    const verify = await runBin(BIN, ['--dir', dir, '--json', 'verify'])
    assert.equal(verify.code, 0, verify.stderr)
    assert.ok(!`${set.text}${set.stderr}${got.stderr}${keyless.stderr}`.includes(KEY_A.toString('hex')), 'no key in any output')
  })
})
