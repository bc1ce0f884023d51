"""The 3x3 window's geometry and timing, pure Python: `WindowGeometry` (an H x W grid's slots,
tap offsets, how far a window reaches and the closed-form cycle count) and `WindowModel`, the
cycle-exact control mirror of a `line_buffer.LineBuffer`-based block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtl_templates.common import check_int
from rtl_templates.timing import BlockModel

TAPS = 9  # tap k = 3*ky + kx reads input (y + ky - 1, x + kx - 1), zero outside the grid


@dataclass(frozen=True)
class WindowGeometry:
    """Shape of a window block's work: an H x W grid, ``time_steps`` words per token
    (and per output group), ``groups`` output groups per token, ``slices`` steps per tap.

    One *step* (one cycle of the engine) reads one word of one tap and feeds one
    slice of it to the datapath. A *beat* is ``9 * slices`` steps; a token is
    ``groups * time_steps`` beats. ``stages``: register stages from a step's issue to
    the accumulator (1: the memory read only; a pipelined block has more).
    """

    height: int
    width: int
    time_steps: int
    groups: int
    slices: int
    stages: int = 1

    @property
    def tokens(self) -> int:
        return self.height * self.width

    @property
    def slots(self) -> int:
        """Tokens the buffer holds: a window spans 2W+3 tokens, one more lets the next
        token arrive while the current one is computed; rounded up to a power of two,
        so slot numbers wrap for free."""
        return 1 << (2 * self.width + 3).bit_length()

    @property
    def depth(self) -> int:
        return self.slots * self.time_steps

    def address(self, slot: int, t: int) -> int:
        """Memory row of step t of the token in `slot`."""
        return slot * self.time_steps + t

    @property
    def steps_per_beat(self) -> int:
        return TAPS * self.slices

    @property
    def steps_per_token(self) -> int:
        return self.steps_per_beat * self.groups * self.time_steps

    def ahead(self, y: int, x: int) -> int:
        """How many tokens after (y, x) its window reads (the newest is (y+1, x+1), clipped)."""
        return (self.width if y < self.height - 1 else 0) + (1 if x < self.width - 1 else 0)

    def behind(self, y: int, x: int) -> int:
        """How many tokens before (y, x) must stay: the oldest its window or a later window
        of the image reads. That is (y-1, x-1), clipped, except in row 0, all of which
        row 1's windows still read."""
        if y == 0 and self.height > 1:
            return x
        return (self.width if y > 0 else 0) + (1 if x > 0 else 0)

    def tap_offset(self, k: int) -> int:
        """Token distance from the centre to tap k (meaningful only when the tap is in the grid)."""
        ky, kx = divmod(k, 3)
        return (ky - 1) * self.width + (kx - 1)

    @property
    def startup_cycles(self) -> int:
        """Cycle of the engine's first step minus one: the first window's inputs arriving."""
        return self.time_steps * (self.ahead(0, 0) + 1)

    def cycles(self, images: int = 1) -> int:
        """Cycle in which the last output beat of `images` back-to-back images fires,
        the input always valid and the output always ready (docs/hardware.md numbering).

        The input always runs ahead of the engine (a token takes ``time_steps``
        cycles in, ``steps_per_token`` >= 9 * ``time_steps`` to compute), so after
        the start-up the engine steps every cycle, across image boundaries too;
        the last result leaves ``stages + 1`` cycles after the last step (the
        pipeline, then the accumulator).
        """
        check_int("images", images)
        return self.startup_cycles + images * self.tokens * self.steps_per_token + 1 + self.stages

    def first_output_cycle(self) -> int:
        return self.startup_cycles + self.steps_per_beat + 1 + self.stages



class WindowModel(BlockModel):
    """Control mirror of a LineBuffer-based block (one input ``i``, one output ``o``): the
    input and window counters, the ``stages`` pipeline registers' (first, last) tags and
    the output register."""

    def __init__(self, geometry: WindowGeometry):
        self.geo = geometry
        self.lead = 0
        self.in_t = 0
        self.oy = self.ox = 0
        self.step = 0  # next step of the current token, 0 .. steps_per_token - 1
        # Stage n+1 after issue holds pipe[n]: None (empty) or the step's (first, last).
        self.pipe: list[tuple[bool, bool] | None] = [None] * geometry.stages
        self.o_valid = False

    def _can_issue(self, stalled: bool) -> bool:
        return not stalled and (self.step != 0 or self.lead > self.geo.ahead(self.oy, self.ox))

    def _stalled(self) -> bool:
        """The final stage holds a beat's first step while the last result is still offered."""
        final = self.pipe[-1]
        return final is not None and final[0] and self.o_valid

    def _tags(self, step: int) -> tuple[bool, bool]:
        in_beat = step % self.geo.steps_per_beat
        return in_beat == 0, in_beat == self.geo.steps_per_beat - 1

    def valid(self, port):
        return self.o_valid

    def ready(self, port):
        return self.lead + self.geo.behind(self.oy, self.ox) < self.geo.slots

    def tick(self, fired):
        geo = self.geo
        stalled = self._stalled() and not fired["o"]
        issue = self._can_issue(stalled)
        final = self.pipe[-1]
        if not stalled and final is not None and final[1]:
            self.o_valid = True
        elif fired["o"]:
            self.o_valid = False
        token_end = False
        if not stalled:
            self.pipe = [self._tags(self.step) if issue else None] + self.pipe[:-1]
        if issue:
            self.step += 1
            if self.step == geo.steps_per_token:
                self.step, token_end = 0, True
                if self.ox == geo.width - 1:
                    self.ox, self.oy = 0, (self.oy + 1) % geo.height
                else:
                    self.ox += 1
        if fired["i"]:
            self.in_t += 1
            if self.in_t == geo.time_steps:
                self.in_t = 0
                self.lead += 1
        if token_end:
            self.lead -= 1

    def quiet(self):
        if self._stalled():
            return 1 << 30  # frozen until the result is taken
        if not self._can_issue(False):
            # Waiting for input: frozen once the pipeline has drained.
            return 1 if any(p is not None for p in self.pipe) else 1 << 30
        if self.o_valid or any(p is not None and p[1] for p in self.pipe):
            return 1
        # Stepping inside a beat whose last step is not yet issued: nothing visible
        # changes before it issues (and then reaches the final stage).
        return max(1, self.geo.steps_per_beat - 1 - self.step % self.geo.steps_per_beat)

    def skip(self, cycles):
        if self._stalled() or not self._can_issue(False) or cycles == 1:
            self.tick(self._nothing)  # a frozen state is a fixed point after one tick
            return
        # `cycles` steps issue, none a beat's last (see quiet): stage n+1 then holds the
        # step issued n + 1 cycles ago, or what stage n + 1 - cycles held before.
        old = self.pipe
        self.step += cycles
        self.pipe = [self._tags(self.step - 1 - n) if n < cycles else old[n - cycles]
                     for n in range(self.geo.stages)]


def raster_tokens(grid) -> np.ndarray:
    """Software twin of the stream order: [images, steps, C, H, W] -> [images*H*W, steps, C]
    (tokens in raster order, images back to back), ready for pack_spikes/pack_values."""
    a = np.asarray(grid)
    if a.ndim != 5:
        raise ValueError(f"grid must be [images, steps, C, H, W], not shape {list(a.shape)}")
    i, t, c, h, w = a.shape
    return a.transpose(0, 3, 4, 1, 2).reshape(i * h * w, t, c)

