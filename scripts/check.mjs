// `npm run check`, what CI runs on the system's Node: the build and the peer installs of
// scripts/test-peers.mjs (what `npm test` does before its test files), then the test files,
// with the typecheck, lint and format check running beside both.
//
// Why side by side: each check is one single-threaded process (tsc, eslint, prettier) that
// reads neither what the build writes (dist/, which all three ignore) nor what the peer
// installs or the tests write, and the test files, two at a time, leave about a fifth of a
// 2-core machine idle (children starting, servers failing over, waits for other processes).
// Run in turn, the checks added ~2 minutes to a CI run; beside the tests they mostly fill
// those gaps.
//
// The test files' output is passed through line by line as it comes; each check's output is
// held back and printed whole, between two of those lines, when it ends, so the log reads as
// if it had run alone. The script fails if any step failed, after all of them have ended.
import { spawn } from 'node:child_process'
import readline from 'node:readline'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const prerequisites = [
  ['npm run build', npm, ['run', 'build', '--silent']],
  ['node scripts/test-peers.mjs', process.execPath, [new URL('test-peers.mjs', import.meta.url).pathname]],
]
const checks = [
  ['npm run typecheck', npm, ['run', 'typecheck']],
  ['npm run lint', npm, ['run', 'lint']],
  ['npm run format:check', npm, ['run', 'format:check']],
]
const tests = ['npm run test:files', npm, ['run', 'test:files', '--silent']]

/** Spawns one step; resolves with whether it passed. `live`: pass its output through by line. */
function run([name, file, args], live = false) {
  return new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' })
    const output = []
    const closed = []
    for (const [stream, to] of [
      [child.stdout, process.stdout],
      [child.stderr, process.stderr],
    ]) {
      if (live) {
        const lines = readline.createInterface({ input: stream, crlfDelay: Infinity })
        lines.on('line', (line) => to.write(`${line}\n`))
        closed.push(new Promise((done) => lines.on('close', done)))
      } else {
        stream.on('data', (chunk) => output.push(chunk))
      }
    }
    child.on('error', (error) => output.push(Buffer.from(`${error.message}\n`)))
    child.on('close', async (code, signal) => {
      await Promise.all(closed)
      const seconds = ((performance.now() - started) / 1000).toFixed(1)
      process.stdout.write(Buffer.concat(output))
      const outcome = code === 0 ? 'ok' : `FAILED (${signal ?? `exit ${code}`})`
      process.stdout.write(`--- ${name}: ${outcome}, ${seconds} s\n`)
      resolve(code === 0)
    })
  })
}

const outcomes = checks.map((step) => [step, run(step)])
const ready = await Promise.all(prerequisites.map(async (step) => [step, await run(step)]))
outcomes.push(...ready)
if (ready.every(([, passed]) => passed)) outcomes.push([tests, await run(tests, true)])
const failed = []
for (const [[name], outcome] of outcomes) if (!(await outcome)) failed.push(name)
if (failed.length > 0) {
  console.error(`failed: ${failed.join(', ')}`)
  process.exitCode = 1
}
