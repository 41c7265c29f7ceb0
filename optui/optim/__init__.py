"""The optimiser catalogue's parts: declared specs, optax's optimisers, schedules and chain
elements as traced data, and plug-ins. `optui.optimizers` is the registry the rest of optui uses."""
