/**
 * Imported first by every entry point (before anything that can load onnxruntime-node): turns
 * onnxruntime's telemetry off in the real process environment unless the operator allows it.
 */
import { disableEngineTelemetry } from './config.js';

disableEngineTelemetry();
