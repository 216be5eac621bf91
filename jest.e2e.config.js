import base from './jest.config.js';

/** The browser test: real Chromium driving demo mode, as `npm run test:e2e`. */
export default {
  ...base,
  roots: ['<rootDir>/test-e2e'],
  testMatch: ['**/*.e2e.test.ts'],
  testTimeout: 90000,
  maxWorkers: 1,
};
