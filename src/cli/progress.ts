import cliProgress from 'cli-progress'
import type { MaintenanceProgress } from '../maintenance/maintainer.js'

const PHASES: Record<MaintenanceProgress['phase'], string> = { scan: 'scanning', evict: 'evicting', verify: 'verifying', rekey: 'rekeying' }
const UNITS: Record<MaintenanceProgress['phase'], string> = {
  scan: 'partitions',
  evict: 'entries',
  verify: 'partitions',
  rekey: 'partitions',
}

/**
 * A progress bar on stderr for long work, drawn only on a terminal (`enabled`); otherwise
 * every call does nothing. Each phase (scan, evict, verify) gets its own bar, since each
 * counts different things.
 */
export class ProgressBar {
  readonly #bar: cliProgress.SingleBar | undefined
  #phase: string | undefined

  constructor(enabled: boolean) {
    this.#bar = enabled
      ? new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: '{phase} [{bar}] {percentage}% | {value}/{total} {unit}',
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 20,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined
  }

  update = (p: MaintenanceProgress): void => {
    if (this.#bar === undefined) return
    if (p.phase !== this.#phase) {
      if (this.#phase !== undefined) this.#bar.stop()
      this.#phase = p.phase
      this.#bar.start(p.total, p.done, { phase: PHASES[p.phase].padEnd(9), unit: UNITS[p.phase] })
    } else {
      this.#bar.update(p.done)
    }
  }

  stop(): void {
    if (this.#phase !== undefined) this.#bar?.stop()
    this.#phase = undefined
  }
}

/** An AbortSignal that Ctrl-C (SIGINT) or SIGTERM fires, so long work stops cleanly with a
 *  partial report instead of the process dying mid-step. `release` removes the handlers. */
export function interruptSignal(): { signal: AbortSignal; release: () => void; interrupted: () => boolean } {
  const controller = new AbortController()
  const onSignal = (name: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(130) // a second Ctrl-C: stop now
    controller.abort(new Error(`interrupted by ${name}`))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return {
    signal: controller.signal,
    interrupted: () => controller.signal.aborted,
    release: () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    },
  }
}
