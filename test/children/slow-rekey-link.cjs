// Preloaded (--require) by test/review-fixes-2.test.ts into a process that rekeys: in its
// maintenance workers, the first link of a rekeyed temp file into an entry's name waits 1.5 s
// (as a descheduled thread would), after writing the file LARDER_TEST_MARK to say it is there.
const fs = require('node:fs')
const process = require('node:process')
const { isMainThread } = require('node:worker_threads')
if (!isMainThread) {
  const link = fs.linkSync
  let done = false
  fs.linkSync = function (from, to) {
    if (!done && /\.tmp$/.test(String(from)) && /[0-9a-f]{16}$/.test(String(to))) {
      done = true
      fs.writeFileSync(process.env.LARDER_TEST_MARK, 'aside')
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500)
    }
    return link.apply(this, arguments)
  }
}
