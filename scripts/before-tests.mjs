// What `npm run check` does before the tests, run at once rather than one after another:
// typecheck, lint, format check, the build and the peer installs of scripts/test-peers.mjs
// (what `npm test` does before its test files). Each check is one single-threaded process
// (tsc, eslint, prettier) and none of them reads what the build writes (dist/, which all three
// ignore) or what the peer installs write, so on a machine of two or more cores they share it
// instead of taking turns (on CI's 2-core VM the phase then takes about half the sum of their
// times, eslint's being the longest). Each one's output is held back and printed whole when it
// ends, so the log reads as if they had run in turn; the script fails if any of them failed,
// after all of them have ended.
import { spawn } from 'node:child_process'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const steps = [
  ['npm run typecheck', npm, ['run', 'typecheck']],
  ['npm run lint', npm, ['run', 'lint']],
  ['npm run format:check', npm, ['run', 'format:check']],
  ['npm run build', npm, ['run', 'build', '--silent']],
  ['node scripts/test-peers.mjs', process.execPath, [new URL('test-peers.mjs', import.meta.url).pathname]],
]

/** Runs one step, collecting its stdout and stderr in order; resolves with whether it passed. */
function run([name, file, args]) {
  return new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' })
    const output = []
    child.stdout.on('data', (chunk) => output.push(chunk))
    child.stderr.on('data', (chunk) => output.push(chunk))
    child.on('error', (error) => output.push(Buffer.from(`${error.message}\n`)))
    child.on('close', (code, signal) => {
      const seconds = ((performance.now() - started) / 1000).toFixed(1)
      process.stdout.write(Buffer.concat(output))
      const outcome = code === 0 ? 'ok' : `FAILED (${signal ?? `exit ${code}`})`
      process.stdout.write(`--- ${name}: ${outcome}, ${seconds} s\n`)
      resolve(code === 0)
    })
  })
}

const results = await Promise.all(steps.map(run))
const failed = steps.filter((_, i) => !results[i]).map(([name]) => name)
if (failed.length > 0) {
  console.error(`failed: ${failed.join(', ')}`)
  process.exitCode = 1
}
