"""Tiers: named service levels (free, pro, ...) that users belong to."""
