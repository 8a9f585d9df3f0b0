/**
 * Rekeys a cache (argv: dir) with the keys in LARDER_ENCRYPTION_KEYS, printing "progress" once
 * the first batch of partitions is done: the parent SIGKILLs it then, midway.
 */
import { Larder } from '../../src/index.ts'
import { keysFromEnv } from '../../src/crypto/keys.ts'

const cache = await Larder.open({ dir: process.argv[2]!, memory: false, maintenance: false, encryption: keysFromEnv() })
let told = false
await cache.rekey({
  onProgress: (p) => {
    if (p.done > 0 && !told) {
      told = true
      process.stdout.write('progress\n')
    }
  },
})
process.stdout.write('done\n')
await cache.close()
