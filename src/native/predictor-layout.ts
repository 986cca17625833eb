/**
 * Layout of the packed LESA predictor parameters (Float32Array), the order PyTorch's
 * `nn.Sequential(Linear(2C,H), ReLU, Linear(H,H), ReLU, Linear(H,C)).parameters()` yields:
 * W1[H,2C] b1[H] W2[H,H] b2[H] W3[C,H] b3[C], each weight row-major [out, in].
 * W1's first C input columns act on the left neighbour, the last C on the right one.
 */
export interface ParamBlock {
  name: 'W1' | 'b1' | 'W2' | 'b2' | 'W3' | 'b3';
  offset: number;
  shape: [number] | [number, number];
  length: number;
}

export interface PredictorLayout {
  hidden: number;
  cols: number;
  blocks: ParamBlock[];
  total: number;
}

export function predictorLayout(hidden: number, cols: number): PredictorLayout {
  const shapes: Array<[ParamBlock['name'], ParamBlock['shape']]> = [
    ['W1', [hidden, 2 * cols]],
    ['b1', [hidden]],
    ['W2', [hidden, hidden]],
    ['b2', [hidden]],
    ['W3', [cols, hidden]],
    ['b3', [cols]],
  ];
  const blocks: ParamBlock[] = [];
  let offset = 0;
  for (const [name, shape] of shapes) {
    const length = shape.reduce((a, b) => a * b, 1);
    blocks.push({ name, offset, shape, length });
    offset += length;
  }
  return { hidden, cols, blocks, total: offset };
}

/** Views (no copies) of each parameter block of `params`. */
export function predictorParams(params: Float32Array, hidden: number, cols: number): Record<ParamBlock['name'], Float32Array> {
  const layout = predictorLayout(hidden, cols);
  if (params.length !== layout.total) {
    throw new RangeError(`Expected ${layout.total} predictor parameters for hidden=${hidden}, cols=${cols} but received ${params.length}`);
  }
  const views = {} as Record<ParamBlock['name'], Float32Array>;
  for (const b of layout.blocks) views[b.name] = params.subarray(b.offset, b.offset + b.length);
  return views;
}
