/**
 * The keys of a memory tier whose eviction policy is `'random'`, kept so that one can be drawn
 * uniformly at random in O(1): an array for the draw and a map from key to its slot, a removal
 * moving the last key into the freed slot. lru-cache keeps no such index of its own.
 */
export class RandomVictims {
  readonly #keys: string[] = []
  readonly #slots = new Map<string, number>()

  add(key: string): void {
    if (this.#slots.has(key)) return
    this.#slots.set(key, this.#keys.length)
    this.#keys.push(key)
  }

  remove(key: string): void {
    const slot = this.#slots.get(key)
    if (slot === undefined) return
    this.#slots.delete(key)
    const last = this.#keys.pop()!
    if (slot < this.#keys.length) {
      this.#keys[slot] = last
      this.#slots.set(last, slot)
    }
  }

  /** A key drawn uniformly at random, or undefined when there is none. */
  draw(): string | undefined {
    return this.#keys.length === 0 ? undefined : this.#keys[Math.floor(Math.random() * this.#keys.length)]
  }
}
