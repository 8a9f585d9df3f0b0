import { Command } from 'commander'
import type { VerifyReport } from '../../maintenance/maintainer.js'
import { CliContext, CliFailure, EXIT } from '../context.js'
import { count, duration, entries, size } from '../format.js'
import { interruptibleWork } from '../progress.js'

export function verifyCommand(): Command {
  return new Command('verify')
    .description(
      'checksum every byte of every entry in worker threads; report damaged entries and stray temp files (exit 1 if damage was found and not repaired)',
    )
    .option('--repair', 'remove damaged entries and stale temp files, and correct the running totals')
    .action(async (flags: { repair?: boolean }, command: Command) => {
      const ctx = new CliContext(command)
      // Without --repair verify only reads: the cache is opened read-only.
      const report: VerifyReport = await interruptibleWork('verify', ctx.interactive, (control) =>
        ctx.withCache(flags.repair === true ? 'maintain' : 'read', (cache) => cache.verify({ repair: flags.repair === true, ...control })),
      )
      const damaged =
        report.corrupt > 0 && !report.repaired
          ? new CliFailure(
              `${entries(report.corrupt)} damaged; run larder verify --repair to remove ${report.corrupt === 1 ? 'it' : 'them'}`,
              EXIT.failed,
              'ERR_CORRUPT',
            )
          : undefined
      // With --json the report is the document, and damage left in place is also its `error`,
      // as every failing run's document has one.
      ctx.print(
        () => human(report),
        () => (damaged === undefined ? report : { ...report, error: { code: damaged.code, message: damaged.message } }),
      )
      if (damaged !== undefined) throw damaged
    })
}

function human(r: VerifyReport): string {
  const lines = [
    `checked ${entries(r.scanned)} (${size(r.bytes)}) in ${duration(r.durationMs)}: ${count(r.ok)} intact, ${count(r.corrupt)} damaged`,
  ]
  if (r.corrupt > 0) lines.push(r.repaired ? `removed ${count(r.corrupt)} damaged entries` : 'damaged entries left in place (use --repair)')
  if (r.tempFilesRemoved > 0) lines.push(`${count(r.tempFilesRemoved)} stray temp files ${r.repaired ? 'removed' : 'found (use --repair)'}`)
  if (r.trashRemoved > 0)
    lines.push(
      `${count(r.trashRemoved)} ${r.trashRemoved === 1 ? 'trash directory' : 'trash directories'} of a dead clear ${r.repaired ? 'removed' : 'found (use --repair)'}`,
    )
  if (r.freedBytes > 0) lines.push(`${r.repaired ? 'freed' : 'would free'} ${size(r.freedBytes)}`)
  for (const p of r.problems.slice(0, 10)) lines.push(`  ${p.file}: ${p.reason}`)
  return lines.join('\n')
}
