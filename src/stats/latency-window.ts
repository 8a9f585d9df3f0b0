/** Latency percentiles in milliseconds over the most recent operations. */
export interface LatencySummary {
  count: number
  p50: number
  p90: number
  p99: number
  max: number
}

/**
 * The last WINDOW latencies in a ring. Recording is one store into a typed array, cheap
 * enough for every get of the memory tier; percentiles are computed only when asked for.
 */
const WINDOW = 4096

export class LatencyWindow {
  readonly #samples = new Float64Array(WINDOW)
  #recorded = 0

  record(milliseconds: number): void {
    this.#samples[this.#recorded++ % WINDOW] = milliseconds
  }

  summary(): LatencySummary {
    const count = Math.min(this.#recorded, WINDOW)
    if (count === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0 }
    const sorted = this.#samples.slice(0, count).sort()
    const at = (q: number): number => round(sorted[Math.min(count - 1, Math.floor(q * count))]!)
    return { count: this.#recorded, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(sorted[count - 1]!) }
  }
}

function round(milliseconds: number): number {
  return Math.round(milliseconds * 1000) / 1000
}
