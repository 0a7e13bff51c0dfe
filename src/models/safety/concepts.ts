/**
 * Stage-1 decisions as StableDiffusionSafetyChecker.forward makes them (test/golden/data/safety/README.md
 * §4), per image: float32 cosines against the special-care and concept embeddings, scores
 * (cos − threshold) + adjustment in float64 rounded to 3 decimals half to even, the 0.01
 * adjustment switched on by the first special concept that fires (and carried to the special
 * concepts after it), and has_nsfw when any concept's rounded score is > 0.
 */
import type { TensorData } from '../../onnx/tensor-data.js';

export interface ConceptSet {
  /** [K, D] row-major. */
  embeds: Float32Array;
  /** One per concept, as stored (exact float16 values in the CompVis file). */
  thresholds: number[];
}

export interface SafetyConcepts {
  special: ConceptSet;
  concept: ConceptSet;
  dim: number;
}

export interface ConceptDecision {
  specialCos: Float32Array;
  conceptCos: Float32Array;
  /** (cos − threshold) + adjustment in effect, before rounding. */
  specialRaw: Float64Array;
  conceptRaw: Float64Array;
  /** The same rounded to 3 decimals, as diffusers reports them. */
  specialScores: Float64Array;
  conceptScores: Float64Array;
  specialCare: boolean;
  adjustment: number;
  hasNsfw: boolean;
}

/** Special-care hits add this to every later score (diffusers' `adjustment = 0.01`). */
const SPECIAL_CARE_ADJUSTMENT = 0.01;

/** numpy round(x, 3): rint(x·1000)/1000 with ties to even (JS Math.round rounds ties up). */
export function round3(x: number): number {
  const y = x * 1000;
  const floor = Math.floor(y);
  const frac = y - floor;
  const r = frac < 0.5 ? floor : frac > 0.5 ? floor + 1 : floor % 2 === 0 ? floor : floor + 1;
  return r / 1000;
}

/** x / max(‖x‖₂, 1e-12), in float64. */
function normalized(values: ArrayLike<number>, offset: number, dim: number): Float64Array {
  let sum = 0;
  for (let i = 0; i < dim; i++) sum += (values[offset + i] as number) ** 2;
  const norm = Math.max(Math.sqrt(sum), 1e-12);
  return Float64Array.from({ length: dim }, (_, i) => (values[offset + i] as number) / norm);
}

/** normalize(e)·normalize(c)ᵀ for every concept, cast to float32 as diffusers does. */
function cosines(embed: Float64Array, set: ConceptSet, dim: number): Float32Array {
  return Float32Array.from(set.thresholds, (_, k) => {
    const c = normalized(set.embeds, k * dim, dim);
    return embed.reduce((s, v, i) => s + v * (c[i] as number), 0);
  });
}

function decide(specialCos: Float32Array, conceptCos: Float32Array, concepts: SafetyConcepts): ConceptDecision {
  let adjustment = 0;
  const specialRaw = new Float64Array(specialCos.length);
  const specialScores = new Float64Array(specialCos.length);
  specialCos.forEach((cos, j) => {
    specialRaw[j] = cos - (concepts.special.thresholds[j] as number) + adjustment;
    specialScores[j] = round3(specialRaw[j] as number);
    if ((specialScores[j] as number) > 0) adjustment = SPECIAL_CARE_ADJUSTMENT;
  });
  const conceptRaw = Float64Array.from(conceptCos, (cos, k) => cos - (concepts.concept.thresholds[k] as number) + adjustment);
  const conceptScores = conceptRaw.map(round3);
  return {
    specialCos,
    conceptCos,
    specialRaw,
    conceptRaw,
    specialScores,
    conceptScores,
    specialCare: adjustment !== 0,
    adjustment,
    hasNsfw: conceptScores.some((s) => s > 0),
  };
}

/** The decisions for image_embeds [N, D]; images never interact. */
export function conceptDecisions(imageEmbeds: TensorData, concepts: SafetyConcepts): ConceptDecision[] {
  const [n, dim] = imageEmbeds.dims as [number, number];
  if (dim !== concepts.dim) throw new RangeError(`image embeddings of width ${dim} do not match concept embeddings of width ${concepts.dim}`);
  return Array.from({ length: n }, (_, i) => {
    const e = normalized(imageEmbeds.data as Float32Array, i * dim, dim);
    return decide(cosines(e, concepts.special, dim), cosines(e, concepts.concept, dim), concepts);
  });
}
