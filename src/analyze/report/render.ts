/**
 * Vega-Lite → Vega → SVG in Node (no browser, no canvas: the 'none' renderer), and SVG → PNG
 * with resvg (a Rust SVG renderer shipped as a prebuilt binary inside its npm package).
 */
import * as vega from 'vega';
import { compile } from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import type { Spec } from './charts.js';

export async function toSvg(spec: Spec): Promise<string> {
  // vega-lite's TopLevelSpec type is a deep union; the specs are checked by compiling them.
  const vg = compile(spec as unknown as Parameters<typeof compile>[0]).spec;
  const view = new vega.View(vega.parse(vg), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function svgToPng(svg: string, scale = 1.5): Buffer {
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  });
  return r.render().asPng();
}
