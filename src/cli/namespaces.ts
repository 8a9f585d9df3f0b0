import { loadHasher } from '../format/checksum.js'
import { RunningTotals } from '../maintenance/totals.js'
import { Layout } from '../store/layout.js'
import { namespaceDirectories, readNamespaceName } from '../store/namespace-name.js'

/** One namespace of a cache directory, as `larder stats` lists them. */
export interface NamespaceSummary {
  /** Its name (`''` the default namespace), or null if no open recorded it (an older larder). */
  name: string | null
  /** Its directory under `v1/` (`default`, `ns-<hash>`). */
  directory: string
  /** Entries and bytes from the running totals (a few small files each, no walk). */
  entries: number
  size: number
}

/** Every namespace of the cache in `dir`, read-only: nothing is created or written. */
export async function namespacesOf(dir: string): Promise<NamespaceSummary[]> {
  await loadHasher()
  const versionDir = new Layout(dir, '').versionDir
  return namespaceDirectories(versionDir).map((directory) => {
    const layout = new Layout(dir, '', false, directory)
    let totals = { entries: 0, bytes: 0 }
    try {
      totals = new RunningTotals(layout).read()
    } catch {
      // unreadable totals (a damaged file): listed with zeros; `verify` repairs them
    }
    return { name: readNamespaceName(layout) ?? null, directory, entries: totals.entries, size: totals.bytes }
  })
}

/** How a namespace is shown to people. */
export function namespaceLabel(n: NamespaceSummary): string {
  if (n.name === '') return '(default)'
  return n.name ?? `${n.directory} (name not recorded)`
}
