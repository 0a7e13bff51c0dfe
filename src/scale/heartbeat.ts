/**
 * A worker renews its announcement in Redis every `intervalMs`; it expires `ttlMs` after the
 * last renewal, and an API node that finds a running prediction whose worker's announcement is
 * gone takes the prediction back. The engine runs in its own process, so a worker's event loop
 * stays free to renew it however long a denoising step takes.
 */
export const HEARTBEAT = { intervalMs: 500, ttlMs: 2000 } as const;
