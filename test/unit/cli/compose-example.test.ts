import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { modelNameOption, parseOptions, redisOption, urlOption } from '../../../src/cli/option-values.js';
import { SERVE_OPTIONS } from '../../../src/cli/serve-command.js';
import { WORKER_OPTIONS } from '../../../src/cli/worker-command.js';

const ROOT = new URL('../../../', import.meta.url);

interface Service {
  image?: string;
  entrypoint?: string[];
  command?: string[];
  stop_grace_period?: string;
}

const compose = parse(readFileSync(fileURLToPath(new URL('examples/compose.yaml', ROOT)), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const bin = (JSON.parse(readFileSync(fileURLToPath(new URL('package.json', ROOT)), 'utf8')) as { bin: Record<string, string> }).bin['flux-lora'];
const OPTIONS = { serve: SERVE_OPTIONS, worker: WORKER_OPTIONS } as const;

/** The flux-lora services: their command and its options, parsed by the CLI's own option table. */
function fluxServices() {
  return Object.entries(compose.services).flatMap(([name, service]) => {
    if (service.entrypoint?.at(-1) !== bin) return [];
    const [command, ...args] = service.command ?? [];
    expect(['serve', 'worker']).toContain(command);
    const values = parseOptions(command as string, args, OPTIONS[command as keyof typeof OPTIONS]) as Record<string, string | boolean | undefined>;
    return [{ name, command: command as 'serve' | 'worker', values, service }];
  });
}

describe('examples/compose.yaml', () => {
  it('runs the package bin with flags `serve` and `worker` really have, and values they accept', () => {
    const services = fluxServices();
    expect(services.map((s) => `${s.name}:${s.command}`)).toEqual(['api:serve', 'worker:worker']);
    for (const { command, values } of services) {
      const redis = redisOption(command, values.redis as string);
      // The Redis they name is the compose service (on its default port), appended to disk.
      expect(new URL(redis as string).hostname).toBe('redis');
      expect(new URL(redis as string).port).toBe('6379');
      expect(modelNameOption(command, values['model-name'] as string)).toBe('acme/flux-dev');
    }
    const api = services.find((s) => s.command === 'serve');
    expect(urlOption('serve', 'public-url', api?.values['public-url'] as string)).toBeDefined();
    expect(api?.values.host).toBe('0.0.0.0');
    expect(api?.values.token).toBe('${FLUX_LORA_API_TOKEN}'); // a non-loopback address needs a token
    expect(compose.services.redis?.command).toEqual(expect.arrayContaining(['--appendonly', 'yes']));
    // Long enough for a draining worker to finish its prediction.
    expect(services.find((s) => s.command === 'worker')?.service.stop_grace_period).toBe('10m');
  });

  it('would catch a flag the CLI does not have', () => {
    expect(() => parseOptions('serve', ['--redis-url', 'redis://redis:6379'], SERVE_OPTIONS)).toThrow("serve: Unknown option '--redis-url'");
    expect(() => parseOptions('worker', ['--model'], WORKER_OPTIONS)).toThrow("worker: Unknown option '--model'");
  });
});
