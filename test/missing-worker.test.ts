/**
 * A build whose worker file is missing (a bundler that copied only the library's main file,
 * say): the maintenance pool cannot start a thread. That must never bring the host down (an
 * unhandled 'error' event on the pool did), and maintenance calls must fail with an error the
 * caller can catch rather than never answer (their tasks stayed queued forever).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { promisify } from 'node:util'

const root = path.resolve(import.meta.dirname, '..')
// Beside node_modules, so the copied bundle still finds its dependencies.
const lonely = fs.mkdtempSync(path.join(root, 'node_modules', '.cache-larder-missing-worker-'))
after(() => fs.rmSync(lonely, { recursive: true, force: true }))

const CHILD = `
import fs from 'node:fs'
const { Larder } = await import(process.argv[2])
const dir = fs.mkdtempSync(process.argv[3])
const cache = await Larder.open({ dir, maintenance: false })
for (let i = 0; i < 20; i++) await cache.set('k' + i, { i })
const maintenance = await cache.verify().then(() => 'verified', (error) => 'rejected: ' + (error.code ?? error.message))
const read = await cache.get('k7')
const { dropped, errors, corrupt } = await cache.stats()
console.log(JSON.stringify({ read, maintenance, dropped, errors, corrupt }))
await cache.close()
`

describe('worker files missing from the build', () => {
  test('verify rejects, the cache still reads and writes, and the process lives', async () => {
    const built = path.join(root, 'dist', 'index.js')
    assert.ok(fs.existsSync(built), 'run `npm run build` first')
    fs.copyFileSync(built, path.join(lonely, 'index.js'))
    const script = path.join(lonely, 'child.mjs')
    fs.writeFileSync(script, CHILD)
    const tmp = path.join(fs.mkdtempSync(path.join(path.dirname(lonely), '.cache-larder-dirs-')), 'c-')
    after(() => fs.rmSync(path.dirname(tmp), { recursive: true, force: true }))
    const { stdout } = await promisify(execFile)(process.execPath, [script, path.join(lonely, 'index.js'), tmp], { timeout: 60_000 })
    const result = JSON.parse(stdout.trim()) as { read: unknown; maintenance: string; dropped: number; errors: number; corrupt: number }
    assert.deepEqual(result.read, { i: 7 }, 'the cache still works')
    assert.deepEqual({ dropped: result.dropped, corrupt: result.corrupt }, { dropped: 0, corrupt: 0 }, 'no write dropped')
    assert.match(result.maintenance, /^rejected/, 'verify rejects (no worker to run it), rather than never answering')
    assert.equal(result.errors, 1, "verify's failure is counted")
  })
})
