"""One module per panel of the session."""
