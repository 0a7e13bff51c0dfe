/** Option values `serve` and `worker` share, each checked with a usage error naming the option. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DEFAULT_MAX_PIXELS } from '../images/decode.js';
import { DEFAULT_IMAGE_SOURCE } from '../images/source.js';
import { DEFAULT_LORA_TIMEOUT_MS } from '../lora/cache-policy.js';
import { DEFAULT_IDLE_TIMEOUT_MS } from '../net/safe-fetch.js';
import { isRedisUrl } from '../scale/redis.js';
import { parseCommandLine, UsageError } from './usage-error.js';

/** The command's options (no positionals); a parse error is a usage error naming the command. */
export function parseOptions<O extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  args: string[],
  options: O,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: false; strict: true }>>['values'] {
  return parseCommandLine(command, () => parseArgs({ args, options, allowPositionals: false, strict: true }).values);
}

/** A number option: absent → the default; otherwise it must be a number ≥ min (an integer where asked). */
export function numberOption(command: string, name: string, text: string | undefined, fallback: number, { min = 0, integer = false } = {}): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new UsageError(`${command}: --${name} must be ${integer ? 'an integer' : 'a number'} of at least ${min}, got "${text}"`);
  }
  return value;
}

export function urlOption(command: string, name: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!/^https?:\/\/[^/]/i.test(text) || !URL.canParse(text)) throw new UsageError(`${command}: --${name} must be an http(s) URL, got "${text}"`);
  return text;
}

export function redisOption(command: string, text: string | undefined): string | undefined {
  if (text !== undefined && !isRedisUrl(text)) throw new UsageError(`${command}: --redis must be a redis:// or rediss:// URL, got "${text}"`);
  return text;
}

export function modelNameOption(command: string, text: string | undefined): string | undefined {
  if (text !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(text)) throw new UsageError(`${command}: --model-name must look like owner/name, got "${text}"`);
  return text;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function logLevelOption(command: string, text: string | undefined): string {
  const level = text ?? 'info';
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`${command}: --log-level must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  return level;
}

/** The options of FETCH_HELP, and --help (parseArgs definitions). */
export const FETCH_OPTIONS = {
  'allow-private-networks': { type: 'boolean' },
  'fetch-idle-timeout': { type: 'string' },
  'lora-timeout': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** --fetch-idle-timeout and --lora-timeout in milliseconds, --allow-private-networks, and the image inputs' rules they give. */
export function fetchSettings(command: string, values: { 'fetch-idle-timeout'?: string; 'lora-timeout'?: string; 'allow-private-networks'?: boolean }) {
  const idleTimeoutMs = numberOption(command, 'fetch-idle-timeout', values['fetch-idle-timeout'], DEFAULT_IDLE_TIMEOUT_MS / 1000, { min: 0.001 }) * 1000;
  const allowPrivateNetworks = values['allow-private-networks'] === true;
  return {
    idleTimeoutMs,
    loraTimeoutMs: numberOption(command, 'lora-timeout', values['lora-timeout'], DEFAULT_LORA_TIMEOUT_MS / 1000, { min: 0.001 }) * 1000,
    allowPrivateNetworks,
    imageSource: { ...DEFAULT_IMAGE_SOURCE, maxPixels: DEFAULT_MAX_PIXELS, idleTimeoutMs, allowLocalFiles: false, allowPrivateNetworks },
  };
}

export const FETCH_HELP = `  --allow-private-networks    let image and LoRA URLs reach loopback and private addresses
  --fetch-idle-timeout <s>    an image or LoRA download that sends no byte this long fails (default ${DEFAULT_IDLE_TIMEOUT_MS / 1000})
  --lora-timeout <s>          time cap of one LoRA download (default ${DEFAULT_LORA_TIMEOUT_MS / 1000})
  --log-level <level>         fatal, error, warn, info, debug, trace or silent (default info)`;
