// Jest runs in native ESM mode (client-node is ESM-only): start it with
// `node --experimental-vm-modules` (see package.json). ts-jest skips type
// diagnostics in ESM mode, so `npm run typecheck` runs tsc separately.
// `npm run test:unit -- <path>` and `npm run test:integration -- <path>` select one project each
// through its own config file (jest.unit.config.js, jest.integration.config.js).

/** @type {import('jest').Config} */
export const shared = {
  rootDir: import.meta.dirname,
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }] },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
  // The local control plane's state (.local/etcd) holds etcd's own *.snap files once it has run a
  // while (a benchmark): Jest would take them for obsolete snapshots and fail the run.
  modulePathIgnorePatterns: ['<rootDir>/.local/'],
};

/** @type {import('jest').Config} */
export const unit = { ...shared, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] };

/** @type {import('jest').Config} */
export const integration = {
  ...shared,
  displayName: 'integration',
  testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
  // Starts the real local control plane (etcd, kube-apiserver, Prometheus) unless it is up.
  globalSetup: '<rootDir>/test/integration/global-setup.ts',
  globalTeardown: '<rootDir>/test/integration/global-teardown.ts',
  testTimeout: 120000,
};

/** @type {import('jest').Config} */
export default { projects: [unit, integration] };
