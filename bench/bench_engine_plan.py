"""The external-weight engine's plan for cifar-paper on the ULX3S-85F (planner model, no
hardware): per-layer schedule and the candidate foldings of docs/hardware.md.

Run: .venv/bin/python bench/bench_engine_plan.py
"""

from hwgen.compiler.engine import EngineKnobs, MemorySpec, plan_engine
from hwgen.targets.boards import ECP5_85F
from quant.config import get_config
from quant.random_model import random_int_model

LIMITS = dict(lut=ECP5_85F.lut, ff=ECP5_85F.ff, bram=ECP5_85F.bram, dsp=ECP5_85F.dsp)


def main() -> None:
    m8 = random_int_model(get_config("cifar-paper"), seed=0)
    m4 = random_int_model(get_config("cifar-paper"), weight_bits=4, seed=0)
    one, two = MemorySpec(beats_per_cycle=1.0), MemorySpec(beats_per_cycle=2.0)
    chosen = EngineKnobs(pe=48, simd=2, max_fan_in=512)
    print(plan_engine(m8, chosen, two, limits=LIMITS).table())
    print()
    cases = [
        ("event pe48 simd2 r10% 1 beat/cycle", m8, chosen, one),
        ("event pe48 simd2 r10% 2 beats/cycle", m8, chosen, two),
        ("  same, 64-bit segment encoder (planned)", m8,
         EngineKnobs(pe=48, simd=2, max_fan_in=512, segment=64), two),
        ("event pe96 simd1 r10% 2 beats/cycle", m8, EngineKnobs(pe=96, simd=1, max_fan_in=512),
         two),
        ("event pe48 simd2 r20% 2 beats/cycle", m8, EngineKnobs(pe=48, simd=2, max_fan_in=512,
                                                                spike_rate=0.2), two),
        ("event pe48 simd2 r5% 2 beats/cycle", m8, EngineKnobs(pe=48, simd=2, max_fan_in=512,
                                                               spike_rate=0.05), two),
        ("event pe48 simd2 B=2", m8, EngineKnobs(pe=48, simd=2, max_fan_in=512, batch=2), two),
        ("dense pe16 simd32", m8, EngineKnobs(mode="dense", pe=16, simd=32, max_fan_in=512), two),
        ("event pe96 simd2 4-bit weights", m4, EngineKnobs(pe=96, simd=2, max_fan_in=512), two),
    ]
    for name, model, knobs, mem in cases:
        p = plan_engine(model, knobs, mem, limits=LIMITS)
        u = p.used()
        print(f"{name:38} cycles/image {p.cycles_per_image / 1e6:5.2f} M  images/s "
              f"{p.images_per_second:5.1f}  LUT {u['lut']:6,} BRAM {u['bram']:3}  "
              f"img/s/kLUT {p.images_per_s_per_klut:.2f}  {'; '.join(p.problems) or 'fits'}")


if __name__ == "__main__":
    main()
