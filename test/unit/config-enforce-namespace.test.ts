import { describe, expect, it } from '@jest/globals';
import { expandBareFlags } from '../../src/command-line.js';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('--enforce-namespace-label', () => {
  it('is off by default', () => {
    expect(loadConfig({}, {}).enforceNamespaceLabel).toBeUndefined();
  });

  it('is on with true, from the flag or POOLPILOT_ENFORCE_NAMESPACE_LABEL', () => {
    expect(loadConfig({ 'enforce-namespace-label': 'true' }, {}).enforceNamespaceLabel).toBe(true);
    expect(loadConfig({}, { POOLPILOT_ENFORCE_NAMESPACE_LABEL: 'true' }).enforceNamespaceLabel).toBe(true);
    expect(
      loadConfig({ 'enforce-namespace-label': 'false' }, { POOLPILOT_ENFORCE_NAMESPACE_LABEL: 'true' })
        .enforceNamespaceLabel,
    ).toBeUndefined();
  });

  it('refuses other values naming the flag', () => {
    expect(() => loadConfig({ 'enforce-namespace-label': 'yes' }, {})).toThrow(ConfigError);
    expect(() => loadConfig({ 'enforce-namespace-label': 'yes' }, {})).toThrow(
      /--enforce-namespace-label \(or POOLPILOT_ENFORCE_NAMESPACE_LABEL\): expected true or false/,
    );
  });

  it('may be given bare', () => {
    expect(expandBareFlags(['run', '--enforce-namespace-label'])).toEqual(['run', '--enforce-namespace-label=true']);
    expect(expandBareFlags(['run', '--enforce-namespace-label', 'false'])).toEqual([
      'run',
      '--enforce-namespace-label',
      'false',
    ]);
  });
});
