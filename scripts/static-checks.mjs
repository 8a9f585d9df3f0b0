// The checks `npm run check` makes before the tests: typecheck, lint and format check, run at
// once rather than one after another. Each is one single-threaded process (tsc, eslint,
// prettier) and none writes anything, so on a machine of two or more cores they share it
// instead of taking turns (on CI's 2-core VM the three take about as long as eslint alone,
// the longest of them, instead of the sum of all three). Each one's output is held back and
// printed whole when it ends, so the log reads as if they had run in turn; the script fails
// if any of them failed, after all three have ended.
import { spawn } from 'node:child_process'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const scripts = ['typecheck', 'lint', 'format:check']

/** Runs `npm run <script>`, collecting its stdout and stderr in order. */
function run(script) {
  return new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(npm, ['run', script], { stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' })
    const output = []
    child.stdout.on('data', (chunk) => output.push(chunk))
    child.stderr.on('data', (chunk) => output.push(chunk))
    child.on('error', (error) => output.push(Buffer.from(`${error.message}\n`)))
    child.on('close', (code, signal) => {
      const seconds = ((performance.now() - started) / 1000).toFixed(1)
      process.stdout.write(Buffer.concat(output))
      const outcome = code === 0 ? 'ok' : `FAILED (${signal ?? `exit ${code}`})`
      process.stdout.write(`--- npm run ${script}: ${outcome}, ${seconds} s\n`)
      resolve(code === 0)
    })
  })
}

const results = await Promise.all(scripts.map(run))
const failed = scripts.filter((_, i) => !results[i])
if (failed.length > 0) {
  console.error(`failed: ${failed.map((s) => `npm run ${s}`).join(', ')}`)
  process.exitCode = 1
}
