/**
 * LoRA source strings → sources and download URLs: the vectors of docs/reference-behaviour.md §7.5 with
 * the docs/decisions.md changes (scheme-less URLs are URLs, CivitAI model pages and modelVersionId, any
 * .tar URL), and the reference's error messages.
 */
import { describe, expect, it } from 'vitest';
import {
  civitaiDownloadUrl,
  civitaiModelUrl,
  DEFAULT_LORA_HOSTS as HOSTS,
  describeSource,
  huggingFaceFileUrl,
  huggingFaceListUrl,
  LoraSourceError,
  parseLoraSource,
  replicateWeightsUrl,
  type LoraSource,
} from '../../../src/lora/sources.js';

const parse = (value: string): LoraSource => parseLoraSource('replicate_weights', value);

/** Where a source downloads from with the default hosts (CivitAI model pages: the API look-up first). */
function resolved(source: LoraSource): string {
  switch (source.kind) {
    case 'replicate':
      return replicateWeightsUrl(HOSTS, source.owner, source.name, source.version);
    case 'huggingface':
      return source.file === undefined
        ? `list ${huggingFaceListUrl(HOSTS, source.owner, source.repo)}`
        : huggingFaceFileUrl(HOSTS, source.owner, source.repo, source.revision, source.file);
    case 'civitai':
      return source.version === undefined
        ? `look up ${civitaiModelUrl(HOSTS, source.model as string)}`
        : civitaiDownloadUrl(HOSTS, source.version, source.query);
    case 'url':
      return `${source.format} ${source.url}`;
    case 'data':
      return 'data';
    case 'local':
      return `local ${source.path}`;
    case 'builtin':
      return `builtin ${source.name}`;
  }
}

const MONA = 'https://replicate.com/fofr/flux-mona-lisa/_weights';
const MONA_VERSION = 'https://replicate.com/fofr/flux-mona-lisa/versions/abc123/_weights';

describe('§7.5 LoRA identifier → download URL (with docs/decisions.md)', () => {
  it.each([
    ['fofr/flux-mona-lisa', MONA],
    ['fofr/flux-mona-lisa/', MONA],
    ['https://replicate.com/fofr/flux-mona-lisa', MONA],
    ['fofr/flux-mona-lisa/abc123', MONA_VERSION],
    ['fofr/flux-mona-lisa/versions/abc123', MONA_VERSION],
    ['https://replicate.com/fofr/flux-mona-lisa/versions/abc123', MONA_VERSION],
    // docs/decisions.md: scheme-less URLs are the URLs they spell (the reference misparses these as Replicate ids).
    ['replicate.com/fofr/flux-mona-lisa', MONA],
    ['replicate.com/fofr/flux-mona-lisa/versions/abc123/', MONA_VERSION],
    ['huggingface.co/multimodalart/flux-tarot-v1', 'list https://huggingface.co/api/models/multimodalart/flux-tarot-v1'],
    ['https://huggingface.co/owner/model/lora.safetensors', 'https://huggingface.co/owner/model/resolve/main/lora.safetensors'],
    ['https://huggingface.co/owner/model/resolve/main/lora.safetensors', 'https://huggingface.co/owner/model/resolve/main/lora.safetensors'],
    ['huggingface.co/owner/model/resolve/main/lora.safetensors', 'https://huggingface.co/owner/model/resolve/main/lora.safetensors'],
    ['https://huggingface.co/owner/model/blob/v2/sub/lora.safetensors', 'https://huggingface.co/owner/model/resolve/v2/sub/lora.safetensors'],
    // docs/decisions.md: a CivitAI model page names the model; its newest version is looked up, a modelVersionId wins.
    ['https://civitai.com/models/12345', 'look up https://civitai.com/api/v1/models/12345'],
    ['civitai.com/models/12345/some-name/', 'look up https://civitai.com/api/v1/models/12345'],
    ['https://civitai.com/models/12345?modelVersionId=678', 'https://civitai.com/api/download/models/678?type=Model&format=SafeTensor'],
    ['civitai.com/models/12345?modelVersionId=678', 'https://civitai.com/api/download/models/678?type=Model&format=SafeTensor'],
    ['https://civitai.com/api/download/models/735262', 'https://civitai.com/api/download/models/735262'],
    [
      'https://civitai.com/api/download/models/735262?type=Model&format=SafeTensor&token=SECRET',
      'https://civitai.com/api/download/models/735262?type=Model&format=SafeTensor',
    ],
    ['https://example.com/x.safetensors?sig=abc&exp=1', 'safetensors https://example.com/x.safetensors?sig=abc&exp=1'],
    ['example.com/x.safetensors', 'safetensors https://example.com/x.safetensors'],
    ['http://example.com:8080/dir/x.safetensors', 'safetensors http://example.com:8080/dir/x.safetensors'],
    ['https://example.com/weights.tar', 'tar https://example.com/weights.tar'],
    ['https://example.com/weights.tar.gz', 'tar https://example.com/weights.tar.gz'],
    ['https://replicate.delivery/pbxt/ABC/trained_model.tar', 'tar https://replicate.delivery/pbxt/ABC/trained_model.tar'],
    ['https://replicate.delivery/pbxt/ABC/trained_model.tar?x=1', 'tar https://replicate.delivery/pbxt/ABC/trained_model.tar?x=1'],
    ['data:application/x-tar;base64,AAAA', 'data'],
    ['/srv/loras/a.safetensors', 'local /srv/loras/a.safetensors'],
    ['./a.safetensors', 'local ./a.safetensors'],
    ['../a.safetensors', 'local ../a.safetensors'],
    ['file:///srv/loras/a.safetensors', 'local /srv/loras/a.safetensors'],
    ['builtin:tok', 'builtin tok'],
  ])('%s → %s', (value, expected) => {
    expect(resolved(parse(value))).toBe(expected);
  });

  it('names the parts of each source', () => {
    expect(parse('fofr/flux-mona-lisa/versions/abc123')).toEqual({ kind: 'replicate', owner: 'fofr', name: 'flux-mona-lisa', version: 'abc123' });
    expect(parse('huggingface.co/multimodalart/flux-tarot-v1')).toEqual({
      kind: 'huggingface',
      owner: 'multimodalart',
      repo: 'flux-tarot-v1',
      revision: 'main',
    });
    expect(parse('https://civitai.com/models/12345/name?modelVersionId=678')).toEqual({ kind: 'civitai', model: '12345', version: '678' });
    expect(parse('https://civitai.com/api/download/models/9?token=SECRET')).toEqual({ kind: 'civitai', version: '9', query: '', token: 'SECRET' });
  });

  const GENERAL = /^input "replicate_weights": Failed to parse URL\. Expected either:\n\* Replicate model/;
  const HF =
    /^input "replicate_weights": Failed to parse HuggingFace URL\. Expected huggingface\.co\/<owner>\/<model-name>\[\/<lora-weights-file\.safetensors>\]$/;
  const CIVITAI = /^input "replicate_weights": Failed to parse CivitAI URL\. Expected civitai\.com\/models\/<id>\[\/<model-name>\]$/;
  it.each([
    ['https://www.huggingface.co/owner/model', HF],
    ['https://huggingface.co/owner', HF],
    ['huggingface.co/owner/model/tree/main', HF],
    ['https://huggingface.co/owner/model/resolve/main/../x.safetensors', HF],
    ['https://civitai.com/models/abc', CIVITAI],
    ['civitai.com/user/someone', CIVITAI],
    ['https://civitai.com/models/12345?modelVersionId=x', CIVITAI],
    ['https://unsupported.com/model', GENERAL],
    ['owner', GENERAL],
    ['a/b/c/d', GENERAL],
    ['', GENERAL],
    ['ftp://example.com/x.safetensors', GENERAL],
    ['https://user:pass@example.com/x.safetensors', GENERAL],
    ['fofr/flux mona', GENERAL],
    ['fofr/flux-mona-lisa/versions', GENERAL],
    ['data:application/x-tar,%ZZ', /^input "replicate_weights": data URI of 26 characters: a data URI must be base64 \(data:<type>;base64,<data>\)$/],
    ['data:', /a data URI must be base64/],
    ['builtin:', /^input "replicate_weights": builtin:: a built-in LoRA is named builtin:<name> with lower-case letters, digits, - or _$/],
    ['builtin:../tok', /a built-in LoRA is named builtin:<name>/],
  ])('%s is refused with the reference message', (value, message) => {
    let error: unknown;
    try {
      parse(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LoraSourceError);
    expect((error as LoraSourceError).name).toBe('LoraSourceError');
    expect((error as LoraSourceError).input).toBe('replicate_weights');
    expect((error as Error).message).toMatch(message);
  });

  it('messages never show credentials, signatures or whole data URIs', () => {
    expect(() => parse('https://user:pass@example.com/model')).toThrow(/Got: https:\/\/example\.com\/model$/);
    expect(describeSource('https://example.com/x.safetensors?token=SECRET')).toBe('https://example.com/x.safetensors');
    expect(describeSource(`data:application/x-tar;base64,${'A'.repeat(1000)}`)).toBe('data URI of 1030 characters');
  });

  it('builds URLs on the configured hosts, escaping path parts', () => {
    const hosts = { replicate: 'http://127.0.0.1:1/', huggingface: 'http://127.0.0.1:2', civitai: 'http://127.0.0.1:3' };
    expect(replicateWeightsUrl(hosts, 'o', 'n')).toBe('http://127.0.0.1:1/o/n/_weights');
    expect(huggingFaceFileUrl(hosts, 'o', 'r', 'main', 'sub dir/a b.safetensors')).toBe('http://127.0.0.1:2/o/r/resolve/main/sub%20dir/a%20b.safetensors');
    expect(civitaiDownloadUrl(hosts, '5')).toBe('http://127.0.0.1:3/api/download/models/5?type=Model&format=SafeTensor');
  });
});
