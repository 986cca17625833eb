/** The output manifest `lesa.json` (docs/manifest.md). */
import type { LayerOrigin } from '../plan/recipe.js';

export const MANIFEST_FORMAT = 'lesa-manifest/1';

/** lesa.json as written by CheckpointWriter.finalize (which fills `files`). */
export type LesaManifest = {
  format: typeof MANIFEST_FORMAT;
  lesa_version: string;
  /** ISO 8601 time of writing. */
  created: string;
  method: string;
  options: Record<string, unknown>;
  /** fingerprint: sha256 of the weight files' headers and sizes (always); sha256: of their contents (--hash-source);
   *  hub: the hub id, revision and resolved commit when the source was given as one. */
  source: { dir: string; fingerprint: string; sha256?: string; hub?: { repo: string; revision: string; commit: string } };
  source_layers: number;
  target_layers: number;
  layer_prefix: string;
  layers: LayerOrigin[];
  new_layers: number[];
  /** sha256 (hex) of every file of the directory except lesa.json, by relative name. */
  files: Record<string, string>;
};

/**
 * What the caller gives finalize(): the manifest less `files` (finalize accepts any JSON
 * object, so a caller may add fields, e.g. `source.fingerprint`; this type documents the core).
 */
export type ManifestInput = Omit<LesaManifest, 'files'>;
