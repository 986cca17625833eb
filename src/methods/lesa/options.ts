import { TRAIN_DEFAULTS } from '../../native/index.js';
import type { MethodContext } from '../method.js';
import { STEP_MATCHED } from './budget.js';
import { withDefaults, type OptionTable, type OptionValues } from '../options.js';

/** LESA's options; the predictor's training defaults are the paper's (TRAIN_DEFAULTS, docs/method.md §2.6). */
export const lesaOptions = {
  epochs: { type: 'int', default: TRAIN_DEFAULTS.epochs, min: 1, max: 100000, help: 'passes over each weight type\'s training samples' },
  predictorSteps: {
    type: 'int-or-name', default: null, names: [STEP_MATCHED], min: 1, max: 2 ** 40,
    help: `AdamW steps per weight type instead of --epochs passes; ${STEP_MATCHED}: the steps the same type of Llama-3-8B gets from --epochs epochs`,
  },
  lambda: { type: 'number', default: TRAIN_DEFAULTS.lambda, min: 0, max: 1, help: 'weight of the norm term in the loss (1-λ)·MSE + λ·(‖pred‖-‖target‖)²' },
  hidden: { type: 'int', default: TRAIN_DEFAULTS.hidden, min: 1, max: 65536, help: 'width of the predictor MLP\'s hidden layers' },
  lr: { type: 'number', default: TRAIN_DEFAULTS.lr, min: 0, max: 10, exclusiveMin: true, help: 'AdamW learning rate of the predictor' },
  batch: { type: 'int', default: TRAIN_DEFAULTS.batch, min: 1, max: 1 << 20, help: 'predictor mini-batch size (samples are coefficient rows)' },
  weightDecay: { type: 'number', default: TRAIN_DEFAULTS.weightDecay, min: 0, max: 10, help: 'AdamW weight decay of the predictor' },
  fill: { type: 'choice', default: 'layer0', choices: ['mean', 'layer0'], help: 'other tensors of a new layer: the neighbours\' mean, or layer 0\'s (the notebooks)' },
  zeroOut: { type: 'boolean', default: false, help: 'zero o_proj/down_proj of new layers: the grown model starts as the original' },
  maxMemory: {
    type: 'bytes', default: 4 * 2 ** 30, record: false,
    help: 'two roles: coefficient blocks beyond it spill to a scratch file, and it is the budget within which two weight types are processed at once; '
      + 'with LESA\'s --device cuda|cpu-torch instead the device memory one weight type may take (cuda default: 90% of the GPU\'s)',
  },
  // Not recorded as an option: lesa.json's "compute" says what ran (device, torch version, GPU).
  device: {
    type: 'choice', default: 'cpu', choices: ['cpu', 'cpu-torch', 'cuda', 'auto'], record: false,
    help: 'where decomposition, training and prediction run: cpu (the native addon), cuda (PyTorch on the GPU, $LESA_PYTHON), '
      + 'cpu-torch (the same PyTorch code on the CPU), auto (cuda when torch sees a GPU, else cpu)',
  },
} as const satisfies OptionTable;

export type LesaOptions = OptionValues<typeof lesaOptions>;

export const lesaOptionsOf = (ctx: MethodContext): LesaOptions => withDefaults(lesaOptions, ctx.options.methodOptions);
