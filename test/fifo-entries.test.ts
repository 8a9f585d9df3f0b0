/**
 * A FIFO planted where an entry file belongs, or as the cache's CACHEDIR.TAG, must not stop an
 * operator's command: the maintenance workers open entries without waiting (an open() of a
 * FIFO nobody writes waits for ever, and the process then ignores Ctrl-C and SIGTERM), judge
 * the FIFO a damaged entry, and prune removes it. Run through the built bin, each command
 * killed if it has not finished in a generous time: a hang fails the test instead of the run.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { repoRoot, runBin, type Run } from './cli-runner.ts'
import { entryFiles, tempDir } from './helpers.ts'

const BIN = path.join(repoRoot, 'dist', 'cli.js')
/** Each command needs well under a second; only a thread blocked on the FIFO takes this long. */
const KILL_AFTER = 60_000

const larder = (dir: string, ...args: string[]): Promise<Run> => runBin(BIN, ['--dir', dir, ...args, '--json'], { killAfter: KILL_AFTER })

function mkfifo(file: string): void {
  execFileSync('mkfifo', [file])
}

describe('a FIFO planted in the cache directory, and the command line', () => {
  const dir = tempDir('larder-fifo-entries')
  const other = tempDir('larder-fifo-tag')
  let fifo: string
  before(async () => {
    assert.ok(fs.existsSync(BIN), 'dist/cli.js is missing: npm test builds it first (npm run build)')
    const cache = await Larder.open({ dir })
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, { i })
    await cache.close()
    fifo = entryFiles(dir)[0]!
    fs.rmSync(fifo)
    mkfifo(fifo)
  })

  test('stats, ls and verify finish, and report the FIFO as a damaged entry', { timeout: 4 * KILL_AFTER }, async () => {
    const stats = await larder(dir, 'stats')
    assert.equal(stats.signal, null, `stats did not finish: ${stats.stderr}`)
    const statsOut = JSON.parse(stats.text) as { entries: number; corrupt: number }
    assert.equal(statsOut.entries, 9)
    assert.equal(statsOut.corrupt, 1)

    const ls = await larder(dir, 'ls')
    assert.equal(ls.signal, null, `ls did not finish: ${ls.stderr}`)
    assert.equal((JSON.parse(ls.text) as unknown[]).length, 9)

    const verify = await larder(dir, 'verify')
    assert.equal(verify.signal, null, `verify did not finish: ${verify.stderr}`)
    assert.equal(verify.code, 1, 'damage found and not repaired')
    const problems = (JSON.parse(verify.text) as { problems: { file: string; reason: string }[] }).problems
    assert.deepEqual(
      problems.map((p) => p.file),
      [fifo],
    )
    assert.match(problems[0]!.reason, /not a regular file/)
    assert.equal(fs.lstatSync(fifo).isFIFO(), true, 'verify without --repair removes nothing')
  })

  test('prune finishes and removes it, counted as corrupt; every entry stays readable', { timeout: 2 * KILL_AFTER }, async () => {
    const prune = await larder(dir, 'prune')
    assert.equal(prune.signal, null, `prune did not finish: ${prune.stderr}`)
    assert.equal((JSON.parse(prune.text) as { corrupt: number }).corrupt, 1)
    assert.equal(fs.existsSync(fifo), false)
    const cache = await Larder.open({ dir })
    const values = await cache.getMany(Array.from({ length: 10 }, (_, i) => `k${i}`))
    assert.equal(values.filter((v) => v !== undefined).length, 9)
    await cache.close()
  })

  test(
    'a FIFO as CACHEDIR.TAG: the directory is not a cache (said at once), nothing is read or written',
    { timeout: KILL_AFTER * 2 },
    async () => {
      mkfifo(path.join(other, 'CACHEDIR.TAG'))
      const run = await larder(other, 'stats')
      assert.equal(run.signal, null, `stats did not finish: ${run.stderr}`)
      assert.equal((JSON.parse(run.text) as { error: { code: string } }).error.code, 'ERR_NOT_A_CACHE')
      assert.deepEqual(fs.readdirSync(other), ['CACHEDIR.TAG'])
    },
  )
})

describe('a socket planted where an entry belongs, and the command line', () => {
  const dir = tempDir('larder-socket-entries')
  let socket: string
  let server: net.Server
  before(async () => {
    const cache = await Larder.open({ dir })
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, { i })
    await cache.close()
    socket = entryFiles(dir)[0]!
    fs.rmSync(socket)
    server = net.createServer()
    await new Promise<void>((resolve) => server.listen(socket, resolve))
  })
  after(() => server.close())

  test('verify reports it as not a regular file (no open reaches a socket: ENXIO is no failing disk), and --repair removes it', async () => {
    const verify = await larder(dir, 'verify')
    assert.equal(verify.code, 1)
    const problems = (JSON.parse(verify.text) as { problems: { file: string; reason: string }[] }).problems
    assert.deepEqual(
      problems.map((p) => p.file),
      [socket],
    )
    assert.match(problems[0]!.reason, /not a regular file/)
    const repair = await larder(dir, 'verify', '--repair')
    assert.equal((JSON.parse(repair.text) as { repaired: boolean }).repaired, true)
    assert.equal(fs.existsSync(socket), false)
  })
})
