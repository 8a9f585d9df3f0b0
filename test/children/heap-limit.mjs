// A worker thread's view of its heap limit (test/pressure.test.ts): posts readMemory().heapLimit.
// Plain JavaScript that registers tsx itself: on Node 20 a worker does not inherit the loader.
import { parentPort } from 'node:worker_threads'
import { register } from 'tsx/esm/api'

register()
const { readMemory } = await import('../../src/resilience/memory-watch.ts')
parentPort.postMessage(readMemory().heapLimit)
