/**
 * The pacing of writes over budget (maintenance/auto-prune.ts) applies only while the holder of
 * the maintenance lock is a prune: a verify or rekey holds it for minutes on a big cache and
 * evicts nothing, and pacing then throttled every writer to about ten writes a second for as
 * long as an operator's check ran. The lock's owner file says what its holder is doing.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { Larder } from '../src/index.ts'
import { tryLock } from '../src/maintenance/lock.ts'
import { repoRoot } from './children/shared.ts'
import { eventually } from './eventually.ts'
import { tempDir } from './helpers.ts'

const VALUE = 'z'.repeat(6000)
const BUDGET = 16 * 1024
/** The pacing's spacing at 100 budgets and more (PACE_MS_AT_MOST). */
const PACE_MS = 100

function lockDirOf(dir: string): string {
  return path.join(dir, 'v1', 'default', 'meta', 'maintenance.lock')
}

function purposeOf(dir: string): unknown {
  return (JSON.parse(fs.readFileSync(path.join(lockDirOf(dir), 'owner'), 'utf8')) as { purpose?: unknown }).purpose
}

/** The bytes of the entry files under the namespace. */
function onDisk(dir: string): number {
  const namespace = path.join(dir, 'v1', 'default')
  let bytes = 0
  for (const partition of fs.readdirSync(namespace).filter((name) => /^[0-9a-f]{2}$/.test(name)))
    for (const name of fs.readdirSync(path.join(namespace, partition)))
      if (/^[0-9a-f]{16}$/.test(name)) bytes += fs.statSync(path.join(namespace, partition, name), { throwIfNoEntry: false })?.size ?? 0
  return bytes
}

/** A cache of `dir` holding about 2 MiB: over 100 budgets of BUDGET, where writes are spaced
 *  PACE_MS apart while paced. */
async function overBudget(dir: string): Promise<void> {
  const filler = await Larder.open({ dir, compression: 'none', maintenance: false })
  for (let i = 0; i < 350; i++) await filler.set(`fill-${i}`, VALUE)
  await filler.close()
}

/** How long `writes` sets of VALUE take on `cache`, in ms. */
async function timeSets(cache: Larder, writes: number, tag: string): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < writes; i++) await cache.set(`${tag}-${i}`, VALUE)
  return performance.now() - started
}

test('a writer over budget is not paced while another process verifies (its prune stands aside for a hold that evicts nothing)', async () => {
  const dir = tempDir()
  await overBudget(dir)
  const writes = 60
  // The same sets where nothing paces them, for this machine's speed now.
  const free = await Larder.open({ dir: tempDir(), compression: 'none', maintenance: false })
  const unpaced = await timeSets(free, writes, 'free')
  await free.close()

  // A real verify (with repair) in another process, holding the lock: its worker waits at its
  // first partition until told to go (test/children/slow-verify-list.cjs).
  const marks = tempDir('mark')
  const mark = path.join(marks, 'verifying')
  const go = path.join(marks, 'go')
  const child = spawn(
    process.execPath,
    [
      '--require',
      path.join(repoRoot, 'test', 'children', 'slow-verify-list.cjs'),
      '--import',
      'tsx',
      path.join(repoRoot, 'test', 'children', 'verify-once.ts'),
      dir,
    ],
    { env: { ...process.env, LARDER_TEST_MARK: mark, LARDER_TEST_GO: go }, stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  let exitCode: number | null | undefined
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve)).then((code) => (exitCode = code))
  try {
    await eventually(() => fs.existsSync(mark) || exitCode !== undefined, 'the verify reached its first partition', 60_000)
    assert.equal(exitCode, undefined, 'the verify is still running')

    const writer = await Larder.open({ dir, maxSize: BUDGET, compression: 'none' })
    const elapsed = await timeSets(writer, writes, 'w')
    // Paced, each write after the first few waits PACE_MS: at least (writes - 3) * PACE_MS in
    // all, whatever the machine. Unpaced, they take about as long as the free ones did.
    const pacedAtLeast = (writes - 3) * PACE_MS
    assert.ok(
      elapsed < unpaced + pacedAtLeast / 2,
      `${writes} sets took ${elapsed.toFixed(0)} ms beside the verify (${unpaced.toFixed(0)} ms unpaced; paced: at least ${pacedAtLeast} ms)`,
    )
    assert.equal(exitCode, undefined, 'the verify held the lock throughout')
    assert.equal(purposeOf(dir), 'verify', "the lock's owner says a verify holds it")
    assert.ok(onDisk(dir) > 100 * BUDGET, 'nothing was evicted meanwhile: the budget is overshot until the verify ends')

    fs.writeFileSync(go, '')
    assert.equal(await exited, 0)
    const report = JSON.parse(out) as { scanned: number; corrupt: number }
    assert.ok(report.scanned >= 350 && report.corrupt === 0, out)
    // Once the verify is done, the next write over budget (or the run still retrying) prunes.
    await writer.set('after', VALUE)
    await writer.close()
    assert.ok(onDisk(dir) <= BUDGET, `within budget after the verify: ${onDisk(dir)} bytes`)
  } finally {
    fs.writeFileSync(go, '')
    if (exitCode === undefined) child.kill('SIGKILL')
    await exited
  }
})

for (const purpose of ['prune', undefined] as const) {
  test(`a writer over budget is still paced while another holder prunes (its owner says ${purpose ?? 'nothing, as an older larder'})`, async () => {
    const dir = tempDir()
    await overBudget(dir)
    fs.mkdirSync(path.dirname(lockDirOf(dir)), { recursive: true })
    const release = tryLock(lockDirOf(dir), { dir: 0o700, file: 0o600 }, purpose)
    assert.ok(release !== undefined)
    const writer = await Larder.open({ dir, maxSize: BUDGET, compression: 'none' })
    try {
      const writes = 15
      const elapsed = await timeSets(writer, writes, 'w')
      // A lower bound only: a paced write never goes on before its turn, however loaded the machine.
      assert.ok(elapsed >= (writes - 5) * PACE_MS, `${writes} sets took ${elapsed.toFixed(0)} ms: paced`)
    } finally {
      release()
      await writer.close()
    }
  })
}

test("the maintenance lock's owner says what its holder is doing: prune, dry-run, verify, rekey", async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, encryption: { keys: { a: 'a'.repeat(64) }, activeKey: 'a' } })
  await cache.set('k', 'v')
  const seen: unknown[] = []
  let first = true
  const look = (): void => {
    if (first) seen.push(purposeOf(dir))
    first = false
  }
  const each = async (run: () => Promise<unknown>): Promise<void> => {
    first = true
    await run()
  }
  await each(() => cache.prune({ onProgress: look }))
  await each(() => cache.prune({ dryRun: true, onProgress: look }))
  await each(() => cache.verify({ onProgress: look }))
  await each(() => cache.rekey({ onProgress: look }))
  await cache.close()
  assert.deepEqual(seen, ['prune', 'dry-run', 'verify', 'rekey'])
})
