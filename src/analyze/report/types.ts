import type { InformationResult } from '../information.js';
import type { Closeness, LooRow } from '../loo.js';
import type { CompareResult } from './compare.js';
import type { Spectrum } from './spectrum.js';

export interface TypeReport {
  type: string;
  /** [out, in] of one layer's matrix. */
  shape: [number, number];
  rank: number;
  spectrum: Spectrum;
  trajectory: {
    /** Which row of each V_i (0: the top singular direction). */
    row: number;
    method: 'pca';
    /** [x, y] per layer, layer 0 first. */
    coords: [number, number][];
    explained: [number, number];
    /** pathRoughness of the full-dimensional row vectors. */
    roughness: number;
  };
  similarity: {
    /** cos(vec V_i, vec V_j), layers × layers. */
    coefficient: number[][];
    /** cos(vec W_i, vec W_j), layers × layers. */
    weight: number[][];
    adjacentCoefficient: number;
    adjacentWeight: number;
  };
  seconds: { decompose: number; analyse: number; loo: number };
}

export interface ReportData {
  format: 'lesa-report/1';
  generated: string;
  checkpoint: string;
  arch: string;
  layers: number;
  types: TypeReport[];
  loo: {
    layers: number[];
    epochs: number;
    lambda: number;
    hidden: number;
    seed: number;
    note: string;
    rows: LooRow[];
    summary: Record<string, Record<'lesa' | 'copy' | 'average' | 'random', Closeness>>;
  } | null;
  /** Why LOO is absent (e.g. --no-loo). */
  looSkipped?: string;
  /** `--information`: LESA at both budgets beside rand-svd and random on the leave-one-out layers. */
  information?: (InformationResult & { layers: number[] }) | null;
  compare: CompareResult | null;
  seconds: number;
}
