import cliProgress from 'cli-progress'
import { isLarderError } from '../errors.js'
import type { MaintenanceProgress } from '../maintenance/maintainer.js'
import { CliFailure, EXIT } from './context.js'
import { answerInterrupts } from './early-interrupt.js'

const PHASES: Record<MaintenanceProgress['phase'], string> = {
  scan: 'scanning',
  evict: 'evicting',
  verify: 'verifying',
  rekey: 'rekeying',
  redis: 'redis',
}
const UNITS: Record<MaintenanceProgress['phase'], string> = {
  scan: 'partitions',
  evict: 'entries',
  verify: 'partitions',
  rekey: 'partitions',
  redis: 'keys',
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
      if (p.total !== this.#bar.getTotal()) this.#bar.setTotal(p.total) // Redis keys: found as they are scanned
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
  const answered = answerInterrupts()
  return {
    signal: controller.signal,
    interrupted: () => controller.signal.aborted,
    release: () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      answered()
    },
  }
}

/** What `interruptibleWork` hands the work: the signal Ctrl-C fires and the bar's update. */
export interface WorkControl {
  signal: AbortSignal
  onProgress: (progress: MaintenanceProgress) => void
}

/**
 * Runs one long maintenance call (`verify`, `rekey`) with a progress bar on a terminal and
 * Ctrl-C/SIGTERM as its abort signal; stopped that way, it ends as "<name> interrupted"
 * (exit 130, ERR_ABORTED). The bar and the signal handlers are gone however it ends.
 */
export async function interruptibleWork<T>(name: string, interactive: boolean, work: (control: WorkControl) => Promise<T>): Promise<T> {
  const bar = new ProgressBar(interactive)
  const interrupt = interruptSignal()
  try {
    return await work({ signal: interrupt.signal, onProgress: bar.update })
  } catch (error) {
    if (isLarderError(error, 'ERR_ABORTED') && interrupt.interrupted())
      throw new CliFailure(`${name} interrupted`, EXIT.interrupted, 'ERR_ABORTED')
    throw error
  } finally {
    bar.stop()
    interrupt.release()
  }
}
