/**
 * `--device` / FLUX_DEVICE: which execution provider each model component runs on. The text is
 * a default and/or per-component choices, comma-separated: `auto`, `webgpu`, `cpu`,
 * `webgpu,t5=cpu` or `transformer=webgpu,vae=webgpu` (unnamed components then use the CPU).
 * `auto` means WebGPU when the smoke check finds a working hardware adapter, else the CPU (a
 * software adapter such as lavapipe is only used when asked for by name: it is far slower than
 * the CPU provider); an adapter that is missing or fails the check turns `webgpu` into the CPU
 * too, with a message saying why.
 */
import { DEVICES, type Device } from './device.js';
import { describeAdapter, type WebGpuAdapter, type WebGpuProbe } from './webgpu-probe.js';

export const DEVICE_COMPONENTS = ['transformer', 'vae', 't5', 'clip', 'safety'] as const;
export type DeviceComponent = (typeof DEVICE_COMPONENTS)[number];

export type DeviceRequest = Device | 'auto';
const REQUESTS: readonly DeviceRequest[] = [...DEVICES, 'auto'];

export interface DevicePlan {
  fallback: DeviceRequest;
  components: Partial<Record<DeviceComponent, DeviceRequest>>;
}

export const CPU_ONLY: DevicePlan = { fallback: 'cpu', components: {} };

export class DeviceSpecError extends Error {
  constructor(source: string, detail: string) {
    super(`${source}: ${detail}; for example auto, webgpu, cpu or webgpu,t5=cpu (components: ${DEVICE_COMPONENTS.join(', ')})`);
    this.name = 'DeviceSpecError';
  }
}

const isRequest = (text: string): text is DeviceRequest => (REQUESTS as readonly string[]).includes(text);
const isComponent = (text: string): text is DeviceComponent => (DEVICE_COMPONENTS as readonly string[]).includes(text);

/** Parses a device text; `source` names it in errors (e.g. "--device" or "FLUX_DEVICE"). */
export function parseDevicePlan(text: string, source: string): DevicePlan {
  const plan: DevicePlan = { fallback: 'cpu', components: {} };
  let fallbackGiven = false;
  for (const part of text.split(',').map((p) => p.trim())) {
    const [name, value, extra] = part.split('=').map((p) => p.trim());
    if (value === undefined) {
      if (!isRequest(part)) throw new DeviceSpecError(source, `"${part}" is not a device (auto, webgpu or cpu)`);
      if (fallbackGiven) throw new DeviceSpecError(source, `"${text}" names the default device twice`);
      plan.fallback = part;
      fallbackGiven = true;
      continue;
    }
    if (extra !== undefined || name === undefined || !isComponent(name)) throw new DeviceSpecError(source, `"${part}" does not name a component`);
    if (!isRequest(value)) throw new DeviceSpecError(source, `"${value}" is not a device (auto, webgpu or cpu)`);
    if (plan.components[name] !== undefined) throw new DeviceSpecError(source, `${name} is given twice`);
    plan.components[name] = value;
  }
  return plan;
}

export interface DeviceChoice {
  devices: Record<DeviceComponent, Device>;
  /** The adapter the WebGPU components use, when any does. */
  adapter?: WebGpuAdapter;
  /** What was chosen and why, for the log. */
  lines: string[];
}

/** Settles the plan: runs the WebGPU smoke check once when some component may use WebGPU. */
export async function chooseDevices(plan: DevicePlan, probe: WebGpuProbe): Promise<DeviceChoice> {
  const requested = Object.fromEntries(DEVICE_COMPONENTS.map((c) => [c, plan.components[c] ?? plan.fallback])) as Record<DeviceComponent, DeviceRequest>;
  const wanting = DEVICE_COMPONENTS.filter((c) => requested[c] !== 'cpu');
  if (wanting.length === 0) return { devices: requested as Record<DeviceComponent, Device>, lines: [] };
  const result = await probe();
  const software = result.ok && result.adapter.software;
  const usesWebGpu = (c: DeviceComponent) => result.ok && (requested[c] === 'webgpu' || (requested[c] === 'auto' && !software));
  const devices = Object.fromEntries(DEVICE_COMPONENTS.map((c) => [c, usesWebGpu(c) ? 'webgpu' : 'cpu'])) as Record<DeviceComponent, Device>;
  if (!result.ok) {
    const explicit = wanting.filter((c) => requested[c] === 'webgpu');
    const lines = [`WebGPU is not available: ${result.reason}; ${wanting.join(', ')} run on the CPU`];
    if (explicit.length > 0) lines.push(`[!] ${explicit.join(', ')} asked for webgpu: falling back to the CPU`);
    return { devices, lines };
  }
  const onGpu = DEVICE_COMPONENTS.filter((c) => devices[c] === 'webgpu');
  const onCpu = DEVICE_COMPONENTS.filter((c) => devices[c] === 'cpu');
  const where = onGpu.length === 0 ? 'everything on the CPU' : `on it: ${onGpu.join(', ')}${onCpu.length > 0 ? `; on the CPU: ${onCpu.join(', ')}` : ''}`;
  const lines = [`WebGPU adapter: ${describeAdapter(result.adapter)}; ${where}`];
  if (software && onGpu.length < wanting.length)
    lines.push('It emulates a GPU on the CPU, slower than the CPU itself: auto keeps the CPU (--device webgpu uses it anyway)');
  return { devices, ...(onGpu.length > 0 ? { adapter: result.adapter } : {}), lines };
}
