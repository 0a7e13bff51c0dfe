import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseInputArgument } from '../../../src/cli/input-arguments.js';
import { UsageError } from '../../../src/cli/usage-error.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const tmp = useTempDir('cli-inputs-');

/** A working folder holding a LoRA and an image, and a sub-folder with another LoRA. */
function workdir(): string {
  const dir = tmp();
  mkdirSync(join(dir, 'loras'), { recursive: true });
  for (const file of ['l.safetensors', 'm.png', 'loras/style.safetensors']) writeFileSync(join(dir, file), 'x');
  return dir;
}

describe('flux-lora predict -i arguments', () => {
  it('types values by the schema and leaves unparsable ones for validation', () => {
    expect(parseInputArgument('seed=-3', '/x')).toEqual(['seed', -3]);
    expect(parseInputArgument('guidance_scale=2.5', '/x')).toEqual(['guidance_scale', 2.5]);
    expect(parseInputArgument('guidance_scale=', '/x')).toEqual(['guidance_scale', '']);
    expect(parseInputArgument('go_fast=true', '/x')).toEqual(['go_fast', true]);
    expect(parseInputArgument('go_fast=1', '/x')).toEqual(['go_fast', '1']);
    expect(parseInputArgument('prompt=a=b', '/x')).toEqual(['prompt', 'a=b']);
    expect(parseInputArgument('prompt=@me', '/x')).toEqual(['prompt', '@me']);
    expect(parseInputArgument('image=https://e.com/a.png', '/x')).toEqual(['image', 'https://e.com/a.png']);
    expect(parseInputArgument('extra_lora=fofr/flux-pixar-cars', '/x')).toEqual(['extra_lora', 'fofr/flux-pixar-cars']);
    expect(parseInputArgument('replicate_weights=', '/x')).toEqual(['replicate_weights', '']);
    expect(parseInputArgument('loras=[{"weights":"a/b","scale":0.5}]', '/x')).toEqual(['loras', [{ weights: 'a/b', scale: 0.5 }]]);
    expect(parseInputArgument('loras={"weights":"a/b"}', '/x')).toEqual(['loras', { weights: 'a/b' }]);
  });

  it('reads local files the same way for images, masks and every LoRA input, loras items included', () => {
    const cwd = workdir();
    for (const name of ['image', 'mask']) {
      expect(parseInputArgument(`${name}=@m.png`, cwd)).toEqual([name, join(cwd, 'm.png')]);
      expect(parseInputArgument(`${name}=m.png`, cwd)).toEqual([name, join(cwd, 'm.png')]);
    }
    for (const name of ['replicate_weights', 'extra_lora']) {
      expect(parseInputArgument(`${name}=@l.safetensors`, cwd)).toEqual([name, join(cwd, 'l.safetensors')]);
      expect(parseInputArgument(`${name}=l.safetensors`, cwd)).toEqual([name, join(cwd, 'l.safetensors')]);
      expect(parseInputArgument(`${name}=./loras/style.safetensors`, cwd)).toEqual([name, join(cwd, 'loras/style.safetensors')]);
      // A Replicate name is a name unless a file of that path exists here.
      expect(parseInputArgument(`${name}=owner/model`, cwd)).toEqual([name, 'owner/model']);
      expect(parseInputArgument(`${name}=loras/style.safetensors`, cwd)).toEqual([name, join(cwd, 'loras/style.safetensors')]);
    }
    expect(parseInputArgument('loras=[{"weights":"@l.safetensors"},{"weights":"loras/style.safetensors","scale":2},{"weights":"a/b"}]', cwd)).toEqual([
      'loras',
      [{ weights: join(cwd, 'l.safetensors') }, { weights: join(cwd, 'loras/style.safetensors'), scale: 2 }, { weights: 'a/b' }],
    ]);
  });

  it('names the input when an @file is missing or the loras list is not JSON', () => {
    const cwd = workdir();
    expect(() => parseInputArgument('image=@none.png', cwd)).toThrow(new UsageError('predict: input "image": no such file none.png'));
    expect(() => parseInputArgument('extra_lora=@loras', cwd)).toThrow(new UsageError('predict: input "extra_lora": no such file loras'));
    expect(() => parseInputArgument('loras=[{"weights":"@gone.safetensors"}]', cwd)).toThrow(
      new UsageError('predict: input "loras[0].weights": no such file gone.safetensors'),
    );
    expect(() => parseInputArgument('loras=[oops', cwd)).toThrow(/^predict: input "loras" is not valid JSON \(.+\); for example loras='\[/);
  });
});
