// A removal elsewhere, held between taking an entry aside and putting it back (a worker thread
// descheduled at that moment): `takeIfSame` of `file` judging another inode than the one there,
// so that it puts back what it took, with its `link` held until the parent says go.
// Plain JavaScript that registers tsx itself: on Node 20 a worker does not inherit the loader.
import { parentPort, workerData } from 'node:worker_threads'
import { register } from 'tsx/esm/api'

register()
const { disk } = await import('../../src/store/disk.ts')
const { takeIfSame } = await import('../../src/store/take-aside.ts')
const { file, go } = workerData
const flag = new Int32Array(go)
const link = disk.linkSync.bind(disk)
disk.linkSync = (from, to) => {
  parentPort.postMessage('aside')
  Atomics.wait(flag, 0, 0)
  link(from, to)
}
const taken = takeIfSame(file, -1)
parentPort.postMessage({ taken: taken !== undefined })
