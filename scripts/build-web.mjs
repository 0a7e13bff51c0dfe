// Builds the browser pages into dist/web: compiles web/src (tsc, web/tsconfig.json) and copies
// the HTML and CSS beside the scripts; `flux-lora serve` serves that folder.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'web');
mkdirSync(out, { recursive: true });
execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'web', 'tsconfig.json')], { stdio: 'inherit' });
for (const name of readdirSync(join(root, 'web'))) {
  if (/\.(html|css)$/.test(name)) copyFileSync(join(root, 'web', name), join(out, name));
}
