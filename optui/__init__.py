"""optui: compare stochastic optimisers with presets, random search, seed replicates and loss bands."""

__version__ = "0.1.0"
