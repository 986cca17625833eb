/** The library API: what the CLI uses, for programs that grow models themselves. */
export { expand, planExpansion, resolveOptions, type ExpandRequest, type ExpandResult } from './expand.js';
export { methods, methodByName } from './methods/registry.js';
export type { Method, ExpandOptions } from './methods/method.js';
export type { LesaOptions } from './methods/lesa/options.js';
export type { OptionSpec, OptionTable } from './methods/options.js';
export { families, archFor, resolveLayout, supportedModelTypes, type ArchTable, type ModelLayout } from './arch/index.js';
export { openCheckpoint } from './checkpoint/checkpoint.js';
export { verifyOutput } from './checkpoint/verify.js';
export { CheckpointError } from './checkpoint/errors.js';
export type { Checkpoint, TensorRef, TensorSpec, DType } from './checkpoint/types.js';
export type { Plan, Recipe, OutputTensor, LayerOrigin } from './plan/recipe.js';
export { decompose, type Decomposition } from './methods/lesa/decompose.js';
export { leaveOneOut, summarize, type LooRow } from './analyze/loo.js';
export { UserError } from './errors.js';
export type { Reporter } from './progress/reporter.js';
export { VERSION } from './version.js';
