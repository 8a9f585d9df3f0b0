/**
 * Never touch what is not ours: a symlink (or a foreign file) planted anywhere inside the
 * cache directory — an entry, a partition, the namespace, `v1/`, the tags directory, a tag
 * stamp, every meta file and meta directory, temp names, the trash — never makes larder
 * create, write, rename or delete anything outside the directory. A canary tree outside the
 * cache, built to look like every directory of ours, must stay byte-identical (nothing added,
 * nothing changed, nothing removed) after set, setMany, setStream, invalidateTags, delete,
 * clear, prune, verify and close. Runs as root in CI, where following a link would succeed.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { Larder, type LarderOptions } from '../src/index.ts'
import { hasher, loadHasher } from '../src/format/checksum.ts'
import { compressionIds } from '../src/format/compression.ts'
import { compressEntry } from '../src/maintenance/compress-entries.ts'
import { removeStaleTemp } from '../src/maintenance/entry-scan.ts'
import { disk } from '../src/store/disk.ts'
import { Layout } from '../src/store/layout.ts'
import { OwnedTree } from '../src/store/owned-tree.ts'
import { tempDir } from './helpers.ts'

await loadHasher()
/** The number the next temp name of this process carries (0 before the exclusive-temp writer existed). */
let tempSequence = 0
const atomicWrite = (await import('../src/store/atomic-write.ts').catch(() => undefined)) as { tempSequence?: () => number } | undefined
const nextTemp = (): number => atomicWrite?.tempSequence?.() ?? 0

interface Snapshot {
  [rel: string]: string
}

/** Every path under `dir`, never following links: type, mode, size, mtime, content digest. */
function snapshot(dir: string): Snapshot {
  const out: Snapshot = {}
  const walk = (at: string): void => {
    const s = fs.lstatSync(at)
    const rel = path.relative(dir, at) || '.'
    if (s.isDirectory()) {
      out[rel] = `dir ${(s.mode & 0o7777).toString(8)} ${s.mtimeMs}`
      for (const name of fs.readdirSync(at)) walk(path.join(at, name))
    } else if (s.isSymbolicLink()) {
      out[rel] = `link -> ${fs.readlinkSync(at)}`
    } else {
      out[rel] =
        `file ${(s.mode & 0o7777).toString(8)} ${s.size} ${s.mtimeMs} ${createHash('sha256').update(fs.readFileSync(at)).digest('hex')}`
    }
  }
  walk(dir)
  return out
}

const OPTIONS: LarderOptions = { maxEntries: 1000, evictionPolicy: 'lfu', maintenance: { interval: 0, tempMaxAge: '1s' } }

/**
 * A directory outside the cache that looks like every directory of ours: files named like an
 * entry, a temp file (old), meta files, hit logs, a trash tree, a `default/` namespace with a
 * partition. Whatever a planted link points larder at, there is something to damage.
 */
function makeCanary(layout: Layout, key: string): { root: string; victim: string; project: string } {
  const root = tempDir('larder-outside')
  const victim = path.join(root, 'victim.txt')
  fs.writeFileSync(victim, "the user's precious file\n")
  const project = path.join(root, 'project')
  const hash = layout.hashKey(key)
  const old = new Date(Date.now() - 86_400_000)
  const files: Record<string, string> = {
    [hash]: 'not an entry, but named like one',
    [`${hash}.12345`]: 'named like a stray temp file',
    [`${hash}.1-1.tmp`]: 'named like a stray stream temp file',
    'budget.json': '{"maxEntries":1}',
    base: '{"epoch":0,"entries":5,"bytes":5,"at":1}',
    epoch: '0',
    'total.json': '{}',
    '1.abc.json': '{"hits":1}',
    '1.abc.log': `${hash} 5\n`,
    'default/keep.txt': 'a project file',
    [`default/${hash.slice(0, 2)}/${hash}`]: 'named like an entry, in a namespace-like folder',
    '.trash-1-1-x/inside.txt': 'named like a trash tree',
  }
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(project, rel)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, text)
    fs.utimesSync(file, old, old)
  }
  return { root, victim, project }
}

type Ctx = { dir: string; layout: Layout; victim: string; project: string }

function replaceWithLink(at: string, target: string): void {
  fs.rmSync(at, { recursive: true, force: true })
  fs.mkdirSync(path.dirname(at), { recursive: true })
  fs.symlinkSync(target, at)
}

const KEY = 'target'
const ns = (c: Ctx): string => c.layout.namespaceDir
const meta = (c: Ctx, ...rest: string[]): string => path.join(c.layout.metaDir, ...rest)

/** Where to plant, and how. */
const PLANTS: Record<string, (c: Ctx) => void> = {
  'an entry file → a file outside': (c) => replaceWithLink(c.layout.entryPath(c.layout.hashKey(KEY)), c.victim),
  'a partition directory → a directory outside': (c) => replaceWithLink(path.dirname(c.layout.entryPath(c.layout.hashKey(KEY))), c.project),
  'the namespace directory → a project': (c) => replaceWithLink(ns(c), c.project),
  'v1/ → a project': (c) => replaceWithLink(path.join(c.dir, 'v1'), c.project),
  'the tags directory → a directory outside': (c) => replaceWithLink(c.layout.tagsDir, c.project),
  'a tag stamp → a file outside': (c) => replaceWithLink(c.layout.tagPath('users'), c.victim),
  'meta/ → a directory outside': (c) => replaceWithLink(c.layout.metaDir, c.project),
  'meta/totals/ → a directory outside': (c) => replaceWithLink(c.layout.totalsDir, c.project),
  'meta/totals/base and epoch → a file outside': (c) => {
    replaceWithLink(meta(c, 'totals', 'base'), c.victim)
    replaceWithLink(meta(c, 'totals', 'epoch'), c.victim)
  },
  'every meta/totals delta → a file outside': (c) => {
    for (const name of fs.readdirSync(c.layout.totalsDir)) if (/^\d+\.\d+\./.test(name)) replaceWithLink(meta(c, 'totals', name), c.victim)
  },
  'meta/budget.json → a file outside': (c) => replaceWithLink(meta(c, 'budget.json'), c.victim),
  'meta/activity/ → a directory outside': (c) => replaceWithLink(c.layout.activityDir, c.project),
  'meta/activity/total.json → a file outside': (c) => replaceWithLink(path.join(c.layout.activityDir, 'total.json'), c.victim),
  'an activity record → a file outside': (c) => {
    const records = fs.readdirSync(c.layout.activityDir).filter((n) => n.endsWith('.json') && n !== 'total.json')
    replaceWithLink(path.join(c.layout.activityDir, records[0]!), c.victim)
  },
  'meta/hits/ → a directory outside': (c) => replaceWithLink(c.layout.hitsDir, c.project),
  'every hit log → a file outside': (c) => {
    for (const name of fs.readdirSync(c.layout.hitsDir)) replaceWithLink(path.join(c.layout.hitsDir, name), c.victim)
  },
  'the maintenance lock → a directory outside': (c) => replaceWithLink(meta(c, 'maintenance.lock'), c.project),
  'the temp names of the next writes → a file outside': (c) => {
    // Temp names are `<name>.<pid>-<n>.tmp` with one counter per process: plant the next ones.
    const from = tempSequence
    const names = [
      c.layout.entryPath(c.layout.hashKey(KEY)),
      meta(c, 'totals', 'base'),
      meta(c, 'totals', 'epoch'),
      meta(c, 'budget.json'),
      c.layout.tagPath('users'),
    ]
    for (const name of names) for (let n = from; n <= from + 100; n++) fs.symlinkSync(c.victim, `${name}.${process.pid}-${n}.tmp`)
  },
  'an old clear() trash → a directory outside': (c) => replaceWithLink(path.join(c.dir, 'v1', '.trash-1-1-planted'), c.project),
  'a directory holding a link, where an entry should be': (c) => {
    const entry = c.layout.entryPath(c.layout.hashKey(KEY))
    fs.rmSync(entry, { force: true })
    fs.mkdirSync(entry)
    fs.symlinkSync(c.victim, path.join(entry, 'link'))
    fs.symlinkSync(c.project, path.join(entry, 'dirlink'))
  },
  'CACHEDIR.TAG → a file outside': (c) => replaceWithLink(path.join(c.dir, 'CACHEDIR.TAG'), c.victim),
}

/** What an application does to the cache; each runs against every plant, planted after the
 *  cache opened (open() repairs what it meets, so a plant before it would test open()). */
const OPERATIONS: Record<string, (cache: Larder) => Promise<unknown>> = {
  set: async (cache) => {
    await cache.set(KEY, { small: true }, { tags: ['users'] })
    await cache.set(KEY, randomBytes(70_000))
  },
  setMany: (cache) =>
    cache.setMany([
      { key: KEY, value: 1 },
      { key: 'other', value: 2 },
    ]),
  setStream: (cache) => cache.setStream(KEY, [randomBytes(3000), randomBytes(3000)]),
  invalidateTags: (cache) => cache.invalidateTags(['users', 'old-tag']),
  delete: async (cache) => {
    await cache.delete(KEY)
    await cache.delete('other')
  },
  clear: (cache) => cache.clear(),
  prune: (cache) => cache.prune({ maxEntries: 1 }).catch((e: unknown) => e),
  verify: (cache) => cache.verify().catch((e: unknown) => e),
  close: async () => {},
  /** Planted before the cache opens: what open() writes (CACHEDIR.TAG, the budget, the namespace). */
  open: async () => {},
}

/** A cache with something of every kind on disk: entries, a stream, stamps, totals, activity, hit logs, budget. */
async function populate(dir: string): Promise<void> {
  const cache = await Larder.open({ dir, ...OPTIONS })
  await cache.set(KEY, { v: 1 }, { tags: ['users'] })
  await cache.set('other', { v: 2 })
  await cache.setStream('big', [randomBytes(5000)])
  await cache.invalidateTags(['old-tag', 'users'])
  await cache.set(KEY, { v: 1 }, { tags: ['users'] })
  await cache.get(KEY)
  await cache.get('other')
  await cache.close()
}

/**
 * While a write to `file` is on its way (its temp file made): its partition moved aside and a
 * link to `outside` put in its place, `outside` holding files named like the temp file and like
 * the entry. What `outside` then holds.
 */
function swapPartitionForLink(layout: Layout, file: string, outside: string): Snapshot {
  const partition = path.dirname(file)
  const temp = fs.readdirSync(partition).find((name) => name.endsWith('.tmp'))!
  fs.writeFileSync(path.join(outside, temp), 'named like the temp file')
  fs.writeFileSync(path.join(outside, path.basename(file)), 'named like the entry')
  fs.renameSync(partition, path.join(layout.namespaceDir, 'moved'))
  fs.symlinkSync(outside, partition)
  return snapshot(outside)
}

/** Sets KEY to `value` while a hook of `disk` plants a link, then `restore`s the hook. */
async function setThenRestore(cache: Larder, value: Buffer, restore: () => void): Promise<void> {
  try {
    await cache.set(KEY, value)
  } finally {
    restore()
  }
}

/** The link was planted, and the directory it led to is as it was then. */
function assertUnchanged(outside: string, planted: Snapshot | undefined): void {
  assert.ok(planted !== undefined, 'planted')
  assert.deepEqual(snapshot(outside), planted, 'the directory outside changed')
}

describe('planted symlinks are never followed', () => {
  for (const [plant, place] of Object.entries(PLANTS)) {
    test(`${plant}: nothing outside the cache is created, written, renamed or deleted`, { timeout: 120_000 }, async () => {
      for (const [operation, run] of Object.entries(OPERATIONS)) {
        const dir = path.join(tempDir(), 'cache')
        const layout = new Layout(dir, '')
        await populate(dir)
        const canary = makeCanary(layout, KEY)
        const before = snapshot(canary.root)
        const plantNow = (): void => {
          tempSequence = nextTemp()
          place({ dir, layout, victim: canary.victim, project: canary.project })
        }
        // Planted while the cache is open (as an attacker would), except for `open` itself.
        if (operation === 'open') plantNow()
        const cache = await Larder.open({ dir, ...OPTIONS, maxEntries: 999 })
        if (operation !== 'open') plantNow()
        await run(cache)
        // The cache still works: what was planted was treated as foreign and replaced.
        await cache.set('after', 'ok')
        assert.equal(await cache.get('after'), 'ok', `${plant} / ${operation}: the cache works afterwards`)
        await cache.close()
        assert.deepEqual(snapshot(canary.root), before, `${plant} / ${operation}: the tree outside changed`)
      }
    })
  }

  test('a set over a planted entry link stores the value in a real file and leaves the target alone', async () => {
    const dir = path.join(tempDir(), 'cache')
    const layout = new Layout(dir, '')
    await populate(dir)
    const canary = makeCanary(layout, KEY)
    const file = layout.entryPath(hasher().h64ToString(KEY))
    replaceWithLink(file, canary.victim)
    const cache = await Larder.open({ dir, ...OPTIONS })
    await cache.set(KEY, 'mine')
    assert.equal(await cache.get(KEY), 'mine')
    assert.ok(fs.lstatSync(file).isFile(), 'a real file now')
    assert.equal(fs.readFileSync(canary.victim, 'utf8'), "the user's precious file\n")
    await cache.close()
  })

  test('a hit read through a link planted in place of its partition never sets the mtime of the file outside', async () => {
    const dir = path.join(tempDir(), 'cache')
    const layout = new Layout(dir, '')
    // touchAfter 0: every disk hit touches its file at once (as a hit on a file unused for a minute does).
    const cache = await Larder.open({ dir, memory: false, evictionPolicy: 'lru', maintenance: { interval: 0, touchAfter: 0 } })
    await cache.set(KEY, 'mine')
    const file = layout.entryPath(layout.hashKey(KEY))
    const outside = path.join(tempDir('larder-outside'), 'partition')
    fs.cpSync(path.dirname(file), outside, { recursive: true })
    const copy = path.join(outside, path.basename(file))
    const old = new Date(Date.now() - 86_400_000)
    fs.utimesSync(copy, old, old)
    replaceWithLink(path.dirname(file), outside)
    await cache.get(KEY)
    await cache.get(KEY)
    await cache.close()
    assert.ok(Math.abs(fs.statSync(copy).mtimeMs - old.getTime()) < 1000, 'the file outside the cache was touched')
  })

  test('a partition replaced by a link to a directory outside while a stream flows: the stream renames and removes nothing there', async () => {
    const dir = path.join(tempDir(), 'cache')
    const layout = new Layout(dir, '')
    const cache = await Larder.open({ dir, ...OPTIONS })
    const file = layout.entryPath(layout.hashKey(KEY))
    const partition = path.dirname(file)
    const outside = tempDir('larder-outside')
    let planted: Snapshot | undefined
    const source = function* (): Generator<Buffer> {
      yield randomBytes(100_000)
      planted = swapPartitionForLink(layout, file, outside) // once the temp file exists
      yield randomBytes(100_000)
    }
    await cache.setStream(KEY, source())
    assert.ok(planted !== undefined, 'planted')
    await cache.set(KEY, 'mine') // the link is removed and a real partition made
    assert.ok(fs.lstatSync(partition).isDirectory(), 'a real partition again')
    await cache.close()
    assert.deepEqual(snapshot(outside), planted, 'the directory outside changed')
  })

  test('a partition replaced by a link to a directory outside while a large value is written: the value lands in a real partition, nothing outside changes', async () => {
    const dir = path.join(tempDir(), 'cache')
    const layout = new Layout(dir, '')
    const cache = await Larder.open({ dir, ...OPTIONS, compression: 'none', memory: false })
    await cache.set(KEY, 'first')
    const file = layout.entryPath(layout.hashKey(KEY))
    const partition = path.dirname(file)
    const outside = tempDir('larder-outside')
    let planted: Snapshot | undefined
    const write = disk.write
    // Planted as the write through the thread pool begins, when its temp file exists.
    disk.write = (handle, bytes, offset, length) => {
      planted ??= swapPartitionForLink(layout, file, outside)
      return write(handle, bytes, offset, length)
    }
    const value = randomBytes(3 << 20)
    await setThenRestore(cache, value, () => (disk.write = write))
    assertUnchanged(outside, planted)
    assert.ok(fs.lstatSync(partition).isDirectory(), 'a real partition again')
    assert.deepEqual(await cache.get(KEY), value)
    await cache.close()
  })

  test('a partition replaced by a link to a directory outside while a value compresses beside its temp file made ahead: letting that temp go removes nothing there', async () => {
    const dir = path.join(tempDir(), 'cache')
    const layout = new Layout(dir, '')
    const cache = await Larder.open({ dir, ...OPTIONS, memory: false })
    await cache.set(KEY, 'first')
    const file = layout.entryPath(layout.hashKey(KEY))
    const outside = tempDir('larder-outside')
    let planted: Snapshot | undefined
    const openFd = disk.openFd
    // Planted once the temp made ahead (through the thread pool, while the value compresses)
    // exists. The value does not compress: over 64 KiB, it is written otherwise, and that
    // temp let go (discardTemp), by path.
    disk.openFd = async (name, flags, mode) => {
      const fd = await openFd(name, flags, mode)
      if (name.endsWith('.tmp')) planted ??= swapPartitionForLink(layout, file, outside)
      return fd
    }
    const value = randomBytes(100 * 1024)
    await setThenRestore(cache, value, () => (disk.openFd = openFd))
    assertUnchanged(outside, planted)
    assert.deepEqual(await cache.get(KEY), value)
    await cache.close()
  })

  test('a partition replaced by a link to a directory outside while an entry is rewritten compressed: nothing there is renamed, linked or removed', async () => {
    const dir = path.join(tempDir(), 'cache')
    const layout = new Layout(dir, '')
    const cache = await Larder.open({ dir, ...OPTIONS, compression: 'none', compressLater: false })
    await cache.set(KEY, 'compressible '.repeat(2000))
    const { createdAt } = (await cache.info(KEY))!
    await cache.close()
    const file = layout.entryPath(layout.hashKey(KEY))
    const outside = tempDir('larder-outside')
    let planted: Snapshot | undefined
    const writeSync = disk.writeSync
    // Planted as the compressed rewrite is written into its temp file (compress-later's worker
    // and a prune's scan do this; rekey swaps its rewrite in the same way).
    disk.writeSync = (...args) => {
      planted ??= swapPartitionForLink(layout, file, outside)
      return writeSync(...args)
    }
    try {
      compressEntry(new OwnedTree(dir), file, createdAt, { compression: compressionIds.gzip, level: 6, maxFileBytes: 1 << 30 })
    } finally {
      disk.writeSync = writeSync
    }
    assert.ok(planted !== undefined, 'planted')
    assert.deepEqual(snapshot(outside), planted, 'the directory outside changed')
  })

  test('a stray temp file is never removed through a link put in place of its partition after the sweep listed it', () => {
    const dir = path.join(tempDir(), 'cache')
    const layout = new Layout(dir, '')
    const file = layout.entryPath(layout.hashKey(KEY))
    const outside = tempDir('larder-outside')
    const temp = `${path.basename(file)}.123-1.tmp`
    fs.writeFileSync(path.join(outside, temp), 'named like a stray temp file')
    const old = new Date(Date.now() - 86_400_000)
    fs.utimesSync(path.join(outside, temp), old, old)
    fs.mkdirSync(path.dirname(path.dirname(file)), { recursive: true })
    fs.symlinkSync(outside, path.dirname(file)) // as a prune's worker goes from its listing to the removal
    assert.equal(removeStaleTemp(path.join(path.dirname(file), temp), Date.now(), 1000, false), undefined)
    assert.ok(fs.existsSync(path.join(outside, temp)), 'the file outside the cache was removed')
  })

  test('a link planted where a directory of ours belongs is removed (the link, not its target) and counted as corrupt', async () => {
    const dir = path.join(tempDir(), 'cache')
    const layout = new Layout(dir, '')
    await populate(dir)
    const canary = makeCanary(layout, KEY)
    const partition = path.dirname(layout.entryPath(layout.hashKey(KEY)))
    replaceWithLink(partition, canary.project)
    const cache = await Larder.open({ dir, ...OPTIONS })
    const reports: string[] = []
    cache.on('corrupt', (r) => reports.push(r.file))
    await cache.set(KEY, 'mine')
    assert.ok(fs.lstatSync(partition).isDirectory(), 'a real partition directory again')
    assert.equal(await cache.get(KEY), 'mine')
    assert.ok((await cache.stats()).corrupt >= 1, 'counted as corrupt')
    assert.ok(reports.includes(partition), reports.join(', '))
    assert.ok(fs.existsSync(path.join(canary.project, 'default', 'keep.txt')), 'the target is untouched')
    await cache.close()
  })
})
