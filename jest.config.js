// Jest runs in native ESM mode (client-node is ESM-only): start it with
// `node --experimental-vm-modules` (see package.json). ts-jest skips type
// diagnostics in ESM mode, so `npm run typecheck` runs tsc separately.
const tsJest = {
  '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }],
};
const shared = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: tsJest,
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
};

/** @type {import('jest').Config} */
export default {
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/integration/global-setup.ts',
      globalTeardown: '<rootDir>/test/integration/global-teardown.ts',
      testTimeout: 120000,
    },
  ],
};
