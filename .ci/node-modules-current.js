// Exits 0 when node_modules holds every package package-lock.json pins, at the pinned version;
// else prints the first difference and exits 1. npm ci records the tree it placed in
// node_modules/.package-lock.json; a package the lock marks optional may be absent (npm skips
// those built for other platforms). Packages the lock does not name are tolerated: nothing
// pinned depends on them, and a tree shared with a branch that adds a dependency stays usable.
// Runs on whatever Node runs npm (the machine's own may be old): plain JavaScript, no imports
// beyond node:fs and node:process.
import { readFileSync } from 'node:fs';
import process from 'node:process';

function packagesOf(lockFile) {
  return JSON.parse(readFileSync(lockFile, 'utf8')).packages ?? {};
}

function firstDifference() {
  const locked = packagesOf('package-lock.json');
  let installed;
  try {
    installed = packagesOf('node_modules/.package-lock.json');
  } catch {
    return 'node_modules has no record of an npm install';
  }
  for (const [path, pin] of Object.entries(locked)) {
    if (path === '') continue;
    const present = installed[path];
    if (present === undefined && pin.optional !== true) return `${path} is missing`;
    if (present !== undefined && present.version !== pin.version) return `${path} is ${present.version}, package-lock.json pins ${pin.version}`;
  }
  return undefined;
}

const difference = firstDifference();
if (difference !== undefined) {
  process.stdout.write(`${difference}\n`);
  process.exitCode = 1;
}
