"""A study: the preset file that names a workload, its budget, seeds, optimiser configs and search
spaces, read and validated before any device work starts (`presets`, `budget`, `search_space`)."""
