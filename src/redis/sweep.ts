import type { Cluster, Redis } from 'ioredis'
import type { RedisClient } from './connection.js'

/** Slots of a Redis Cluster. */
const SLOTS = 16_384
/** Keys per SCAN page. */
const PAGE = 500
/** Waits before a cluster pass that missed masters looks again (ms): a failover's news takes
 *  a moment to reach every node, and the node a slots refresh asks may still name the old
 *  master. ~0.7 s in all, well inside the seconds a dead master takes to be replaced. */
const SETTLE_MS = [100, 200, 400]

/** A pass over a Redis Cluster that cannot vouch it saw every key (see Sweep): a master was
 *  unreachable or no longer one, a slot was moving, or the slots moved under the pass. */
export class IncompleteSweepError extends Error {
  constructor(reason: string) {
    super(`a pass over the Redis Cluster missed keys (${reason}); run it again`)
    this.name = 'IncompleteSweepError'
  }
}

/** Runs one Redis command through the tier's breaker. */
type Run = <T>(command: () => Promise<T>) => Promise<T>

/**
 * Every Redis name under a prefix, a SCAN page at a time from each master, and whether the
 * pass saw them all (clear, prune's pattern and rekey walk Redis this way).
 *
 * One server: its SCAN. A cluster is harder: ioredis's list of masters is as fresh as its last
 * slots refresh (nothing refreshes it until a keyed command meets a MOVED), and slots move under
 * a pass: a failover promotes a replica (with the keys of a master that was never scanned), a
 * reshard carries a slot's keys from a master not yet scanned to one already scanned. So a pass
 * refreshes the slots map, then scans each slot's master, asking it first and after for its own
 * view (CLUSTER NODES, its `myself` line): a node that is not a master then, or has a slot
 * migrating in or out, is not counted as seen (and, before, not scanned: a migration can last
 * minutes). After the last master it refreshes the map again: the pass is complete only if
 * every slot's master now is one scanned while it held that slot. A master that fails is
 * skipped and its failure thrown after the others. A pass that missed masters without a failure
 * looks again a few times (SETTLE_MS: the map it was given may be a moment old) before it
 * throws IncompleteSweepError.
 *
 * What a sweep saw is kept, so the same pass run again (a missed clear retried every 200 ms)
 * scans only the masters it has not seen with their present slots: an old key can reach a
 * master already swept only with a slot it did not hold then.
 */
export class Sweep {
  readonly #client: RedisClient
  readonly #run: Run
  /** Cluster: the masters scanned whole (by ioredis's node key), with the slots each held. */
  readonly #seen = new Map<string, Set<number>>()

  constructor(client: RedisClient, run: Run) {
    this.#client = client
    this.#run = run
  }

  /** Whether some master was scanned whole (a cluster pass may have cleared part of it). */
  get progressed(): boolean {
    return this.#seen.size > 0
  }

  /**
   * The names matching `pattern` (a Redis glob), a page at a time. A name may come twice
   * (SCAN's guarantee is at least once).
   *
   * A caller's client may have an ioredis `keyPrefix`, which ioredis puts before every key a
   * command names but not before SCAN's MATCH, and SCAN answers the names whole: so the prefix
   * goes into the MATCH here and comes off the names (a name handed back to a command is
   * prefixed again by ioredis). Without this, a clear or a prune by pattern matched nothing
   * and removed nothing from Redis, and every host went on serving what it had cleared.
   */
  async *pages(pattern: string): AsyncGenerator<string[]> {
    const prefix = keyPrefixOf(this.#client)
    if (prefix === '') yield* this.#pagesMatching(pattern)
    else for await (const names of this.#pagesMatching(escapeGlob(prefix) + pattern)) yield names.map((name) => name.slice(prefix.length))
  }

  async *#pagesMatching(pattern: string): AsyncGenerator<string[]> {
    if (!this.#client.isCluster) {
      yield* this.#scan(this.#client as Redis, pattern)
      return
    }
    const cluster = this.#client as Cluster
    for (let attempt = 0; ; attempt++) {
      const missed = yield* this.#pass(cluster, pattern)
      if (missed === undefined) return
      const wait = SETTLE_MS[attempt]
      if (wait === undefined) throw new IncompleteSweepError(missed)
      await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }

  /** One pass over the masters not yet seen whole: what it missed, if anything (a master that
   *  failed is thrown, after the others). */
  async *#pass(cluster: Cluster, pattern: string): AsyncGenerator<string[], string | undefined> {
    const owners = await this.#owners(cluster)
    let missed = owners.unowned > 0 ? `${owners.unowned} slots without a reachable master` : undefined
    let failure: Error | undefined
    for (const [name, { node, slots }] of owners.byNode) {
      const seen = this.#seen.get(name)
      if (seen !== undefined && slots.every((slot) => seen.has(slot))) continue
      try {
        const before = await this.#held(node)
        if (before === undefined) {
          missed ??= `${name} is not a master, or a slot of it is moving`
          continue
        }
        yield* this.#scan(node, pattern)
        const after = await this.#held(node)
        if (after === undefined) {
          missed ??= `a slot of ${name} began moving during its scan`
          continue
        }
        let kept = this.#seen.get(name)
        if (kept === undefined) this.#seen.set(name, (kept = new Set()))
        for (const slot of before) if (after.has(slot)) kept.add(slot)
      } catch (error) {
        failure ??= error instanceof Error ? error : new Error(String(error))
      }
    }
    const now = await this.#owners(cluster)
    if (now.unowned > 0) missed ??= `${now.unowned} slots without a reachable master`
    for (const [name, { slots }] of now.byNode) {
      const seen = this.#seen.get(name)
      if (seen === undefined || !slots.every((slot) => seen.has(slot))) missed ??= `slots of ${name} were not scanned there`
    }
    if (failure !== undefined) throw failure
    return missed
  }

  async *#scan(node: Redis, pattern: string): AsyncGenerator<string[]> {
    let cursor = '0'
    do {
      const [next, names] = await this.#run(() => node.scan(cursor, 'MATCH', pattern, 'COUNT', PAGE))
      cursor = next
      if (names.length > 0) yield names
    } while (cursor !== '0')
  }

  /** The cluster's slots map, refreshed now: each master ioredis holds a connection to, with
   *  its slots, and how many slots have none. */
  async #owners(cluster: Cluster): Promise<{ byNode: Map<string, { node: Redis; slots: number[] }>; unowned: number }> {
    await this.#run(() => new Promise<void>((resolve, reject) => cluster.refreshSlotsCache((error) => (error ? reject(error) : resolve()))))
    const masters = new Map(cluster.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]))
    const byNode = new Map<string, { node: Redis; slots: number[] }>()
    let unowned = 0
    for (let slot = 0; slot < SLOTS; slot++) {
      const name = cluster.slots[slot]?.[0]
      const node = name === undefined ? undefined : masters.get(name)
      if (name === undefined || node === undefined) {
        unowned++
        continue
      }
      let owner = byNode.get(name)
      if (owner === undefined) byNode.set(name, (owner = { node, slots: [] }))
      owner.slots.push(slot)
    }
    return { byNode, unowned }
  }

  /** The slots `node` says it holds (CLUSTER NODES, its own line), or undefined if it is not
   *  a master or one of its slots is migrating or importing. */
  async #held(node: Redis): Promise<Set<number> | undefined> {
    const text = String(await this.#run(() => node.cluster('NODES')))
    const own = text.split('\n').find((line) => line.split(' ')[2]?.split(',').includes('myself') === true)
    if (own === undefined) return undefined
    const fields = own.trim().split(' ')
    if (!fields[2]!.split(',').includes('master')) return undefined
    const held = new Set<number>()
    for (const range of fields.slice(8)) {
      if (range.startsWith('[')) return undefined
      const [from, to = from] = range.split('-').map(Number)
      for (let slot = from!; slot <= to!; slot++) held.add(slot)
    }
    return held
  }
}

/** `text` as a Redis glob that matches only itself. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => '\\' + c)
}

/** The ioredis `keyPrefix` of a client (a cluster's is in its own options), '' when none. */
export function keyPrefixOf(client: RedisClient): string {
  const options = client.options as { keyPrefix?: unknown }
  return typeof options.keyPrefix === 'string' ? options.keyPrefix : ''
}
