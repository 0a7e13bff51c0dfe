import { defineConfig } from 'vitest/config';
import { disableEngineTelemetry } from './src/config.js';

// Before any test process starts: the forks inherit onnxruntime's telemetry switch (off).
disableEngineTelemetry();

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
