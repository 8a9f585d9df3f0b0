/**
 * One `verify()` (with repair, as `larder verify --repair` runs it) of `<dir>`, its report
 * printed as JSON, then exit: `verify-once.ts <dir>`.
 */
import { Larder } from '../../src/index.ts'

const cache = await Larder.open({ dir: process.argv[2]! })
console.log(JSON.stringify(await cache.verify()))
await cache.close()
