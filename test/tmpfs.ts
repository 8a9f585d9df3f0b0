import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before } from 'node:test'

/** A real 256 KiB tmpfs for a suite, mounted in `before()` at a unique mount point and
 *  unmounted in `after()`. Tests call `skipped(t)` first: mounting needs root, and a refusal
 *  skips with its reason. */
export interface SmallTmpfs {
  /** The mount point. */
  readonly dir: string
  /** Why mounting was refused, or undefined once mounted. */
  readonly refusal: string | undefined
  /** Fills the tmpfs with a filler file, then gives back `free` bytes of it; returns the filler. */
  leaveFree(free: number): string
}

export function smallTmpfs(label: string): SmallTmpfs {
  const state = { dir: '', refusal: 'not mounted yet' as string | undefined }
  before(() => {
    state.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`))
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', state.dir], { encoding: 'utf8' })
    state.refusal = r.status === 0 ? undefined : `mount -t tmpfs refused: ${(r.stderr || r.error?.message || '').trim()}`
  })
  after(() => {
    if (state.refusal === undefined) spawnSync('umount', [state.dir])
    fs.rmSync(state.dir, { recursive: true, force: true })
  })
  return {
    get dir() {
      return state.dir
    },
    get refusal() {
      return state.refusal
    },
    leaveFree(free: number): string {
      const filler = path.join(state.dir, 'filler')
      const fd = fs.openSync(filler, 'w')
      const block = Buffer.alloc(4096, 1)
      let size = 0
      try {
        for (;;) size += fs.writeSync(fd, block)
      } catch (error) {
        if ((error as { code?: string }).code !== 'ENOSPC') throw error
      }
      fs.ftruncateSync(fd, size - free)
      fs.closeSync(fd)
      return filler
    },
  }
}
