import { describe, expect, it } from 'vitest';
import { cli } from '../../helpers/run-cli.js';

describe('flux-lora CLI', () => {
  it('prints help and version', async () => {
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: flux-lora <command>');
    expect((await cli()).stdout).toBe(help.stdout);
    const version = await cli('--version');
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('rejects unknown commands with a usage error', async () => {
    const r = await cli('paint');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('flux-lora: unknown command "paint"; see flux-lora --help\n');
  });

  it('has an eval command with help and clear errors', async () => {
    const help = await cli('eval', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--case <path>');
    const unknown = await cli('eval', 'warp-drive', '--model', 'm', '--case', 'c', '--out', 'o');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^flux-lora: eval: unknown component "warp-drive" \(available: /);
    expect((await cli('eval')).stderr).toContain('missing <component>');
    expect((await cli('eval', '--bogus')).stderr).toMatch(/flux-lora: eval: .*--bogus/);
  });
});
