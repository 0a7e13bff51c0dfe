/** Paths as logs show them: under the home folder as `~/…`, so every run's log does not spell out the user's home. */
import { homedir } from 'node:os';
import { sep } from 'node:path';

export function displayPath(path: string, home: string = homedir()): string {
  if (home === '' || home === sep) return path;
  if (path === home) return '~';
  return path.startsWith(`${home}${sep}`) ? `~${path.slice(home.length)}` : path;
}
