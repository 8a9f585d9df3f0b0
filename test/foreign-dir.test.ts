/**
 * `Larder.open` writes (and tags with CACHEDIR.TAG) only a directory larder creates, an empty
 * one, or one that is already a larder cache: a folder of the user's own files tagged as a
 * cache is skipped whole by `tar --exclude-caches`, borg and restic. The rule is the CLI's
 * (store/cache-root.ts). A `dir` that is not a directory at all is refused as well.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Larder, type LarderError } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { isLarderCache } from '../src/store/cache-root.ts'
import { listFiles, tempDir } from './helpers.ts'

/** A project folder: package.json and src/main.js. */
function project(): string {
  const dir = path.join(tempDir(), 'proj')
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'package.json'), '{}')
  fs.writeFileSync(path.join(dir, 'src', 'main.js'), '')
  return dir
}

function refusedFor(dir: string, names: RegExp) {
  return (e: LarderError): boolean => {
    assert.equal(e.code, 'ERR_INVALID_OPTION')
    assert.equal(e.field, 'dir')
    assert.ok(e.message.includes(dir), e.message)
    assert.match(e.message, /not a larder cache/)
    assert.match(e.message, names)
    assert.match(e.message, /exclude-caches/)
    return true
  }
}

describe('open() and a directory of the user’s own files', () => {
  test('a project folder is refused, and nothing is written into it (failOpen or not)', async () => {
    const dir = project()
    const before = listFiles(dir).sort()
    await assert.rejects(Larder.open({ dir }), refusedFor(dir, /package\.json, src/))
    await assert.rejects(Larder.open({ dir, failOpen: false }), refusedFor(dir, /package\.json, src/))
    await assert.rejects(Larder.open({ dir, namespace: 'app', memory: true }), { code: 'ERR_INVALID_OPTION' })
    assert.deepEqual(listFiles(dir).sort(), before)
    assert.deepEqual(fs.readdirSync(dir).sort(), ['package.json', 'src'])
  })

  test('a sticky shared directory holding another user’s file is refused (not tagged)', async () => {
    const dir = path.join(tempDir(), 'tmp-like')
    fs.mkdirSync(dir)
    fs.chmodSync(dir, 0o1777)
    fs.writeFileSync(path.join(dir, 'other-users-file'), 'theirs')
    await assert.rejects(Larder.open({ dir }), refusedFor(dir, /other-users-file/))
    assert.deepEqual(fs.readdirSync(dir), ['other-users-file'])
  })

  test('a folder of its own called v1 is not taken for a cache tree', async () => {
    const dir = path.join(tempDir(), 'api')
    fs.mkdirSync(path.join(dir, 'v1'), { recursive: true })
    fs.writeFileSync(path.join(dir, 'v1', 'notes.txt'), 'mine')
    await assert.rejects(Larder.open({ dir }), refusedFor(dir, /v1/))
    assert.deepEqual(fs.readdirSync(dir), ['v1'])
  })

  test('a missing, an empty and a larder directory are used and tagged', async () => {
    const missing = path.join(tempDir(), 'new', 'cache')
    const empty = tempDir()
    for (const dir of [missing, empty]) {
      const cache = await Larder.open({ dir })
      await cache.set('k', 1)
      await cache.close()
      assert.ok(fs.existsSync(path.join(dir, 'CACHEDIR.TAG')), dir)
      const again = await Larder.open({ dir, namespace: 'other' }) // a larder cache now
      assert.equal(await again.get('k'), undefined)
      await again.close()
      const reopened = await Larder.open({ dir })
      assert.equal(await reopened.get('k'), 1)
      await reopened.close()
    }
  })

  test('open() stats the cache directory once for both checks (not a directory; not a cache of its own files)', async () => {
    const dir = tempDir()
    // The stats store/cache-root.ts makes (the owned tree's own checks before each write are
    // another rule's).
    const stats: string[] = []
    const statSync = disk.statSync
    disk.statSync = ((file: string, ...rest: unknown[]) => {
      if (file === dir && new Error().stack!.includes('cache-root')) stats.push(file)
      return (statSync as (...args: unknown[]) => unknown)(file, ...rest)
    }) as typeof disk.statSync
    try {
      const cache = await Larder.open({ dir })
      await cache.close()
    } finally {
      disk.statSync = statSync
    }
    assert.equal(stats.length, 1)
  })

  test("a file system's root given to the cache (an empty lost+found) is used; a lost+found holding files is not", async () => {
    const volume = tempDir()
    fs.mkdirSync(path.join(volume, 'lost+found'))
    const cache = await Larder.open({ dir: volume })
    await cache.set('k', 1)
    await cache.close()
    assert.ok(fs.existsSync(path.join(volume, 'CACHEDIR.TAG')))
    const recovered = tempDir()
    fs.mkdirSync(path.join(recovered, 'lost+found'))
    fs.writeFileSync(path.join(recovered, 'lost+found', '#1234'), 'what fsck found')
    await assert.rejects(
      Larder.open({ dir: recovered }),
      (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && e.message.includes('lost+found'),
    )
    assert.equal(fs.existsSync(path.join(recovered, 'CACHEDIR.TAG')), false)
  })

  test('a cache another process is creating (v1/<ns> made, tag not yet written), or one whose tag was lost, is used', async () => {
    const dir = tempDir()
    const first = await Larder.open({ dir })
    await first.set('k', 1)
    await first.close()
    fs.rmSync(path.join(dir, 'CACHEDIR.TAG'))
    const lost = await Larder.open({ dir })
    assert.equal(await lost.get('k'), 1)
    await lost.close()
    assert.ok(fs.existsSync(path.join(dir, 'CACHEDIR.TAG')), 'tagged again')

    const creating = tempDir()
    fs.mkdirSync(path.join(creating, 'v1', 'default'), { recursive: true, mode: 0o700 })
    const cache = await Larder.open({ dir: creating })
    await cache.close()
  })

  test('a tag cut short by an opener killed between its create and its write is written whole by the next open; another tool’s tag is left', async () => {
    // What a SIGKILL between the tag's exclusive create and its write leaves: the file, empty
    // or holding the start of larder's. The next open found it there and wrote nothing, so the
    // directory stayed "not a larder cache" for the CLI (every command but set refused it) and
    // for backup tools, for good.
    for (const torn of ['', 'Signature: 8a477f', 'Signature: 8a477f597d28d172789f06886806bc55\n# This file']) {
      const dir = tempDir()
      fs.mkdirSync(path.join(dir, 'v1', 'default'), { recursive: true, mode: 0o700 })
      fs.writeFileSync(path.join(dir, 'CACHEDIR.TAG'), torn, { mode: 0o600 })
      const cache = await Larder.open({ dir })
      await cache.close()
      assert.ok(isLarderCache(dir), `a tag of ${torn.length} bytes is written whole`)
      assert.deepEqual(fs.readdirSync(dir).sort(), ['CACHEDIR.TAG', 'v1'], 'nothing else is left in the root')
    }
    const other = tempDir()
    const theirs = 'Signature: 8a477f597d28d172789f06886806bc55\n# made by another tool\n'
    fs.writeFileSync(path.join(other, 'CACHEDIR.TAG'), theirs)
    const cache = await Larder.open({ dir: other })
    await cache.close()
    assert.equal(fs.readFileSync(path.join(other, 'CACHEDIR.TAG'), 'utf8'), theirs)
  })

  test('readOnly writes nothing, so it opens a foreign folder as misses and leaves it untouched', async () => {
    const dir = project()
    const cache = await Larder.open({ dir, readOnly: true })
    assert.equal(await cache.get('k'), undefined)
    await cache.close()
    assert.deepEqual(fs.readdirSync(dir).sort(), ['package.json', 'src'])
  })
})

describe('open() and a dir that is not a directory', () => {
  test('a regular file or a FIFO at dir is refused at open (readOnly too), and left as it was', async () => {
    const base = tempDir()
    const file = path.join(base, 'afile')
    fs.writeFileSync(file, 'hi')
    const fifo = path.join(base, 'afifo')
    execFileSync('mkfifo', [fifo])
    for (const [dir, kind] of [
      [file, /is a file, not a directory/],
      [fifo, /is a FIFO, not a directory/],
    ] as const) {
      for (const options of [{}, { failOpen: false }, { readOnly: true }, { memory: true }]) {
        await assert.rejects(
          Larder.open({ dir, ...options }),
          (e: LarderError) => {
            assert.equal(e.code, 'ERR_INVALID_OPTION')
            assert.equal(e.field, 'dir')
            assert.ok(e.message.includes(dir), e.message)
            assert.match(e.message, kind)
            return true
          },
          `${dir} ${JSON.stringify(options)}`,
        )
      }
    }
    assert.equal(fs.readFileSync(file, 'utf8'), 'hi')
    assert.deepEqual(fs.readdirSync(base).sort(), ['afifo', 'afile'])
  })

  test('a dir whose path goes through a file is refused at open, naming the file', async () => {
    const base = tempDir()
    const file = path.join(base, 'afile')
    fs.writeFileSync(file, 'hi')
    for (const dir of [path.join(file, 'cache'), path.join(file, 'a', 'b')]) {
      for (const options of [{}, { failOpen: false }, { readOnly: true }]) {
        await assert.rejects(
          Larder.open({ dir, ...options }),
          (e: LarderError) => {
            assert.equal(e.code, 'ERR_INVALID_OPTION')
            assert.equal(e.field, 'dir')
            assert.ok(e.message.includes(`under ${file}, which is a file`), e.message)
            return true
          },
          `${dir} ${JSON.stringify(options)}`,
        )
      }
    }
    assert.equal(fs.readFileSync(file, 'utf8'), 'hi')
  })
})
