/**
 * Crash consistency under SIGKILL, many times over: processes writing buffered and streamed
 * entries while pruning, clearing or invalidating tags are killed at random moments. After
 * every kill each key reads as a whole, valid value or a miss (never a torn one, never
 * ERR_CORRUPT), nothing under an entry's final name is damaged, and what the dead left behind
 * (temp files, a half-deleted clear) is reclaimed by the next verify and prune.
 * test/crash.test.ts covers one long stream and one writer in depth; this is the breadth.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../../src/index.ts'
import { Child } from '../children/harness.ts'
import { entryName, prng, randInt, scanEntries, valueProblem, verifyEntryFile } from '../children/shared.ts'
import { record, scale, seedFor } from './scale.ts'

const dirs: string[] = []
const children: Child[] = []
after(async () => {
  await Promise.all(children.map((c) => c.kill()))
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

const KEYS = 60
const smallKeys = Array.from({ length: KEYS }, (_, i) => `small-${i}`)
const streamKeys = Array.from({ length: KEYS / 10 }, (_, i) => `stream-${i}`)
const allKeys = [...smallKeys, ...streamKeys]

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of stream) parts.push(Buffer.from(c))
  return Buffer.concat(parts)
}

/** Every file under a final entry name is a whole entry whose key hashes to that name. */
async function damagedFinalNames(dir: string, names: Map<string, string>): Promise<string[]> {
  const problems: string[] = []
  const scan = scanEntries(dir)
  for (const f of scan.other) problems.push(`neither entry nor temp: ${f}`)
  for (const file of scan.entries) {
    const verdict = await verifyEntryFile(file)
    if (verdict.startsWith('INVALID')) problems.push(`${file}: ${verdict}`)
    else if (names.get(path.basename(file)) !== verdict) problems.push(`${file} holds ${verdict}, which does not hash to its name`)
  }
  return problems
}

/** The leftovers of killed writers and clears: temp files in partitions, trash trees. */
function leftovers(dir: string): { temps: string[]; trash: string[] } {
  const version = path.join(dir, 'v1')
  const trash = existsSync(version) ? readdirSync(version).filter((n) => n.startsWith('.trash-')) : []
  // Temp files of entries in partitions, and of bookkeeping writes (tag stamps, meta files)
  // that a kill cut short.
  const ns = path.join(version, 'default')
  const bookkeeping = ['tags', 'meta', 'meta/totals', 'meta/activity', 'meta/hits'].flatMap((d) =>
    existsSync(path.join(ns, d))
      ? readdirSync(path.join(ns, d))
          .filter((n) => /\.\d+-\d+\.tmp$/.test(n))
          .map((n) => path.join(ns, d, n))
      : [],
  )
  return { temps: [...scanEntries(dir).temps, ...bookkeeping], trash }
}

describe('SIGKILL at random moments', () => {
  const KILLS = scale(15, 200)

  test(
    `after each of ${KILLS} kills (writers with streams and prune, clear, invalidateTags) every key is whole or a miss, and verify + prune reclaim what the dead left`,
    { timeout: scale(180_000, 1_800_000) },
    async (t) => {
      const dir = await mkdtemp(path.join(tmpdir(), 'larder-torture-crash-'))
      dirs.push(dir)
      const seed = seedFor('crash')
      const rand = prng(seed)
      const names = new Map<string, string>()
      for (const key of allKeys) names.set(await entryName(key), key)
      const outcome = { mixed: 0, clear: 0, tags: 0, readsValidated: 0, streamsValidated: 0, misses: 0, maxTemps: 0, maxTrash: 0 }

      // Each kill is judged on its own: a kill survived when the child died mid-work (SIGKILL),
      // every key then read whole or missed, nothing was counted corrupt or failed, and no file
      // under an entry's name is damaged.
      const failures: string[] = []
      let survived = 0
      // Six in ten kills hit writers that stream and prune, two hit clear(), two invalidateTags();
      // the last five hit writers, so a clear() does not sweep away the temp files whose
      // reclaiming the end of the test checks.
      const modeOf = (kill: number): 'mixed' | 'clear' | 'tags' => {
        const roll = kill >= KILLS - 5 ? 0 : kill % 10
        return roll < 6 ? 'mixed' : roll < 8 ? 'clear' : 'tags'
      }
      const start = (kill: number): Child => {
        const child = new Child('../torture/children/crash-child.ts', [
          modeOf(kill),
          dir,
          String(kill),
          String(seed * 31 + kill),
          String(KEYS),
        ])
        children.push(child)
        return child
      }
      // The child of the next kill loads (about a second of Node, tsx and larder) while this one
      // works and is checked; it opens the cache only when sent 'go', after that.
      let nextChild = start(0)
      for (let kill = 0; kill < KILLS; kill++) {
        const mode = modeOf(kill)
        outcome[mode]++
        const child = nextChild
        await child.next('loaded')
        child.proc.send('go')
        await child.next('ready')
        if (kill + 1 < KILLS) nextChild = start(kill + 1)
        await delay(randInt(rand, 0, 400))
        const exit = await child.kill()
        children.splice(children.indexOf(child), 1)
        const problems: string[] = []
        if (exit.signal !== 'SIGKILL') problems.push(`the child ended on its own (code ${exit.code}): ${child.stderr.slice(0, 500)}`)
        // A prune killed while holding the maintenance lock leaves it for 30 s (proper-lockfile's
        // stale takeover); the dead child was its only holder, so drop it rather than wait.
        rmSync(path.join(dir, 'v1', 'default', 'meta', 'maintenance.lock'), { recursive: true, force: true })

        const reader = await Larder.open({ dir, maintenance: { interval: 0 } })
        reader.on('corrupt', (info) => problems.push(`corrupt ${info.key}: ${info.reason}`))
        for (const key of allKeys) {
          const value = await reader.get(key)
          if (value === undefined) {
            outcome.misses++
            continue
          }
          const problem = valueProblem(key, value)
          if (problem === undefined) outcome.readsValidated++
          else problems.push(`get ${key}: ${problem}`)
        }
        for (const key of streamKeys) {
          const stream = await reader.getStream(key)
          if (stream === undefined) continue
          const bytes = await collect(stream).catch(
            (error: unknown) => (problems.push(`getStream ${key}: ${(error as Error).message}`), undefined),
          )
          if (bytes === undefined) continue
          const problem = valueProblem(key, bytes)
          if (problem === undefined) outcome.streamsValidated++
          else problems.push(`getStream ${key}: ${problem}`)
        }
        const stats = await reader.stats()
        await reader.close()
        if (stats.errors > 0) problems.push(`${stats.errors} disk errors`)
        problems.push(...(await damagedFinalNames(dir, names)))
        if (problems.length === 0) survived++
        else failures.push(`kill ${kill} (${mode}, seed ${seed}): ${problems.slice(0, 3).join('; ')}`)
        const left = leftovers(dir)
        outcome.maxTemps = Math.max(outcome.maxTemps, left.temps.length)
        outcome.maxTrash = Math.max(outcome.maxTrash, left.trash.length)
      }

      // What the dead left behind goes with the next verify and prune (tempMaxAge at its 1 s
      // minimum: no writer is alive any more, and a second has passed since the last died); a
      // claim of its own, checked after the kills are recorded.
      const before = leftovers(dir)
      await delay(1100)
      const janitor = await Larder.open({ dir, maintenance: { interval: 0, tempMaxAge: '1s' } })
      const verified = await janitor.verify()
      const pruned = await janitor.prune()
      await janitor.close()
      const afterwards = leftovers(dir)

      record(
        t,
        {
          area: 'crash',
          what: 'SIGKILL during set/setStream/prune/clear/invalidateTags',
          tried: KILLS,
          unit: 'kills',
          survived,
          note: `seed ${seed}; ${outcome.mixed} mixed, ${outcome.clear} clear, ${outcome.tags} tags; ${outcome.readsValidated + outcome.streamsValidated} reads validated; ${before.temps.length} temps + ${before.trash.length} trash trees reclaimed`,
        },
        failures,
      )
      assert.equal(verified.corrupt, 0, `verify found damaged entries: ${JSON.stringify(verified.problems.slice(0, 3))}`)
      assert.equal(pruned.corrupt, 0)
      assert.equal(
        verified.tempFilesRemoved + pruned.tempFilesRemoved + verified.trashRemoved + pruned.trashRemoved,
        before.temps.length + before.trash.length,
        'every stray temp file (entries and bookkeeping) and trash tree was reclaimed, and counted',
      )
      assert.deepEqual(afterwards.temps, [], 'temp files left after verify and prune')
      assert.deepEqual(afterwards.trash, [], 'trees of killed clear() calls left after prune')
      assert.ok(outcome.readsValidated > 0, 'no value was ever read back: the test proved nothing')
      assert.ok(outcome.maxTemps > 0 || before.temps.length > 0, 'no kill ever landed inside a write')
    },
  )
})
