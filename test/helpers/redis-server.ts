/**
 * A real redis-server for a test file, on a free loopback port, its append-only file in a temp
 * folder (fsync on every write, so `kill -9` loses nothing and a restart on the same folder
 * brings the data back). `REDIS_SERVER` names another binary; `.ci/run` installs Debian's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll } from 'vitest';
import { freePort } from '../e2e/server/helpers.js';

async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('error', () => resolve(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
  });
}

/** Every redis-server started by the test file, killed when it ends (registered at collection). */
const servers = new Set<() => Promise<void>>();
afterAll(async () => {
  for (const kill of servers) await kill();
});

export async function startRedis(dir: string) {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      process.env.REDIS_SERVER ?? 'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    while (!(await answersPing(port))) {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const kill = async () => {
    const running = child;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
  };
  await start();
  servers.add(kill);
  return { url: `redis://127.0.0.1:${port}`, port, kill, start };
}
