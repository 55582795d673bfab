/**
 * The expert weights a change of placement moves, where each copy comes from, and a copy schedule.
 *
 * A move is one expert's weights copied to a GPU that did not hold that expert before (a slot
 * whose expert changes to one the same GPU already holds is a local copy, counted apart).
 * Each copy is read from a GPU of the running placement that holds the expert: one on the same
 * node first (NVLink), else one on another node (RDMA); among those, the one with the fewest
 * copies to send so far. Copies read the running weights into a staging buffer and slots switch
 * once the copies are done (double-buffered, as vLLM's expert rearrangement does), so no copy has
 * to wait for another.
 *
 * The schedule runs in rounds; in a round each GPU sends at most one expert and receives at most
 * one. Rounds are filled first-fit, RDMA copies first; a round lasts as long as its slowest copy
 * (expert bytes over the link's one-direction bandwidth). No schedule can have fewer rounds than
 * the most copies one GPU sends or receives (`minRounds`).
 */
import type { Placement } from '../types.js';

export type Link = 'nvlink' | 'rdma';

export interface Move {
  layer: number;
  expert: number;
  fromGpu: number;
  toGpu: number;
  /** Slot (0..P-1 of the layer) the copy lands in. */
  toSlot: number;
  link: Link;
  /** Round of the copy schedule. */
  round: number;
}

export interface Migration {
  moves: Move[];
  movedExperts: number;
  movedBytes: number;
  /** Slots rewritten from a replica on the same GPU (no link). */
  localCopies: number;
  nvlinkMoves: number;
  rdmaMoves: number;
  rounds: number;
  /** Lower bound on the rounds of any schedule. */
  minRounds: number;
  /** Sum over rounds of the slowest copy of the round. */
  estimatedSeconds: number;
  /** Moves per MoE layer. */
  perLayer: number[];
}

export interface LinkSpeeds {
  /** Bytes per second per direction within a node. */
  nvlinkBandwidth: number;
  /** Bytes per second per direction between nodes. */
  rdmaBandwidth: number;
}

/**
 * The moves that turn the layers' slots of `from` into those of `to` (alike in shape), and the
 * slots rewritten from a replica on the same GPU (local copies, no link).
 */
export function movesBetween(from: Placement, to: Placement): { moves: Omit<Move, 'round'>[]; localCopies: number } {
  const { slotsPerGpu: S, gpusPerNode: GPN, numGpus: NG } = to.shape;
  const E = to.numExperts;
  const moves: Omit<Move, 'round'>[] = [];
  const held = new Int32Array(NG * E);
  const sends = new Int32Array(NG);
  let localCopies = 0;
  for (let l = 0; l < to.numLayers; l++) {
    const a = from.phy2log[l];
    const b = to.phy2log[l];
    held.fill(0);
    for (let p = 0; p < a.length; p++) if (a[p] >= 0) held[Math.floor(p / S) * E + a[p]]++;
    for (let g = 0; g < NG; g++) {
      for (let i = 0; i < S; i++) {
        const p = g * S + i;
        const e = b[p];
        if (e < 0 || a[p] === e) continue;
        // Already on this GPU (in another slot): a local copy.
        if (held[g * E + e] > 0) {
          localCopies++;
          continue;
        }
        let src = -1;
        let srcLink: Link = 'rdma';
        const node = Math.floor(g / GPN);
        for (let h = 0; h < NG; h++) {
          if (h === g || held[h * E + e] === 0) continue;
          const link: Link = Math.floor(h / GPN) === node ? 'nvlink' : 'rdma';
          if (src < 0 || (link === 'nvlink' && srcLink === 'rdma') || (link === srcLink && sends[h] < sends[src])) {
            src = h;
            srcLink = link;
          }
        }
        if (src < 0) continue; // an expert new to the layer has no source (cannot happen for valid plans)
        sends[src]++;
        moves.push({ layer: l, expert: e, fromGpu: src, toGpu: g, toSlot: p, link: srcLink });
      }
    }
  }
  return { moves, localCopies };
}

/** Moves, bytes, links and the copy schedule of going from `from` to `to`. */
export function migrationBetween(from: Placement, to: Placement, expertBytes: number, speeds: LinkSpeeds): Migration {
  const { moves: raw, localCopies } = movesBetween(from, to);
  const NG = to.shape.numGpus;
  // RDMA copies are the long ones: place them first so they share rounds.
  const order = raw.map((_, i) => i).sort((x, y) => (raw[x].link === raw[y].link ? x - y : raw[x].link === 'rdma' ? -1 : 1));
  const sendBusy: Uint8Array[] = [];
  const recvBusy: Uint8Array[] = [];
  const roundSeconds: number[] = [];
  const moves: Move[] = new Array(raw.length);
  const sent = new Int32Array(NG);
  const received = new Int32Array(NG);
  const perLayer = new Array<number>(to.numLayers).fill(0);
  let nvlink = 0;
  for (const i of order) {
    const m = raw[i];
    let r = 0;
    while (r < sendBusy.length && (sendBusy[r][m.fromGpu] || recvBusy[r][m.toGpu])) r++;
    if (r === sendBusy.length) {
      sendBusy.push(new Uint8Array(NG));
      recvBusy.push(new Uint8Array(NG));
      roundSeconds.push(0);
    }
    sendBusy[r][m.fromGpu] = 1;
    recvBusy[r][m.toGpu] = 1;
    const seconds = expertBytes / (m.link === 'nvlink' ? speeds.nvlinkBandwidth : speeds.rdmaBandwidth);
    roundSeconds[r] = Math.max(roundSeconds[r], seconds);
    moves[i] = { ...m, round: r };
    sent[m.fromGpu]++;
    received[m.toGpu]++;
    perLayer[m.layer]++;
    if (m.link === 'nvlink') nvlink++;
  }
  let minRounds = 0;
  for (let g = 0; g < NG; g++) minRounds = Math.max(minRounds, sent[g], received[g]);
  return {
    moves,
    movedExperts: moves.length,
    movedBytes: moves.length * expertBytes,
    localCopies,
    nvlinkMoves: nvlink,
    rdmaMoves: moves.length - nvlink,
    rounds: roundSeconds.length,
    minRounds,
    estimatedSeconds: roundSeconds.reduce((s, x) => s + x, 0),
    perLayer,
  };
}
