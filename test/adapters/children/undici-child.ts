/**
 * A process that fetches through undici's cache interceptor over a larder directory:
 * `DIR URL [HEADER=VALUE | --post]` fetches URL (a GET, or with `--post` a POST, after which
 * undici deletes the URL from the store) and prints the status, the body and whether it came
 * from the cache (undici adds an `age` header to responses it serves from a store).
 */
import { Agent, fetch, interceptors, setGlobalDispatcher } from 'undici'
import { LarderCacheStore } from 'larder/undici'
import { report } from '../processes.ts'

const [dir, url, option] = process.argv.slice(2) as [string, string, string | undefined]
const post = option === '--post'
const header = post ? undefined : option
const store = new LarderCacheStore({ dir })
const agent = new Agent()
setGlobalDispatcher(agent.compose(interceptors.cache({ store })))
const headers: Record<string, string> = {}
if (header !== undefined) {
  const [name, value] = header.split('=') as [string, string]
  headers[name] = value
}
const response = await fetch(url, post ? { method: 'POST', body: 'x' } : { headers })
report({ status: response.status, body: await response.text(), age: response.headers.get('age') })
await agent.close() // no keep-alive socket holds the process
await store.close()
