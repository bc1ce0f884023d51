"""The transformer body of an IntModel on one external-weight engine: every block's
[Wq; Wk], o, fc1 and fc2 as one `EngineSequence` (docs/hardware.md, "The sequencer").

Per block the sequence runs [Wq; Wk] -> q_lif | k_lif -> SASA pass -> o (+ U + DWC) ->
mlp_lif -> fc1 -> fc1_lif -> fc2 (+ U) -> the next block's attn_lif; the blocks share the
spike memories (one per layer kind) and the U memory; each block has its own on-chip SASA
and DWC (small: thresholds, 9 x D weights). In: U (the `rpe` tap's values), tile-major
or token-major; out: the last block's U'' (its `u_mlp` tap), in the same order.
"""

from __future__ import annotations

from quant.ir import IntModel, LIFLayer, LinearLayer
from rtl_templates.dwconv import DWConv3x3
from rtl_templates.engine_sequence import EngineSequence
from rtl_templates.sasa import SASA

KINDS = 4  # layers per block: [Wq; Wk], o, fc1, fc2


def _layer(x: LinearLayer) -> tuple[list, list, int]:
    return x.weight.tolist(), x.bias.tolist(), x.acc_bits


def _lif(x: LIFLayer) -> tuple[list, int, int]:
    return x.vth.tolist(), x.input_shift, x.state_bits


def body_sequence(model: IntModel, *, pe: int, simd: int, beat_bits: int = 16,
                  max_burst: int = 64, base_addr: int = 0, addr_bits: int = 24,
                  mode: str = "dense", token_major: bool = False) -> EngineSequence:
    """Every block of `model` on one engine of ``pe`` x ``simd`` (dense), weights from
    ``base_addr`` in the memory port's address space (`sequence_image` gives the words).
    ``token_major``: U in and U'' out in the on-chip values order (per token: for each
    group of ``pe`` channels: T beats), the drop-in for the on-chip blocks' chain."""
    if mode != "dense":
        raise ValueError(f"the body's engine is dense only so far, not {mode!r}")
    cfg, D, T = model.config, model.config.dim, model.config.time_steps
    H, W = cfg.grid
    layers, lifs, sasa, dwc, adds = [], [], [], [], []
    for j, blk in enumerate(model.blocks):
        first = KINDS * j
        if j:  # the previous block's fc2 (+ U) goes through this block's attn_lif
            lifs.append(_lif(blk.attn_lif))
        layers += [(blk.q.weight.tolist() + blk.k.weight.tolist(),
                    blk.q.bias.tolist() + blk.k.bias.tolist(),
                    max(blk.q.acc_bits, blk.k.acc_bits)),
                   _layer(blk.o), _layer(blk.fc1), _layer(blk.fc2)]
        lifs += [[(D, *_lif(blk.q_lif)), (D, *_lif(blk.k_lif))], _lif(blk.mlp_lif),
                 _lif(blk.fc1_lif)]
        sasa.append((first, SASA(dim=D, heads=cfg.heads, time_steps=T, tokens=cfg.tokens,
                                 mode=cfg.sasa_mode.value, agg_vth=blk.agg_lif.vth.tolist(),
                                 agg_input_shift=blk.agg_lif.input_shift,
                                 agg_state_bits=blk.agg_lif.state_bits)))
        dwc.append((first, DWConv3x3(blk.dwc.weight.tolist(), blk.dwc.bias.tolist(), height=H,
                                     width=W, time_steps=T, acc_bits=blk.dwc.acc_bits,
                                     weight_bits=model.weight_bits, lanes=pe)))
        adds += [first + 1, first + 3]
    return EngineSequence(
        layers, lifs, tokens=cfg.tokens, time_steps=T, weight_bits=model.weight_bits, pe=pe,
        simd=simd, beat_bits=beat_bits, max_burst=max_burst, base_addr=base_addr,
        addr_bits=addr_bits, residual_bits=model.u_bits, input_bits=model.u_bits,
        input_lif=_lif(model.blocks[0].attn_lif), sasa=sasa, u_memory=True, adds=adds, dwc=dwc,
        act_of=[x % KINDS for x in range(len(layers))], token_major=token_major)
