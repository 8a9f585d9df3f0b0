// Re-renders a report from the raw samples of an earlier run, after a change to report.mjs or
// plan.mjs's tables (the measurements are not repeated):
//
//   node bench/render.mjs bench/results/2026-11-30.json
import fsp from 'node:fs/promises'
import path from 'node:path'
import { writeReport } from './report.mjs'

const file = process.argv[2]
if (!file) throw new Error('usage: node bench/render.mjs bench/results/<date>.json')
const record = JSON.parse(await fsp.readFile(file, 'utf8'))
const { markdown } = await writeReport(record, path.dirname(path.resolve(file)))
process.stdout.write(markdown + '\n')
