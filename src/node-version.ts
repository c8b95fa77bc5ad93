// The oldest Node poolpilot starts on. @kubernetes/client-node 2.x uses undici 8, which needs
// Node >= 22.19 and crashes while being imported on older ones (Node 24 is what is tested).
// This module imports nothing, so the entry point can check before loading anything else.

export const MINIMUM_NODE = { major: 22, minor: 19 } as const;

/**
 * The one line to print when `version` (a `process.versions.node` value such as "20.20.2") is
 * older than MINIMUM_NODE, saying what to run instead; undefined when poolpilot can start. A
 * version that does not parse is let through: the import fails loudly if it really is too old.
 */
export function nodeVersionRefusal(version: string, execPath: string): string | undefined {
  const parsed = /^(\d+)\.(\d+)\./.exec(version);
  if (parsed === null) return undefined;
  const major = Number(parsed[1]);
  const minor = Number(parsed[2]);
  if (major > MINIMUM_NODE.major || (major === MINIMUM_NODE.major && minor >= MINIMUM_NODE.minor)) return undefined;
  return (
    `poolpilot needs Node >= ${MINIMUM_NODE.major}.${MINIMUM_NODE.minor}, found v${version} (${execPath}): ` +
    'in the repository run `npx poolpilot ...` or `node_modules/.bin/node dist/cli.js ...` (Node 24 from its devDependencies)'
  );
}
