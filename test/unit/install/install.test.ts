/**
 * What keeps `npm ci` free of warnings on a fresh clone (issue: first-run polish; `.ci/run` also fails on any
 * `npm warn` in the real install log): no unknown project config, every install script decided in
 * `allowScripts`, and every locked package's Node engine range met by our floor.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { engines: { node: string }; allowScripts: Record<string, boolean> };
const lock = JSON.parse(readFileSync(`${ROOT}/package-lock.json`, 'utf8')) as {
  packages: Record<string, { hasInstallScript?: boolean; engines?: { node?: string } | string[]; dev?: boolean }>;
};

type Version = [number, number, number];
const parse = (v: string): Version => {
  const [a = 0, b = 0, c = 0] = v.replace(/\.x$/, '').split('.').map(Number);
  return [a, b, c];
};
const compare = (a: Version, b: Version) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** Whether `version` meets an engines range of the forms the lock file uses (>=, >, ^, ~, bare versions, ||). */
function satisfies(version: Version, range: string): boolean {
  return range.split('||').some((alternative) =>
    alternative
      .trim()
      .replace(/(>=|<=|>|<|\^|~)\s+/g, '$1')
      .split(/\s+/)
      .every((comparator) => {
        if (comparator === '*' || comparator === '') return true;
        const m = /^(>=|<=|>|<|\^|~)?v?(\d+(?:\.\d+)?(?:\.\d+)?(?:\.x)?)$/.exec(comparator);
        if (m === null) throw new Error(`engines range form not understood: "${range}"`);
        const [op, text] = [m[1] ?? '', m[2] as string];
        const bound = parse(text);
        const c = compare(version, bound);
        if (op === '>=') return c >= 0;
        if (op === '>') return c > 0;
        if (op === '<=') return c <= 0;
        if (op === '<') return c < 0;
        if (op === '~') return c >= 0 && version[0] === bound[0] && version[1] === bound[1];
        // ^ and bare versions: the same major (a bare "20" or "20.x" is any 20).
        return version[0] === bound[0] && (op === '^' || text.split('.').length === 3 ? c >= 0 : true);
      }),
  );
}

describe('a clean npm ci', () => {
  it('reads no unknown project config (.npmrc)', () => {
    const npmrc = existsSync(`${ROOT}/.npmrc`) ? readFileSync(`${ROOT}/.npmrc`, 'utf8') : '';
    expect(npmrc).not.toMatch(/onnxruntime-node-install/);
  });

  it("decides every dependency install script in allowScripts, and never runs onnxruntime-node's GPU download", () => {
    const withScripts = Object.entries(lock.packages)
      .filter(([, p]) => p.hasInstallScript === true)
      .map(([path]) => path.replace(/^.*node_modules\//, ''));
    expect(withScripts.length).toBeGreaterThan(0);
    for (const name of withScripts) expect(pkg.allowScripts, name).toHaveProperty([name]);
    expect(pkg.allowScripts['onnxruntime-node']).toBe(false);
  });

  it('locks no package whose Node engine range excludes our floor', () => {
    const floor = parse(pkg.engines.node.replace(/^>=/, ''));
    const excluded = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && typeof p.engines === 'object' && !Array.isArray(p.engines) && p.engines.node !== undefined)
      .filter(([, p]) => !satisfies(floor, (p.engines as { node: string }).node))
      .map(([path, p]) => `${path} (${(p.engines as { node: string }).node})`);
    expect(excluded).toEqual([]);
  });

  it('reads the engine ranges as npm does', () => {
    const v = parse('20.19.0');
    expect([satisfies(v, '>=22'), satisfies(v, '>= 12.0.0'), satisfies(v, '^20.19.0 || >=22.12.0'), satisfies(v, '^20.20.0')]).toEqual([
      false,
      true,
      true,
      false,
    ]);
    expect([satisfies(v, '18 || 20 || >=22'), satisfies(v, '>=0.8.x'), satisfies(v, '~20.18.0'), satisfies(v, '^18.18.0 || >=21.1.0')]).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });
});
