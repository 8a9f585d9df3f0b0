import fs from 'node:fs'
import path from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { layerOptions } from '../config/layered-options.js'
import { isPlainObject, setPath, type OptionTree } from '../config/option-paths.js'
import { OPTION_ROWS } from '../config/option-table.js'
import { valueOf } from '../facade/reconfigure.js'
import { parseDuration, parseSize, resolveOptions } from '../options.js'
import type { Namespaces } from './namespaces.js'
import { SERVE_DEFAULTS, type ServeOptions } from './options.js'

/** The serve flags that are also cache options: given on the command line, they win over the
 *  config file. */
export interface CacheFlags {
  maxSize?: number | undefined
  /** Seconds, as `--default-ttl` takes it. */
  defaultTtl?: number | undefined
  memoryEntries?: number | undefined
}

export type ConfiguredServe = Pick<ServeOptions, 'maxSize' | 'defaultTtl' | 'memoryEntries' | 'cacheOptions'> & {
  configFile: string | undefined
}

/**
 * What the config file and the `LARDER_…` variables say for the server's namespaces, validated
 * (with their source named: `larder.config.json: maxSize: …`) by the library's own layering,
 * with the command line's flags over them. `dir` and `namespace` are the server's own.
 */
export async function configuredServe(dir: string, flags: CacheFlags, cwd = process.cwd()): Promise<ConfiguredServe> {
  const layered = await layerOptions({ dir, config: { cwd } })
  const { dir: _dir, namespace: _namespace, maxSize, defaultTtl, memory, ...rest } = layered.input
  const memoryFields = isPlainObject(memory) ? { ...memory } : undefined
  const maxEntries = memoryFields?.maxEntries
  delete memoryFields?.maxEntries
  const cacheOptions: OptionTree = { ...rest, ...(memoryFields === undefined ? {} : { memory: memoryFields }) }
  return {
    configFile: layered.configFile,
    maxSize: flags.maxSize ?? (maxSize === undefined ? undefined : parseSize(maxSize, 'maxSize')),
    defaultTtl:
      flags.defaultTtl !== undefined
        ? flags.defaultTtl * 1000
        : defaultTtl !== undefined
          ? parseDuration(defaultTtl, 'defaultTtl')
          : SERVE_DEFAULTS.defaultTtl,
    memoryEntries:
      flags.memoryEntries ?? (typeof maxEntries === 'number' ? maxEntries : memory === false ? 0 : SERVE_DEFAULTS.memoryEntries),
    cacheOptions: cacheOptions,
  }
}

/**
 * Brings every open namespace to the options it would open with now (after `options` took the
 * reloaded configuration): what may change live is applied with `configure()`, one line per
 * change; what may not is refused, one line per option naming it, and the namespace keeps
 * running as it was. Lines show option names and values, never a token or a Redis URL (the
 * Redis options cannot change live, so they are only ever named).
 */
export async function applyToNamespaces(namespaces: Namespaces, report: (line: string) => void): Promise<void> {
  for (const { name, protocol, cache } of await namespaces.all()) {
    let wanted
    try {
      wanted = resolveOptions(namespaces.optionsOf(name, protocol))
    } catch (error) {
      report(`config ${name}: not applied: ${(error as Error).message}`)
      continue
    }
    const partial: OptionTree = {}
    const refused: string[] = []
    for (const row of OPTION_ROWS) {
      if (row.path === 'profile') continue
      const want = valueOf(wanted, row)
      if (isDeepStrictEqual(want, valueOf(cache.options, row))) continue
      // A field of a group that cannot change (memory turned off): the group stays as it was,
      // fields and all (sent, `undefined` would take the field back to its default).
      if (refused.some((group) => row.path.startsWith(`${group}.`))) continue
      if (!row.live) refused.push(row.path)
      else setPath(partial, row.path, row.path === 'maintenance' ? (want === true ? {} : false) : want)
    }
    try {
      for (const change of await cache.configure(partial))
        report(`config ${name}: ${change.field} ${JSON.stringify(change.from) ?? 'unset'} → ${JSON.stringify(change.to) ?? 'unset'}`)
    } catch (error) {
      report(`config ${name}: not applied: ${(error as Error).message}`)
    }
    for (const field of refused)
      report(`config ${name}: ${field} cannot change while the server runs; restart to apply it (kept as it was)`)
  }
}

/** Calls `changed` once the config file has been changed and left alone for DEBOUNCE_MS
 *  (editors write a file in several steps, or replace it: the directory is watched). A file
 *  reached through symlinks the directory swaps, as Kubernetes mounts a Secret or ConfigMap
 *  (`tokens` → `..data/tokens`, `..data` replaced by a rename), changes without an event under
 *  its own name: any other event in the directory is a change when the file it names is not
 *  the one seen before (device, inode, size, times). */
export function watchConfigFile(file: string, changed: () => void): { close(): void } {
  const DEBOUNCE_MS = 150
  let timer: NodeJS.Timeout | undefined
  let named = false
  let seen = identity(file)
  const settled = (): void => {
    const now = identity(file)
    const moved = now !== seen
    seen = now
    if (named || moved) changed()
    named = false
  }
  const fire = (): void => {
    timer = undefined
    settled()
  }
  const watcher = fs.watch(path.dirname(file), (_event, name) => {
    if (name === null || name === path.basename(file)) {
      named = true
      clearTimeout(timer) // the file itself is being written: wait until it is quiet
      timer = setTimeout(fire, DEBOUNCE_MS)
    } else if (timer === undefined) {
      // Another file (a `..data` swap, or a busy log beside it): a look once DEBOUNCE_MS on,
      // never pushed back by the next such event, or a directory that never rests would
      // keep the change from ever being applied.
      timer = setTimeout(fire, DEBOUNCE_MS)
    }
  })
  watcher.on('error', () => {}) // the directory went away: no more reloads from changes; SIGHUP still works
  watcher.unref()
  return {
    close() {
      clearTimeout(timer)
      watcher.close()
    },
  }
}

/** What `file` now is, through any symlinks: '' when it cannot be seen. */
function identity(file: string): string {
  try {
    const stat = fs.statSync(file, { bigint: true })
    return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`
  } catch {
    return ''
  }
}
