export * from './elementwise.js';
export * from './linalg.js';
export * from './shape-ops.js';
export * from './nn.js';
export * from './contrib.js';
export * from './attention.js';
