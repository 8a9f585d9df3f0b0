/**
 * Crash safety with real processes and SIGKILL: a writer killed at a random moment leaves
 * each key holding a whole earlier value (or nothing), never a torn one, and leaves behind
 * only temp-named files, never a damaged file under an entry's final name.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder, isLarderError } from '../src/index.ts'
import { Child } from './children/harness.ts'
import {
  artifactDigest,
  artifactSource,
  digestStream,
  entryName,
  MiB,
  prng,
  randInt,
  scanEntries,
  valueProblem,
  verifyEntryFile,
} from './children/shared.ts'

const dirs: string[] = []
const children: Child[] = []

async function freshDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `larder-crash-${label}-`))
  dirs.push(dir)
  return dir
}

after(async () => {
  await Promise.all(children.map((c) => c.kill()))
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

/** Every file under an entry's final name is a whole, valid entry for one of `keys`;
 *  everything else in the partitions is temp-named. Returns the temp files. */
async function checkFinalNames(dir: string, keys: readonly string[]): Promise<string[]> {
  const scan = scanEntries(dir)
  assert.deepEqual(scan.other, [], 'files that are neither entries nor temp files')
  const byName = new Map<string, string>()
  for (const key of keys) byName.set(await entryName(key), key)
  for (const file of scan.entries) {
    const verdict = await verifyEntryFile(file)
    assert.ok(!verdict.startsWith('INVALID'), `${file} under a final name is not a whole entry: ${verdict}`)
    assert.equal(byName.get(path.basename(file)), verdict, `${file} holds key ${verdict}, which does not hash to its name`)
  }
  return scan.temps
}

describe('SIGKILL during setStream of a large artifact', () => {
  const KEY = 'artifact'
  const SIZE = 32 * MiB
  const KILLS = 20

  test(
    'after each of 20 kills at random moments the key reads as a whole earlier or new version, never torn and never ERR_CORRUPT',
    { timeout: 120_000 },
    async (t) => {
      const dir = await freshDir('stream')
      const seed = Number(process.env.LARDER_TEST_SEED ?? Date.now() % 1_000_000)
      const rand = prng(seed)
      t.diagnostic(`seed ${seed}`)

      const digests = new Map<number, string>()
      const digestOf = (version: number): string => {
        let d = digests.get(version)
        if (d === undefined) {
          d = artifactDigest({ version, size: SIZE }).sha256
          digests.set(version, d)
        }
        return d
      }

      // Version 0, written whole by this process.
      const setup = await Larder.open({ dir })
      await setup.setStream(KEY, artifactSource({ version: 0, size: SIZE }))
      await setup.close()

      let current: number | undefined = 0 // the version the key is known to hold
      const outcomes = { killedMidWrite: 0, completedBeforeKill: 0, completedUnkilled: 0, keptPrevious: 0, tookNew: 0, missing: 0 }
      const writer = (v: number): Child => {
        const child = new Child('stream-writer.ts', [dir, KEY, String(v), String(SIZE)])
        children.push(child)
        return child
      }
      let version = 0
      // The writer of the next version loads (about a second of Node, tsx and larder) while
      // this one writes and is checked; it opens the cache only when sent 'go', after that.
      let nextWriter = writer(1)
      for (let kill = 0; kill < KILLS;) {
        version++
        const child = nextWriter
        await child.next('loaded')
        child.proc.send('go')
        await child.next('writing')
        nextWriter = writer(version + 1)
        // Every fifth version is left to finish, so the "earlier version" keeps changing.
        const unkilled = version % 5 === 0
        if (unkilled) {
          await child.next('done')
          child.proc.disconnect()
          const exit = await child.exited
          assert.equal(exit.code, 0, `writer of version ${version} failed:\n${child.stderr}`)
          outcomes.completedUnkilled++
        } else {
          // Half the kills count from the start of the write, half from when the source is
          // 90 % through, so some land in the last bytes, the trailer and the rename.
          const anchor = kill % 2 === 0 ? 'writing' : 'near-end'
          if (anchor === 'near-end') await child.next('near-end')
          await delay(randInt(rand, 5, 300))
          const exit = await child.kill()
          kill++
          assert.equal(exit.signal, 'SIGKILL', `writer of version ${version} ended on its own (code ${exit.code}):\n${child.stderr}`)
          // Diagnostics only: a 'done' still in flight counts as mid-write here.
          if (child.has('done')) outcomes.completedBeforeKill++
          else outcomes.killedMidWrite++
        }

        // Read it back through a fresh instance, hashing every byte.
        const reader = await Larder.open({ dir })
        const corruptEvents: string[] = []
        reader.on('corrupt', (info) => corruptEvents.push(info.reason))
        let got: { sha256: string; length: number } | undefined
        try {
          const stream = await reader.getStream(KEY)
          got = stream === undefined ? undefined : await digestStream(stream)
        } catch (error) {
          assert.fail(
            `version ${version}: reading the key failed${isLarderError(error, 'ERR_CORRUPT') ? ' with ERR_CORRUPT' : ''}: ${(error as Error).message}`,
          )
        }
        const stats = await reader.stats()
        await reader.close()
        assert.deepEqual(corruptEvents, [], `version ${version}: corrupt events`)
        assert.equal(stats.corrupt, 0, `version ${version}: stats.corrupt`)
        assert.equal(stats.errors, 0, `version ${version}: stats.errors`)

        if (got === undefined) {
          outcomes.missing++
          current = undefined
        } else {
          assert.equal(got.length, SIZE, `version ${version}: a stream of ${got.length} bytes (torn)`)
          const candidates = new Map<string, number>([[digestOf(version), version]])
          if (current !== undefined) candidates.set(digestOf(current), current)
          const seen = candidates.get(got.sha256)
          assert.notEqual(seen, undefined, `after writing version ${version} (previous ${String(current)}) the key holds bytes of neither`)
          if (unkilled) assert.equal(seen, version, `version ${version} finished, yet the key holds version ${seen}`)
          if (seen === version) outcomes.tookNew++
          else outcomes.keptPrevious++
          current = seen
        }
        await checkFinalNames(dir, [KEY])
      }

      await nextWriter.kill() // loaded, never let go: it opened nothing
      const temps = await checkFinalNames(dir, [KEY])
      t.diagnostic(
        `outcomes ${JSON.stringify(outcomes)}; ${temps.length} temp files left: ${temps
          .map((f) => path.basename(f))
          .slice(0, 3)
          .join(', ')}…`,
      )
      // The kills really landed inside writes (else this test proved nothing), and each one
      // that did left its partial file only under a temp name.
      assert.ok(outcomes.killedMidWrite >= KILLS / 4, `only ${outcomes.killedMidWrite} of ${KILLS} kills landed mid-write`)
      assert.ok(temps.length >= 1, 'no temp file left by any killed writer')
      assert.ok(
        temps.every((f) => /\.\d+-\d+\.tmp$/.test(f)),
        'stream temps are named <hash>.<pid>-<n>.tmp',
      )
      assert.ok(temps.length <= outcomes.killedMidWrite, `${temps.length} temp files from ${outcomes.killedMidWrite} interrupted writes`)
    },
  )
})

describe('SIGKILL during many small sets', () => {
  const KEYS = 120
  const ROUNDS = 6

  test(
    'after each kill every key reads as a whole valid value or a miss, and only temp-named files are left over',
    { timeout: 60_000 },
    async (t) => {
      const dir = await freshDir('small')
      const seed = Number(process.env.LARDER_TEST_SEED ?? Date.now() % 1_000_000)
      const rand = prng(seed)
      const keys = Array.from({ length: KEYS }, (_, i) => `small-${i}`)
      let lastPresent = 0
      let maxTemps = 0

      const writer = (round: number): Child => {
        const child = new Child('small-writer.ts', [dir, String(round), String(seed * 7 + round), String(KEYS)])
        children.push(child)
        return child
      }
      // The writer of the next round loads while this one writes and is checked (as above).
      let nextWriter = writer(0)
      for (let round = 0; round < ROUNDS; round++) {
        const child = nextWriter
        await child.next('loaded')
        child.proc.send('go')
        await child.next('writing')
        if (round + 1 < ROUNDS) nextWriter = writer(round + 1)
        await delay(randInt(rand, 5, 150))
        const exit = await child.kill()
        assert.equal(exit.signal, 'SIGKILL', `round ${round}: the writer ended on its own:\n${child.stderr}`)

        const cache = await Larder.open({ dir })
        const problems: string[] = []
        let present = 0
        for (const key of keys) {
          const value = await cache.get(key)
          if (value === undefined) continue
          present++
          const problem = valueProblem(key, value)
          if (problem !== undefined) problems.push(`${key}: ${problem}`)
        }
        const stats = await cache.stats()
        await cache.close()
        assert.deepEqual(problems, [], `round ${round} (seed ${seed}): damaged values`)
        assert.equal(stats.corrupt, 0, `round ${round}: stats.corrupt`)
        assert.equal(stats.errors, 0, `round ${round}: stats.errors`)
        assert.ok(present >= lastPresent, `round ${round}: ${present} keys present, fewer than the ${lastPresent} before (nothing deletes)`)
        lastPresent = present
        const temps = await checkFinalNames(dir, keys)
        maxTemps = Math.max(maxTemps, temps.length)
        assert.ok(
          temps.every((f) => /\.\d+-\d+\.tmp$/.test(f)),
          'set() temps are exclusive temp names, <hash>.<pid>-<n>.tmp',
        )
      }
      t.diagnostic(`${lastPresent} of ${KEYS} keys present; at most ${maxTemps} temp files left over`)
      assert.ok(lastPresent > KEYS / 2, `only ${lastPresent} keys were ever written`)
    },
  )
})
