"""optui: compare stochastic optimisers with presets, random search, seed replicates and loss bands."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # The notebook API, imported on first use so that `import optui` (and the CLI) stays quick.
    if name in ("open_store", "run_study"):
        from . import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'optui' has no attribute {name!r}")


__all__ = ["__version__", "open_store", "run_study"]
