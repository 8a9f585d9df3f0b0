import { envName, OPTION_ROWS } from './option-table.js'

/** The markers around the generated table in README.md. */
export const DOC_BEGIN = '<!-- options-table:begin (npm run docs:options writes this table from src/config/option-table.ts) -->'
export const DOC_END = '<!-- options-table:end -->'

/** The README's table of options as configuration sees them, generated from the one
 *  declaration table: path, variable, an example, whether configure() may change it. */
export function optionsTable(): string {
  const lines = ['| option | environment variable | example | `configure()` | what |', '| --- | --- | --- | --- | --- |']
  for (const row of OPTION_ROWS) {
    const variable = row.env === false ? 'call or `.mjs` only' : `\`${envName(row.path)}\``
    const example = row.secret === true || row.example === undefined ? '' : `\`${row.example}\``
    lines.push(`| \`${row.path}\` | ${variable} | ${example} | ${row.live ? 'live' : 'at open'} | ${row.doc} |`)
  }
  return lines.join('\n')
}

/** `readme` with the text between the markers replaced by the generated table. */
export function withOptionsTable(readme: string): string {
  const begin = readme.indexOf(DOC_BEGIN)
  const end = readme.indexOf(DOC_END)
  if (begin === -1 || end < begin) throw new Error(`README.md has no ${DOC_BEGIN} … ${DOC_END} block`)
  return `${readme.slice(0, begin + DOC_BEGIN.length)}\n${optionsTable()}\n${readme.slice(end)}`
}
