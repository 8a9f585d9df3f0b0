// Compiles src/ and test/ to plain JavaScript in .test-build/, once, for the test command.
//
// Why: `node --import tsx` costs every process it starts ~0.75 s of CPU more than plain node
// (on Node 20 tsx's hooks run in a thread of their own, and every module crosses to it), and
// the suite starts one process per test file, twice a CI run (Node 20 and 24), plus the
// children its tests spawn. Compiling the ~400 files here takes about a second.
//
// What the output keeps from running the sources through tsx:
// - each file's `import.meta.url`, `dirname` and `filename` are the source file's, so paths a
//   test builds from them (fixtures, children scripts, the repository root, dist/) are the same;
// - relative imports of .ts files point at the compiled .js beside them; imports of anything
//   else (.mjs, .json) point at the original file; 'larder' and 'larder/<adapter>' resolve to
//   the compiled sources, as tsconfig's `paths` make tsx do;
// - esbuild does the TypeScript, with the compiler options tsx would pass it (tsconfig.json).
// A test file still runs on its own through tsx (`node --import tsx --test test/x.test.ts`).
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { transform } from 'esbuild'
import { init, parse } from 'es-module-lexer'
import ts from 'typescript'

const root = path.resolve(import.meta.dirname, '..')
// Inside the repository: the compiled files find its node_modules, and its package.json's
// "type": "module" makes them ES modules.
const out = path.join(root, '.test-build')
const started = performance.now()

const tsconfig = ts.parseConfigFileTextToJson('tsconfig.json', fs.readFileSync(path.join(root, 'tsconfig.json'), 'utf8'))
if (tsconfig.error) throw new Error(`tsconfig.json: ${ts.flattenDiagnosticMessageText(tsconfig.error.messageText, '\n')}`)
const { paths: _paths, ...compilerOptions } = tsconfig.config.compilerOptions

/** The .ts files under dir (not declaration files, not installed packages). */
function sources(dir) {
  return fs
    .readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts'))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .filter((file) => !file.split(path.sep).includes('node_modules'))
}

const compiledOf = (source) => path.join(out, path.relative(root, source)).replace(/\.ts$/, '.js')

/** Where an import of `specifier` from `source` goes in the compiled tree (undefined: as is). */
function rewrite(specifier, source) {
  if (specifier === 'larder') return compiledOf(path.join(root, 'src', 'index.ts'))
  if (specifier.startsWith('larder/')) return compiledOf(path.join(root, 'src', 'adapters', `${specifier.slice(7)}.ts`))
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return undefined
  const target = path.resolve(path.dirname(source), specifier)
  if (target.endsWith('.ts')) return compiledOf(target)
  // './x.js' written for a .ts file (NodeNext style): compiled beside the importer already.
  if (target.endsWith('.js') && !fs.existsSync(target) && fs.existsSync(target.replace(/\.js$/, '.ts'))) return undefined
  return target
}

async function compile(source) {
  const url = pathToFileURL(source).href
  const { code } = await transform(fs.readFileSync(source, 'utf8'), {
    loader: 'ts',
    format: 'esm',
    target: 'node20',
    sourcefile: source,
    sourcemap: 'inline',
    tsconfigRaw: { compilerOptions },
    define: {
      'import.meta.url': JSON.stringify(url),
      'import.meta.dirname': JSON.stringify(path.dirname(source)),
      'import.meta.filename': JSON.stringify(source),
    },
  })
  const target = compiledOf(source)
  const [imports] = parse(code)
  let text = ''
  let at = 0
  for (const { n: specifier, s, e, d } of imports) {
    if (specifier === undefined || d === -2) continue // import.meta, or import() of a computed name
    const to = rewrite(specifier, source)
    if (to === undefined) continue
    let relative = path.relative(path.dirname(target), to)
    if (!relative.startsWith('.')) relative = `./${relative}`
    text += code.slice(at, s) + (d === -1 ? relative : JSON.stringify(relative))
    at = e
  }
  text += code.slice(at)
  fs.mkdirSync(path.dirname(target), { recursive: true })
  fs.writeFileSync(target, text)
}

await init
fs.rmSync(out, { recursive: true, force: true })
const files = [...sources('src'), ...sources('test')]
await Promise.all(files.map(compile))
console.log(
  `build-tests: ${files.length} files into ${path.relative(root, out)}/ in ${((performance.now() - started) / 1000).toFixed(1)} s`,
)
