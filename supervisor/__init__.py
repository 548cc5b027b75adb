"""Runtime Supervisor: compares the homelab inventory with the observed world and recommends
reconciliation. It never changes the infrastructure."""

__version__ = "0.1.0"
