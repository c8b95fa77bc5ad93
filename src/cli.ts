#!/usr/bin/env node
// Entry point of the `poolpilot` command (package.json bin, `node dist/cli.js`, the image).
// It checks the Node version before anything else is loaded, because @kubernetes/client-node
// crashes at import on a Node that is too old; only then does it import the command line
// (and with it the client) dynamically. Static imports here must stay free of dependencies.
import { nodeVersionRefusal } from './node-version.js';

const refusal = nodeVersionRefusal(process.versions.node, process.execPath);
if (refusal === undefined) {
  const { cli } = await import('./command-line.js');
  process.exitCode = await cli(process.argv.slice(2));
} else {
  process.stderr.write(`${refusal}\n`);
  process.exitCode = 1;
}
