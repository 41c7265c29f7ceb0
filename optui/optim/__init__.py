"""The optimiser catalogue: `registry` turns a name or a plug-in reference into an optax
transformation whose numeric hyperparameters are traced data; its parts are the declared specs
(`spec`), optax's optimisers (`optax_main`, `optax_contrib`), schedules and chain elements as
traced data, and plug-ins (`plugins`)."""
