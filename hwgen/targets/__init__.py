"""Board back ends: what a board adds around the accelerator (memory controllers, ...)."""
