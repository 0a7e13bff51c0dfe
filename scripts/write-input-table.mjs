/** Writes docs/input-table.md from the input schema: `npm run docs:inputs` after changing src/predictor/schema.ts. */
import { writeFileSync } from 'node:fs';
import { INPUT_TABLE_PATH, inputTableDocument } from '../src/predictor/input-table.js';

writeFileSync(INPUT_TABLE_PATH, inputTableDocument());
console.log(`wrote ${INPUT_TABLE_PATH}`);
