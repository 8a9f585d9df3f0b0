/**
 * A process that fetches through undici's cache interceptor over a larder directory:
 * `fetch DIR URL [HEADER=VALUE]` prints the status, the body and whether it came from the
 * cache (undici adds an `age` header to responses it serves from a store).
 */
import { Agent, fetch, interceptors, setGlobalDispatcher } from 'undici'
import { LarderCacheStore } from 'larder/undici'
import { report } from '../processes.ts'

const [dir, url, header] = process.argv.slice(2) as [string, string, string | undefined]
const store = new LarderCacheStore({ dir })
const agent = new Agent()
setGlobalDispatcher(agent.compose(interceptors.cache({ store })))
const headers: Record<string, string> = {}
if (header !== undefined) {
  const [name, value] = header.split('=') as [string, string]
  headers[name] = value
}
const response = await fetch(url, { headers })
report({ status: response.status, body: await response.text(), age: response.headers.get('age') })
await agent.close() // no keep-alive socket holds the process
await store.close()
