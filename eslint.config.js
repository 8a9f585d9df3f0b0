// Lint rules that catch real bugs (promises nobody awaits, unsafe `any`, dead code), not taste:
// formatting is Prettier's job. Type-aware rules run on the TypeScript the compiler checks
// (src, test, bench); plain .mjs/.js scripts get the untyped recommended set, with Node's
// globals, and the dashboard's script the browser's.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

// node:test's describe/it/test return promises the runner itself awaits.
const nodeTest = {
  from: 'package',
  package: 'node:test',
  name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
}

export default tseslint.config(
  { ignores: ['dist/**', '.test-build/**', 'docs/**', 'node_modules/**', 'bench/results/**', 'fixtures/**', 'coverage/**'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['tsup.config.ts'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [nodeTest] }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: globals.node },
    rules: { 'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }] },
  },
  { files: ['src/server/dashboard/**/*.js'], languageOptions: { globals: globals.browser } },
)
