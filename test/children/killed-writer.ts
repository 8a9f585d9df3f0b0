/**
 * A writer killed at the worst moment of a change, for test/killed-writer.test.ts:
 * `killed-writer.ts [--pause=<gate dir>] <dir> set|delete|stream <key> [value]` makes the
 * change, and the moment its entry file has been renamed into place (or unlinked) the process
 * SIGKILLs itself, before any step after that syscall: what a kill between a change and the
 * record after it leaves. `killed-writer.ts <dir> clear -` is killed once its clear has moved
 * one partition into the trash (the others not yet). With `--pause`, it stops just before that syscall (its record before
 * the change written), creates `<gate dir>/paused`, and goes on once `<gate dir>/go` exists;
 * with `--survive` as well, it is not killed after the syscall: it finishes the change and exits.
 */
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { Larder } from '../../src/index.ts'
import { disk } from '../../src/store/disk.ts'

const args = process.argv.slice(2)
const gate = args[0]?.startsWith('--pause=') === true ? args.shift()!.slice('--pause='.length) : undefined
const survive = args[0] === '--survive' && args.shift() !== undefined
const [dir, op, key, value] = args as [string, 'set' | 'delete' | 'stream' | 'clear', string, string | undefined]
/** An entry file: `<pp>/<16 hex>` in the namespace (not meta/, tags/ or a temp file). */
const isEntry = (file: string): boolean => /\/[0-9a-f]{2}\/[0-9a-f]{16}$/.test(file)
const die = (): void => {
  if (survive) return
  process.kill(process.pid, 'SIGKILL')
  throw new Error('not reached')
}
/** Blocks (the whole process, as a descheduled writer is) until the test lets it go on. */
const pause = (): void => {
  if (gate === undefined) return
  fs.writeFileSync(path.join(gate, 'paused'), '')
  const nap = new Int32Array(new SharedArrayBuffer(4))
  while (!fs.existsSync(path.join(gate, 'go'))) Atomics.wait(nap, 0, 0, 10)
}
const { renameSync, unlinkSync, rename } = disk
disk.renameSync = (from, to) => {
  if (isEntry(String(to))) pause()
  renameSync(from, to)
  if (isEntry(String(to))) die()
}
disk.unlinkSync = (file) => {
  if (isEntry(String(file))) pause()
  unlinkSync(file)
  if (isEntry(String(file))) die()
}
/** A partition moved into a clear's trash: `.trash-…/<pp>`. */
const isTrashed = (file: string): boolean => /\/\.trash-[^/]+\/[0-9a-f]{2}$/.test(file)
disk.rename = async (from, to) => {
  if (isEntry(String(to))) pause()
  await rename(from, to)
  if (isEntry(String(to)) || isTrashed(String(to))) die()
}
const cache = await Larder.open({ dir })
if (op === 'set') await cache.set(key, value)
else if (op === 'stream') await cache.setStream(key, Readable.from([Buffer.from(value ?? '')]))
else if (op === 'clear') await cache.clear()
else await cache.delete(key)
await cache.close()
process.exit(survive ? 0 : 3) // killed: the change's syscall never came, and the test fails on this exit code
