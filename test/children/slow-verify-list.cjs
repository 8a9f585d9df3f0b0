// Preloaded (--require) by test/verify-pacing.test.ts into a process that verifies: in its
// maintenance workers, the first listing of a partition directory writes the file
// LARDER_TEST_MARK (the verify holds the maintenance lock by then) and waits until the file
// LARDER_TEST_GO exists (two minutes at most): a verify of a cache big enough to run that long.
const fs = require('node:fs')
const path = require('node:path')
const process = require('node:process')
const { isMainThread } = require('node:worker_threads')
if (!isMainThread) {
  const readdir = fs.readdirSync
  let done = false
  fs.readdirSync = function (dir) {
    if (!done && /^[0-9a-f]{2}$/.test(path.basename(String(dir)))) {
      done = true
      fs.writeFileSync(process.env.LARDER_TEST_MARK, 'verifying')
      const sleeper = new Int32Array(new SharedArrayBuffer(4))
      for (let waited = 0; waited < 120_000 && !fs.existsSync(process.env.LARDER_TEST_GO); waited += 20) Atomics.wait(sleeper, 0, 0, 20)
    }
    return readdir.apply(this, arguments)
  }
}
