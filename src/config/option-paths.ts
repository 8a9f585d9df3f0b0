import { OPTION_GROUPS } from './option-table.js'

/** Options as a plain tree, before validation: what one source (a call, the environment, a
 *  file, a profile) says. */
export type OptionTree = Record<string, unknown>

export function isPlainObject(value: unknown): value is OptionTree {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value) as unknown
  return proto === Object.prototype || proto === null
}

/** The value at `path` (`'memory.maxEntries'`), or undefined. A Redis URL given as a string
 *  is `redis.url`. */
export function getPath(tree: OptionTree, path: string): unknown {
  let node: unknown = tree
  for (const part of path.split('.')) {
    if (typeof node === 'string' && part === 'url') return node
    if (!isPlainObject(node) || !Object.hasOwn(node, part)) return undefined
    node = node[part]
  }
  return node
}

/** Sets `path` in `tree`, making the groups on the way. A group switched off in the same
 *  source (`memory: false`) stays off, and false is returned (the value is not in force); one
 *  switched on (`memory: true`) takes the field. */
export function setPath(tree: OptionTree, path: string, value: unknown): boolean {
  const parts = path.split('.')
  let node = tree
  for (const part of parts.slice(0, -1)) {
    const next = node[part]
    if (next === false) return false
    if (!isPlainObject(next)) node[part] = typeof next === 'string' && part === 'redis' ? { url: next } : {}
    node = node[part] as OptionTree
  }
  node[parts.at(-1)!] = value
  return true
}

/**
 * `higher` over `lower`, one option at a time: a group (`memory`, `breaker`, `redis`…) merges
 * field by field, any other value replaces. A group turned on (`memory: true`) over its fields
 * keeps them; `false` turns it off whatever lies below. Values with behaviour (a serializer, a
 * client) are taken whole, never merged. `undefinedRemoves` (configure()): an option given as
 * `undefined` is removed, so it returns to its default.
 */
export function mergeOptions(lower: OptionTree, higher: OptionTree, undefinedRemoves = false, prefix = ''): OptionTree {
  const merged: OptionTree = { ...lower }
  for (const [name, value] of Object.entries(higher)) {
    if (value === undefined) {
      // A source that does not set an option leaves it to the sources below; configure()
      // takes an option given as undefined back to its default.
      if (undefinedRemoves) delete merged[name]
      continue
    }
    const path = prefix + name
    const below = merged[name]
    if (OPTION_GROUPS.has(path)) {
      const base = asGroup(below, name)
      const over = asGroup(value, name)
      if (base !== undefined && over !== undefined) {
        own(merged, name, value === true ? below : mergeOptions(base, over, undefinedRemoves, path + '.'))
        continue
      }
      // A group of the caller's is copied, never kept: the caller may change or reuse its
      // object (to open another cache), and a later configure() merges what is kept again.
      if (isPlainObject(value)) {
        own(merged, name, mergeOptions({}, value, undefinedRemoves, path + '.'))
        continue
      }
    }
    own(merged, name, value)
  }
  return merged
}

/** Sets an own property, whatever its name: an assignment to `__proto__` (JSON.parse makes
 *  that an ordinary key) would change the object's prototype and hide the key from the
 *  validator, which must see it to refuse it as unknown. */
function own(tree: OptionTree, name: string, value: unknown): void {
  Object.defineProperty(tree, name, { value, enumerable: true, writable: true, configurable: true })
}

function asGroup(value: unknown, name: string): OptionTree | undefined {
  if (isPlainObject(value)) return value
  if (value === true) return {}
  if (name === 'redis' && typeof value === 'string') return { url: value }
  return undefined
}
