/** Asks for the server's API token in a dialog (once a session: the Api keeps it in sessionStorage). */
import { byId } from './dom.js';

export function askToken(again: boolean): Promise<string | undefined> {
  const dialog = byId<HTMLDialogElement>('token-dialog');
  const input = byId<HTMLInputElement>('token-input');
  byId('token-message').textContent = again ? 'That token was refused. Enter the server’s API token.' : 'This server needs an API token (its --token).';
  input.value = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok' && input.value.trim() !== '' ? input.value.trim() : undefined), { once: true });
  });
}
