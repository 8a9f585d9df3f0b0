/**
 * Key globs for `prune({ pattern })`, `entries({ pattern })` and the CLI's `--pattern`,
 * matched in time linear in the key's length, whatever the pattern.
 *
 * A glob translated to a regular expression (`build:*:*:*:done` → `^build:.*:.*:.*:done$`)
 * makes a backtracking engine try every way of splitting the key between the stars: cubic in
 * the key's length here, seconds for a 2.5 KB key and minutes for an 8 KiB one, while a prune
 * holds the maintenance lock. So the pattern is compiled to a small automaton instead (one state
 * per character, star or alternative) and the key is run through all of its states at once:
 * each character of the key advances a set of at most `states` states, so matching costs
 * O(key length × pattern length) in the worst case, with nothing to backtrack.
 *
 * Syntax, over whole keys (case-sensitive; a "character" is a Unicode code point):
 *   `*`        any run of characters, empty included (`:` and `/` are not special)
 *   `?`        any one character
 *   `[abc]`    one of the listed characters; `[a-z]` a range; `[!a-z]` or `[^a-z]` none of them;
 *              a `]` first in the set is one of its characters
 *   `{a,b}`    one of the comma-separated alternatives, each a glob itself (nesting allowed)
 *   `\x`       the character x itself
 * A `[` or `{` that is never closed stands for itself.
 */
import { LarderError } from '../errors.js'

/** One state of the automaton: consumes a character that passes `test` and moves to `next`;
 *  or moves without consuming to each of `to`; or, with neither, accepts. */
interface State {
  test?: (cp: number) => boolean
  next?: number
  to?: number[]
}

type Node = { kind: 'char'; test: (cp: number) => boolean } | { kind: 'star' } | { kind: 'alt'; options: Node[][] }

const ANY = (): boolean => true

/** The deepest `{…}` nesting a pattern may have: the parser recurses once per level, and a
 *  pattern of thousands of `{` (anyone's, over HTTP) would overflow the stack. */
export const MAX_BRACE_NESTING = 32

/** Why `pattern` cannot be a glob (too deeply nested), or undefined. Counts every unescaped
 *  `{`, closed or not. */
export function globProblem(pattern: string): string | undefined {
  let depth = 0
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '\\') i++
    else if (c === '}' && depth > 0) depth--
    else if (c === '{' && ++depth > MAX_BRACE_NESTING) return `braces nested deeper than ${MAX_BRACE_NESTING} levels`
  }
  return undefined
}

export class Glob {
  readonly #states: State[]
  readonly #start: number
  /** Marks of the states already in the set being built (one generation per step). */
  readonly #marks: Int32Array
  #generation = 0

  constructor(pattern: string) {
    const problem = globProblem(pattern)
    if (problem !== undefined) throw new LarderError('ERR_INVALID_VALUE', `Invalid pattern: ${problem}`, { field: 'pattern' })
    const nodes = parse(
      [...pattern].map((c) => c.codePointAt(0)!),
      0,
      false,
    ).nodes
    this.#states = [{}] // state 0 accepts
    this.#start = this.#sequence(nodes, 0)
    this.#marks = new Int32Array(this.#states.length)
  }

  /** Whether the whole of `text` matches. */
  test(text: string): boolean {
    let current = this.#closure([this.#start])
    for (const ch of text) {
      if (current.length === 0) return false
      const cp = ch.codePointAt(0)!
      const moved: number[] = []
      for (const s of current) {
        const state = this.#states[s]!
        if (state.test !== undefined && state.test(cp)) moved.push(state.next!)
      }
      current = this.#closure(moved)
    }
    return current.some((s) => this.#accepts(s))
  }

  #accepts(s: number): boolean {
    const state = this.#states[s]!
    return state.test === undefined && state.to === undefined
  }

  /** The states reachable from `from` without consuming a character, each once. */
  #closure(from: number[]): number[] {
    const generation = ++this.#generation
    const out: number[] = []
    const stack = from.slice()
    while (stack.length > 0) {
      const s = stack.pop()!
      if (this.#marks[s] === generation) continue
      this.#marks[s] = generation
      const state = this.#states[s]!
      if (state.to !== undefined) stack.push(...state.to)
      else out.push(s)
    }
    return out
  }

  /** Compiles `nodes` to states that lead to `next`; returns the first. Built back to front,
   *  so each state knows where it goes. */
  #sequence(nodes: Node[], next: number): number {
    for (let i = nodes.length - 1; i >= 0; i--) next = this.#node(nodes[i]!, next)
    return next
  }

  #node(node: Node, next: number): number {
    const add = (state: State): number => this.#states.push(state) - 1
    switch (node.kind) {
      case 'char':
        return add({ test: node.test, next })
      case 'star': {
        // A fork: consume any character and come back here, or go on.
        const fork = add({ to: [] })
        const loop = add({ test: ANY, next: fork })
        this.#states[fork]!.to = [loop, next]
        return fork
      }
      case 'alt':
        return add({ to: node.options.map((option) => this.#sequence(option, next)) })
    }
  }
}

/**
 * Parses code points from `at` up to the end, or (inside braces) up to the `,` or `}` that ends
 * the current alternative. Returns the nodes and where it stopped.
 */
function parse(cps: number[], at: number, inBraces: boolean): { nodes: Node[]; at: number } {
  const nodes: Node[] = []
  const literal = (cp: number): Node => ({ kind: 'char', test: (c) => c === cp })
  while (at < cps.length) {
    const cp = cps[at]!
    if (inBraces && (cp === COMMA || cp === CLOSE_BRACE)) break
    if (cp === STAR) {
      if (nodes.at(-1)?.kind !== 'star') nodes.push({ kind: 'star' }) // ** is *
      at++
    } else if (cp === QUESTION) {
      nodes.push({ kind: 'char', test: ANY })
      at++
    } else if (cp === BACKSLASH && at + 1 < cps.length) {
      nodes.push(literal(cps[at + 1]!))
      at += 2
    } else if (cp === OPEN_BRACKET || cp === OPEN_BRACE) {
      const group = cp === OPEN_BRACKET ? parseSet(cps, at) : parseAlternatives(cps, at)
      if (group === undefined) {
        nodes.push(literal(cp)) // never closed: the character itself
        at++
      } else {
        nodes.push(group.node)
        at = group.at
      }
    } else {
      nodes.push(literal(cp))
      at++
    }
  }
  return { nodes, at }
}

/** `{a,b,...}` starting at `at` (its `{`); undefined if it is never closed. */
function parseAlternatives(cps: number[], at: number): { node: Node; at: number } | undefined {
  const options: Node[][] = []
  let i = at + 1
  for (;;) {
    const part = parse(cps, i, true)
    options.push(part.nodes)
    if (part.at >= cps.length) return undefined
    i = part.at + 1
    if (cps[part.at] === CLOSE_BRACE) return { node: { kind: 'alt', options }, at: i }
  }
}

/** `[...]` starting at `at` (its `[`); undefined if it is never closed. */
function parseSet(cps: number[], at: number): { node: Node; at: number } | undefined {
  let i = at + 1
  const negated = cps[i] === BANG || cps[i] === CARET
  if (negated) i++
  const ranges: [number, number][] = []
  for (let first = true; i < cps.length; first = false) {
    let cp = cps[i]!
    if (cp === CLOSE_BRACKET && !first) {
      return { node: { kind: 'char', test: (c) => ranges.some(([lo, hi]) => c >= lo && c <= hi) !== negated }, at: i + 1 }
    }
    if (cp === BACKSLASH && i + 1 < cps.length) cp = cps[++i]!
    let hi = cp
    if (cps[i + 1] === DASH && i + 2 < cps.length && cps[i + 2] !== CLOSE_BRACKET) {
      hi = cps[i + 2] === BACKSLASH && i + 3 < cps.length ? cps[i + 3]! : cps[i + 2]!
      i += cps[i + 2] === BACKSLASH ? 4 : 3
    } else {
      i++
    }
    // A reversed range (`[z-a]`) holds nothing, as in fnmatch and minimatch: taken as `[a-z]`,
    // `rm --pattern '[z-a]*'` removed every key starting with a to z.
    if (cp <= hi) ranges.push([cp, hi])
  }
  return undefined
}

const STAR = 0x2a
const QUESTION = 0x3f
const BACKSLASH = 0x5c
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const COMMA = 0x2c
const BANG = 0x21
const CARET = 0x5e
const DASH = 0x2d
