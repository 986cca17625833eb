/** The checkpoint layer: safetensors reading, checkpoint directories, streaming output. */
export * from './types.js';
export * from './errors.js';
export { parseHeaderBytes, parseSafetensorsBytes, readSafetensorsFile, readHeader, MAX_HEADER_BYTES, checkedNumel, checkedByteLength, isDType } from './safetensors.js';
export type { SafetensorsEntry, SafetensorsHeader } from './safetensors.js';
export { openCheckpoint, INDEX_NAME, SINGLE_NAME, CONFIG_NAME, MANIFEST_NAME } from './checkpoint.js';
export type { OpenedCheckpoint } from './checkpoint.js';
export * from './writer.js';
export * from './manifest.js';
export * from './cleanup.js';
export * from './verify.js';
