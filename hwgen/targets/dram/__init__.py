"""External SDRAM for the accelerator: LiteDRAM generated offline, its init driver and its
adapter to the memory port (rtl_templates/memport.py; docs/hardware.md, "The memory port")."""
