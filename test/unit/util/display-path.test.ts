import { describe, expect, it } from 'vitest';
import { displayPath } from '../../../src/util/display-path.js';

describe('paths in logs', () => {
  it('shows the home folder as ~ and leaves other paths alone', () => {
    expect(displayPath('/home/ann/.cache/flux-lora/builtin-v2/safety_checker', '/home/ann')).toBe('~/.cache/flux-lora/builtin-v2/safety_checker');
    expect(displayPath('/home/ann', '/home/ann')).toBe('~');
    expect(displayPath('/home/anna/x', '/home/ann')).toBe('/home/anna/x');
    expect(displayPath('/srv/models', '/home/ann')).toBe('/srv/models');
    expect(displayPath('/srv/models', '/')).toBe('/srv/models');
  });
});
