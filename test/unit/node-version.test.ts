import { describe, expect, it } from '@jest/globals';
import { nodeVersionRefusal } from '../../src/node-version.js';

describe('nodeVersionRefusal', () => {
  it.each(['20.20.2', '22.18.0', '21.99.9', '18.0.0'])(
    'refuses Node %s with one line saying what to run instead',
    (version) => {
      const refusal = nodeVersionRefusal(version, '/usr/bin/node');
      expect(refusal).toBe(
        `poolpilot needs Node >= 22.19, found v${version} (/usr/bin/node): in the repository run \`npx poolpilot ...\` or ` +
          '`node_modules/.bin/node dist/cli.js ...` (Node 24 from its devDependencies)',
      );
    },
  );

  it.each(['22.19.0', '22.20.1', '23.0.0', '24.21.0', '25.1.0'])('lets Node %s start', (version) => {
    expect(nodeVersionRefusal(version, '/usr/bin/node')).toBeUndefined();
  });

  it('lets a version it cannot parse start (the import fails loudly if it is really too old)', () => {
    expect(nodeVersionRefusal('unknown', '/opt/node')).toBeUndefined();
  });
});
