"""The external-weight execution style: one compute engine reused layer after layer, weights
streamed from external memory (docs/hardware.md, "External-weight execution style")."""
