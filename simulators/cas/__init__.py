"""A simulated Coin ATM Server (CAS) with hostile modes, and a harness that plays
the operator (offline key, pairing code, signed bundles) for tests and the demo."""
