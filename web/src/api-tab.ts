/** The API tab: the current form as curl, JavaScript and Python, each with a copy button, and the local files they read. */
import { announce, byId, el } from './dom.js';
import { curlSnippet, javascriptSnippet, pythonSnippet, TOKEN_VARIABLE, type SnippetRequest } from './snippets.js';

const SNIPPETS = [
  { id: 'curl', title: 'curl', render: curlSnippet },
  { id: 'javascript', title: 'JavaScript (npm: replicate)', render: javascriptSnippet },
  { id: 'python', title: 'Python (pip: replicate)', render: pythonSnippet },
] as const;

export class ApiTab {
  private readonly root = byId('api-snippets');
  private readonly files = byId('api-files');
  private readonly codes = new Map<string, HTMLElement>();

  constructor() {
    byId('api-token-note').textContent = `Set ${TOKEN_VARIABLE} to the server's token if it has one.`;
    for (const snippet of SNIPPETS) {
      const code = el('code', { id: `snippet-${snippet.id}` });
      const copy = el('button', { type: 'button', class: 'small', 'aria-label': `Copy the ${snippet.title} code` }, 'Copy');
      copy.addEventListener('click', () => void copyText(code.textContent ?? '', snippet.title));
      this.codes.set(snippet.id, code);
      this.root.append(
        el(
          'section',
          { class: 'snippet' },
          el('div', { class: 'snippet-head' }, el('h3', {}, snippet.title), copy),
          el('pre', { tabindex: 0, 'aria-label': `${snippet.title} code` }, code),
        ),
      );
    }
  }

  /** Re-renders the snippets for a request, with download links for the files it reads (the data URIs the page holds). */
  update(request: SnippetRequest, data: Record<string, string>): void {
    for (const snippet of SNIPPETS) {
      const code = this.codes.get(snippet.id);
      if (code !== undefined) code.textContent = snippet.render(request);
    }
    const entries = Object.entries(request.files);
    this.files.replaceChildren(
      ...(entries.length === 0
        ? []
        : [
            el('p', {}, 'These snippets read the image inputs from local files; save them beside the code:'),
            el(
              'ul',
              {},
              ...entries.map(([name, file]) => el('li', {}, el('a', { href: data[name] ?? '#', download: file.fileName }, file.fileName), ` (${name})`)),
            ),
          ]),
    );
  }
}

async function copyText(text: string, title: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    announce(`${title} code copied`);
  } catch {
    announce('The clipboard is not available here: select the code and copy it');
  }
}
