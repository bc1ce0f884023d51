"""Behavioural Verilog of the few ECP5 primitives LiteDRAM's SDR PHY instantiates, for simulation.

Written for this project from the primitives' documented behaviour (Lattice FPGA
Libraries Reference): `TRELLIS_IO` (a bidirectional pad buffer), `OFS1P3BX` and
`IFS1P3BX` (output/input flip-flops with clock enable and asynchronous preset) and
`FD1S3BX` (a flip-flop with asynchronous preset, LiteX's reset synchroniser).
Only what the generated controller uses is modelled.

`TRELLIS_IO` here only reads its pad: the testbench (sim/sdram_sim.py) plays the
chip on the pad and watches each buffer's ``I``/``T`` through hierarchical
references, so no tristate net needs resolving (Verilator's top-level inouts are
not visible to cocotb).
"""

ECP5_SIM_MODELS = r"""
// ---- ECP5 primitive models for simulation (hwgen sim/ecp5_models.py) ----
module TRELLIS_IO #(parameter DIR = "BIDIR") (inout B, input I, input T, output O);
  // The output side (I, driven when T is low) is observed by the testbench.
  assign O = B;
endmodule

module OFS1P3BX (input D, input SP, input SCLK, input PD, output reg Q);
  initial Q = 1'b1;
  always @(posedge SCLK or posedge PD)
    if (PD) Q <= 1'b1;
    else if (SP) Q <= D;
endmodule

module IFS1P3BX (input D, input SP, input SCLK, input PD, output reg Q);
  initial Q = 1'b1;
  always @(posedge SCLK or posedge PD)
    if (PD) Q <= 1'b1;
    else if (SP) Q <= D;
endmodule

module FD1S3BX (input D, input CK, input PD, output reg Q);
  initial Q = 1'b1;
  always @(posedge CK or posedge PD)
    if (PD) Q <= 1'b1;
    else Q <= D;
endmodule
"""
