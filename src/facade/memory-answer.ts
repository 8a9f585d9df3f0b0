/**
 * The key of `Larder`'s one method for larder's own adapters (src/adapters/cache-source.ts):
 * a get answered at once from the memory tier, handed back without wrapping. A registered
 * symbol (`Symbol.for`), not an export: the adapters reach larder through the package name,
 * possibly a second copy of it (an app's ESM import beside a library's CJS require), and every
 * copy names the same symbol. Not part of the documented API.
 */
export const memoryAnswer: unique symbol = Symbol.for('larder.memoryAnswer') as never
