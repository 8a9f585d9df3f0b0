/** The counts of a rekey's report (a file rekey's; Redis's has all but `recovered`), kept
 *  apart from the worker's code so the main thread can name them without loading it. */
export const REKEY_COUNTS = ['scanned', 'rekeyed', 'current', 'missingKey', 'unsealed', 'corrupt', 'changed', 'recovered'] as const

/** Every count of a rekey's report at zero. */
export function noRekeyCounts(): Record<(typeof REKEY_COUNTS)[number], number> {
  return Object.fromEntries(REKEY_COUNTS.map((count) => [count, 0])) as Record<(typeof REKEY_COUNTS)[number], number>
}
