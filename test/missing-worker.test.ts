/**
 * A build whose worker files are missing (a bundler that copied only the library's main file,
 * say): the piscina pools cannot start a thread. That must never bring the host down (an
 * unhandled 'error' event on a pool did): sealed streams are then sealed and opened inline, and
 * maintenance calls fail with an error the caller can catch.
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
import crypto from 'node:crypto'
import fs from 'node:fs'
const { Larder } = await import(process.argv[2])
const dir = fs.mkdtempSync(process.argv[3])
const cache = await Larder.open({ dir, maintenance: false, encryption: { keys: { a: crypto.randomBytes(32) }, activeKey: 'a' } })
const data = crypto.randomBytes(3 * 1024 * 1024)
for (let i = 0; i < 6; i++) {
  await cache.setStream('s', [data])
  await new Promise((resolve) => setTimeout(resolve, 100))
}
const chunks = []
for await (const chunk of await cache.getStream('s')) chunks.push(chunk)
const maintenance = await cache.verify().then(() => 'verified', (error) => 'rejected: ' + (error.code ?? error.message))
const { dropped, errors, corrupt } = await cache.stats()
console.log(JSON.stringify({ equal: Buffer.concat(chunks).equals(data), maintenance, dropped, errors, corrupt }))
await cache.close()
`

describe('worker files missing from the build', () => {
  test('sealed streams still round trip inline, maintenance rejects, and the process lives', async () => {
    const built = path.join(root, 'dist', 'index.js')
    assert.ok(fs.existsSync(built), 'run `npm run build` first')
    fs.copyFileSync(built, path.join(lonely, 'index.js'))
    const script = path.join(lonely, 'child.mjs')
    fs.writeFileSync(script, CHILD)
    const tmp = path.join(fs.mkdtempSync(path.join(path.dirname(lonely), '.cache-larder-dirs-')), 'c-')
    after(() => fs.rmSync(path.dirname(tmp), { recursive: true, force: true }))
    const { stdout } = await promisify(execFile)(process.execPath, [script, path.join(lonely, 'index.js'), tmp], { timeout: 60_000 })
    const result = JSON.parse(stdout.trim()) as { equal: boolean; maintenance: string; dropped: number; errors: number; corrupt: number }
    assert.equal(result.equal, true, 'the stream round trips')
    assert.deepEqual({ dropped: result.dropped, corrupt: result.corrupt }, { dropped: 0, corrupt: 0 }, 'no write dropped')
    assert.match(result.maintenance, /^rejected/, 'verify rejects (no worker to run it), rather than never answering')
    assert.equal(result.errors, 1, "verify's failure is counted")
  })
})
