import path from 'node:path'
import { writeFileAtomicSync } from './atomic-write.js'
import { disk } from './disk.js'
import type { Layout } from './layout.js'
import { readSmallFileSync } from './small-file.js'

/**
 * `meta/name`: each namespace's own name, written when a cache opens (by an application or
 * by `larder serve`, whose namespaces are `turbo:<team>`, `nx`, `api`…). A namespace lives in
 * `ns-<xxhash64(name)>`, which tells an operator nothing; with this record `larder stats`
 * lists every namespace of a directory by name, with its entries and size. Written only when
 * missing or different (one small read per open); read-only opens record nothing. A name is
 * at most 256 bytes of UTF-8 (options.ts), well within what a small file may hold.
 */
/** A namespace directory under `v1/`. */
export const NAMESPACE_DIRECTORY = /^(default|ns-[0-9a-f]{16})$/

function nameFile(layout: Layout): string {
  return path.join(layout.metaDir, 'name')
}

export function recordNamespaceName(layout: Layout, namespace: string): void {
  const file = nameFile(layout)
  try {
    if (readSmallFileSync(file) === namespace) return
  } catch {
    // damaged or foreign: written anew below (the write replaces whatever is at the name)
  }
  try {
    writeFileAtomicSync(layout.tree, file, Buffer.from(namespace, 'utf8'))
  } catch {
    // a failing disk: the name is for operators only; the next open records it
  }
}

/** The recorded name (`''` for the default namespace), or undefined if none was recorded
 *  (a namespace last opened by a version of larder before this record) or it is unreadable. */
export function readNamespaceName(layout: Layout): string | undefined {
  if (path.basename(layout.namespaceDir) === 'default') return ''
  try {
    return readSmallFileSync(nameFile(layout))
  } catch {
    return undefined
  }
}

/** The namespace directories of a cache (`default`, `ns-…`), real directories only: a link
 *  planted in `v1/` is not followed. */
export function namespaceDirectories(versionDir: string): string[] {
  let names: string[]
  try {
    names = disk.readdirSync(versionDir)
  } catch {
    return []
  }
  return names
    .filter(
      (name) =>
        NAMESPACE_DIRECTORY.test(name) && disk.lstatSync(path.join(versionDir, name), { throwIfNoEntry: false })?.isDirectory() === true,
    )
    .sort()
}
