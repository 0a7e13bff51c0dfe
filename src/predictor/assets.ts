/**
 * Finds the FLUX.1 model files under FLUX_MODEL_DIR. Accepted layouts, possibly mixed:
 *  - a diffusers pipeline folder (model_index.json, transformer/, vae/, text_encoder/,
 *    text_encoder_2/, tokenizer/, tokenizer_2/), or several as subfolders (FLUX.1-dev/,
 *    FLUX.1-schnell/); a "slim" pipeline holding only its transformer borrows the other
 *    components from a sibling, as the reference does for schnell;
 *  - single files as ComfyUI users keep them: flux1-dev / flux1-schnell (.safetensors or
 *    .sft), ae, clip_l, t5xxl_fp16 / t5xxl_fp8_e4m3fn, with tokenizer/ and tokenizer_2/ folders.
 * The variant of a pipeline's transformer comes from its config (guidance_embeds); of a
 * single file, from its name. Whatever is missing is reported file by file. A safety pair
 * (`safety_checker/` + `feature_extractor/` as in diffusers pipelines, and the classifier's
 * `nsfw_image_detection/`) is picked up from the root or a pipeline folder.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SafetyPaths } from '../pipeline/safety-checker.js';

export type Variant = 'dev' | 'schnell';
export const VARIANTS: readonly Variant[] = ['dev', 'schnell'];

type Part = 'vae' | 'clip' | 't5' | 'clipTokenizer' | 't5Tokenizer';
const PARTS: readonly Part[] = ['vae', 'clip', 't5', 'clipTokenizer', 't5Tokenizer'];

export interface PipelineAssets extends Record<Part, string> {
  variant: Variant;
  transformer: string;
}

export interface ModelAssets {
  root: string;
  pipelines: Partial<Record<Variant, PipelineAssets>>;
  /** The safety pair when the folder holds one: `safety_checker/` and `nsfw_image_detection/`, at the root or in a pipeline folder. */
  safety?: SafetyPaths;
}

export class ModelAssetsError extends Error {
  constructor(root: string, detail: string) {
    super(`model folder ${root}: ${detail}`);
    this.name = 'ModelAssetsError';
  }
}

function kind(path: string): 'file' | 'folder' | null {
  try {
    const s = statSync(path);
    return s.isDirectory() ? 'folder' : s.isFile() ? 'file' : null;
  } catch {
    return null;
  }
}
const isDir = (p: string) => kind(p) === 'folder';
const isFile = (p: string) => kind(p) === 'file';

/** A diffusers model subfolder is usable when it has config.json and weights (one file or an index). */
function modelFolderProblems(folder: string, name: string): string[] {
  const problems: string[] = [];
  if (!isFile(join(folder, 'config.json'))) problems.push(`${name}/config.json`);
  const entries = isDir(folder) ? readdirSync(folder) : [];
  if (!entries.some((e) => e.endsWith('.safetensors') || e.endsWith('.safetensors.index.json'))) problems.push(`${name}/*.safetensors`);
  return problems;
}

function clipTokenizerOk(folder: string): boolean {
  return isFile(join(folder, 'tokenizer.json')) || (isFile(join(folder, 'vocab.json')) && isFile(join(folder, 'merges.txt')));
}

const t5TokenizerOk = (folder: string) => isFile(join(folder, 'tokenizer.json'));

/** Where each part lives in a diffusers pipeline folder. */
const SUBFOLDER: Record<Part, string> = { vae: 'vae', clip: 'text_encoder', t5: 'text_encoder_2', clipTokenizer: 'tokenizer', t5Tokenizer: 'tokenizer_2' };

/** What each part is, for messages about single-file folders. */
const PART_FILES: Record<Part, string> = {
  vae: 'ae.safetensors (the autoencoder)',
  clip: 'clip_l.safetensors (the CLIP-L text encoder)',
  t5: 't5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors (the T5-XXL encoder)',
  clipTokenizer: 'tokenizer/ (vocab.json + merges.txt, or tokenizer.json: the CLIP tokenizer)',
  t5Tokenizer: 'tokenizer_2/tokenizer.json (the T5 tokenizer)',
};

interface Candidate {
  /** Where it came from, for messages. */
  origin: string;
  variant: Variant;
  transformer: string;
  parts: Partial<Record<Part, string>>;
  /** Missing files of a pipeline folder's own transformer (reported as is). */
  problems: string[];
}

function pipelineCandidate(folder: string): Candidate {
  const problems = modelFolderProblems(join(folder, 'transformer'), 'transformer');
  let variant: Variant = /schnell/i.test(folder) ? 'schnell' : 'dev';
  const configPath = join(folder, 'transformer', 'config.json');
  if (isFile(configPath)) {
    try {
      variant = (JSON.parse(readFileSync(configPath, 'utf8')) as { guidance_embeds?: unknown }).guidance_embeds === true ? 'dev' : 'schnell';
    } catch {
      problems.push('transformer/config.json (not valid JSON)');
    }
  }
  const parts: Partial<Record<Part, string>> = {};
  for (const part of PARTS) {
    const path = join(folder, SUBFOLDER[part]);
    if (!isDir(path)) continue;
    // A subfolder that is present but incomplete is reported, never silently replaced by a sibling's.
    const found =
      part === 'clipTokenizer'
        ? clipTokenizerOk(path)
          ? []
          : [`tokenizer/vocab.json + merges.txt (or tokenizer.json)`]
        : part === 't5Tokenizer'
          ? t5TokenizerOk(path)
            ? []
            : ['tokenizer_2/tokenizer.json']
          : modelFolderProblems(path, SUBFOLDER[part]);
    if (found.length === 0) parts[part] = path;
    else problems.push(...found);
  }
  return { origin: folder, variant, transformer: join(folder, 'transformer'), parts, problems };
}

/** Single-file components directly in `dir`. */
function singleFiles(dir: string): { transformers: Candidate[]; parts: Partial<Record<Part, string>> } {
  const entries = readdirSync(dir).sort();
  const weights = (re: RegExp) => entries.filter((e) => re.test(e) && isFile(join(dir, e)));
  const parts: Partial<Record<Part, string>> = {};
  const first = (names: string[]) => (names[0] === undefined ? undefined : join(dir, names[0]));
  const vae = first(weights(/^ae\.(safetensors|sft)$/i));
  const clip = first(weights(/^clip_l.*\.safetensors$/i));
  // Prefer the higher-precision T5 when several are present.
  const t5 = first(weights(/^t5xxl.*\.safetensors$/i).sort((a, b) => Number(/fp8/i.test(a)) - Number(/fp8/i.test(b))));
  if (vae !== undefined) parts.vae = vae;
  if (clip !== undefined) parts.clip = clip;
  if (t5 !== undefined) parts.t5 = t5;
  if (clipTokenizerOk(join(dir, 'tokenizer'))) parts.clipTokenizer = join(dir, 'tokenizer');
  if (t5TokenizerOk(join(dir, 'tokenizer_2'))) parts.t5Tokenizer = join(dir, 'tokenizer_2');
  const transformers = weights(/^flux1-(dev|schnell)([-_.].*)?\.(safetensors|sft)$/i).map((name): Candidate => ({
    origin: join(dir, name),
    variant: /schnell/i.test(name) ? 'schnell' : 'dev',
    transformer: join(dir, name),
    parts: {},
    problems: [],
  }));
  return { transformers, parts };
}

export function resolveModelAssets(dir: string): ModelAssets {
  const root = resolve(dir);
  if (!existsSync(root)) throw new ModelAssetsError(root, 'no such folder');
  if (!isDir(root)) throw new ModelAssetsError(root, 'not a folder');
  const pipelineFolders = isFile(join(root, 'model_index.json'))
    ? [root]
    : readdirSync(root)
        .sort()
        .map((e) => join(root, e))
        .filter((p) => isFile(join(p, 'model_index.json')));
  const pipelines = pipelineFolders.map(pipelineCandidate);
  const single = singleFiles(root);
  const candidates = [...pipelines, ...single.transformers];
  if (candidates.length === 0) {
    throw new ModelAssetsError(
      root,
      'no FLUX.1 model found: expected a diffusers pipeline folder (model_index.json, transformer/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/), subfolders holding such pipelines, or flux1-dev.safetensors / flux1-schnell.safetensors with ae.safetensors, clip_l.safetensors, t5xxl_fp16.safetensors, tokenizer/ and tokenizer_2/',
    );
  }
  const result: ModelAssets = { root, pipelines: {} };
  const problems: string[] = [];
  for (const c of candidates) {
    const label = `FLUX.1-${c.variant} (${c.origin})`;
    const existing = result.pipelines[c.variant];
    if (existing !== undefined) {
      problems.push(`two FLUX.1-${c.variant} transformers: ${existing.transformer} and ${c.transformer}`);
      continue;
    }
    // Own parts first, then single files beside them, then any sibling pipeline's.
    const resolved: Partial<Record<Part, string>> = {};
    const missing = [...c.problems];
    for (const part of PARTS) {
      const found = c.parts[part] ?? single.parts[part] ?? pipelines.find((p) => p.parts[part] !== undefined)?.parts[part];
      const reported = c.problems.some((problem) => problem.startsWith(`${SUBFOLDER[part]}/`));
      if (found === undefined && !reported) missing.push(pipelines.includes(c) ? `${SUBFOLDER[part]}/ or ${PART_FILES[part]}` : PART_FILES[part]);
      else if (found !== undefined) resolved[part] = found;
    }
    if (missing.length > 0) problems.push(`${label} is incomplete, missing: ${missing.join('; ')}`);
    else result.pipelines[c.variant] = { variant: c.variant, transformer: c.transformer, ...(resolved as Record<Part, string>) };
  }
  if (problems.length > 0) throw new ModelAssetsError(root, problems.join('. '));
  const safety = findSafetyPair([root, ...pipelineFolders]);
  return safety === undefined ? result : { ...result, safety };
}

/** The first folder holding both safety models (diffusers `safety_checker/`, the classifier's `nsfw_image_detection/`). */
function findSafetyPair(folders: readonly string[]): SafetyPaths | undefined {
  const folder = folders.find((f) => isDir(join(f, 'safety_checker')) && isDir(join(f, 'nsfw_image_detection')));
  return folder === undefined ? undefined : { checker: join(folder, 'safety_checker'), classifier: join(folder, 'nsfw_image_detection') };
}
