/**
 * Child of the bounded-listing test (keyv.test.ts): iterates a Keyv namespace of a larder
 * directory, opened read-only, and reports how many items came, under whatever heap limit
 * the parent gave it.
 */
import Keyv from 'keyv'
import { Larder } from 'larder'
import { KeyvLarder } from 'larder/keyv'
import { report } from '../processes.ts'

const [dir, namespace] = process.argv.slice(2) as [string, string]
const cache = await Larder.open({ dir, readOnly: true })
const keyv = new Keyv({ store: new KeyvLarder(cache), namespace })
let items = 0
for await (const _ of keyv.iterator!(namespace)) items++
await cache.close()
report({ items })
