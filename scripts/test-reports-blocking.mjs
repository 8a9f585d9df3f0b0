// Preloaded (`--import`) by `npm run test:files` into each test file's process. Those processes
// send their results to the runner over a pipe on stdout, which Node writes asynchronously on
// Linux; with `--test-force-exit` a process exits as soon as its tests end, and whatever was
// still queued for the pipe is lost: the run reported fewer tests than ran, with exit code 0
// (a failing test still fails the run, through the process's exit code, but without its name).
// nodejs/node#64833; seen here on Node 24 (a clean-clone CI run listed 1,457 tests of 1,480,
// bad-input.test.ts's last 25 missing) and reproduced on Node 20 and 24 with a file of 2,000
// empty tests (1,929-2,000 reported without this, 2,000 every time with it). A blocking stdout
// makes each result written before the next line runs.
if (process.env.NODE_TEST_CONTEXT?.startsWith('child')) process.stdout._handle?.setBlocking?.(true)
