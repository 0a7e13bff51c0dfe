import { describe, expect, it } from 'vitest';
import { cli } from '../../helpers/run-cli.js';
import { PREDICT_HELP } from '../../../src/cli/predict-command.js';
import { SERVE_HELP } from '../../../src/cli/serve-command.js';
import { INPUT_NAMES } from '../../../src/predictor/schema.js';

/** The column each option's description starts at, for the lines of an Options: block. */
function descriptionColumns(help: string): Set<number> {
  const block = help.slice(help.indexOf('Options:\n'), help.indexOf('\n\n', help.indexOf('Options:\n')));
  return new Set(
    block
      .split('\n')
      .slice(1)
      .map((line) => (/^ {2}-/.exec(line) ? (/^( {2}-.*? {2,})\S/.exec(line)?.[1]?.length ?? -1) : line.search(/\S/))),
  );
}

describe('command help', () => {
  it('aligns every option description of predict and serve in one column', () => {
    expect([...descriptionColumns(PREDICT_HELP)]).toEqual([30]);
    expect([...descriptionColumns(SERVE_HELP)]).toEqual([30]);
  });

  it('predict --help lists every input with its type, default and range', async () => {
    const help = await cli('predict', '--help');
    expect(help.code).toBe(0);
    for (const name of INPUT_NAMES) expect(help.stdout).toMatch(new RegExp(`^ {2}${name} +`, 'm'));
    expect(help.stdout).toMatch(/^ {2}output_quality +integer +80 +0\.\.100$/m);
  });

  it('schema --help explains the command instead of refusing the flag', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await cli('schema', flag);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout).toContain('Usage: flux-lora schema');
    }
    expect(await cli('schema', 'extra')).toMatchObject({ code: 2, stderr: 'flux-lora: schema: unexpected argument "extra"; see flux-lora schema --help\n' });
  });
});
