// `npm run build`: src/cli.ts and everything it imports as one ES module, dist/cli.js, which is
// what the image, `make run`, the demo, the tests and the benchmarks run. Bundled because
// @kubernetes/client-node's entry loads every generated API module (about 15 MB of source that
// V8 keeps for lazy compilation): importing it added 85 MiB to a Node process's RSS, the same
// imports bundled 33 MiB, and the operator's whole code 140 → 109 MiB (bench/results.md, issue 14).
// Type errors are `npm run typecheck`'s job (tsc); esbuild only strips the types.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli.ts'],
  outfile: 'dist/cli.js',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  // Identifiers keep their names: log lines and stack traces name the functions.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  // The CommonJS dependencies bundled into this ES module call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
