#!/usr/bin/env node
// First import: onnxruntime's telemetry is turned off before the library can load.
import './engine-telemetry-off.js';
import { main } from './cli/main.js';

process.exitCode = await main(
  process.argv.slice(2),
  (text) => process.stdout.write(text),
  (text) => process.stderr.write(text),
);
