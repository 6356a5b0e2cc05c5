"""HTTP surfaces: one blueprint each (webhooks, health, simulator)."""
