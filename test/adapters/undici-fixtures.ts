/** What the larder/undici tests share: a request key, a cacheable response's value, a write. */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import type { LarderCacheStore } from 'larder/undici'
import { Agent, getGlobalDispatcher, interceptors, setGlobalDispatcher } from 'undici'

export type Store = LarderCacheStore
export type Key = Parameters<Store['get']>[0]
export type Value = Parameters<Store['createWriteStream']>[1]

export function keyOf(pathname: string, headers: Record<string, string> = {}, method = 'GET'): Key {
  return { origin: 'http://localhost', path: pathname, method, headers }
}

/** A 200 fresh for a minute, kept for two. */
export function valueOf(fields: Partial<Value> = {}): Value {
  const now = Date.now()
  return {
    statusCode: 200,
    statusMessage: 'OK',
    headers: { 'content-type': 'text/plain' },
    cacheControlDirectives: { 'max-age': 60 },
    cachedAt: now,
    staleAt: now + 60_000,
    deleteAt: now + 120_000,
    ...fields,
  }
}

/** Writes a body through the store's write stream and waits until the store says it is done. */
export async function write(store: Store, key: Key, value: Value, chunks: (string | Buffer)[]): Promise<void> {
  const writable = store.createWriteStream(key, value)
  assert.ok(writable !== undefined, 'createWriteStream returned a Writable')
  for (const chunk of chunks) if (!writable.write(chunk)) await once(writable, 'drain')
  writable.end()
  await once(writable, 'finish')
}

/** A stored response's body as text (a stream, or the Buffer a small one is). */
export async function bodyText(result: Awaited<ReturnType<Store['get']>>): Promise<string | undefined> {
  if (result?.body === undefined) return undefined
  const chunks: Buffer[] = []
  for await (const chunk of Readable.from(result.body as Iterable<Buffer>)) chunks.push(Buffer.from(chunk as Buffer))
  return Buffer.concat(chunks).toString()
}

/** Sends the process's `fetch` through undici's cache interceptor over `store`; the function
 *  returned puts back the dispatcher there was before and closes the agent. */
export function cachingFetch(store: Store): () => Promise<void> {
  const previous = getGlobalDispatcher()
  const agent = new Agent()
  setGlobalDispatcher(agent.compose(interceptors.cache({ store })))
  return async () => {
    setGlobalDispatcher(previous)
    await agent.close()
  }
}
