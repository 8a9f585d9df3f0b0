/** How a boolean environment variable's value reads: 1/true/yes/on or 0/false/no/off, any case. */
export const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on'])
export const FALSE_WORDS = new Set(['0', 'false', 'no', 'off'])

/** Whether this run asked for JSON: the last of `--json` and `--no-json` among the options, or
 *  with neither, LARDER_JSON on. Decided from argv as well as commander, so a run that fails
 *  (or is interrupted) before commander has parsed anything still answers with a JSON document.
 *  Imports nothing: the bin asks it before it loads the commands. */
export function jsonRequested(argv: string[]): boolean {
  const args = argv.slice(2)
  const end = args.indexOf('--')
  const options = end === -1 ? args : args.slice(0, end)
  const last = Math.max(options.lastIndexOf('--json'), options.lastIndexOf('--no-json'))
  if (last !== -1) return options[last] === '--json'
  const variable = process.env.LARDER_JSON
  return variable !== undefined && TRUE_WORDS.has(variable.trim().toLowerCase())
}
