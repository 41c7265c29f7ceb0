"""The interactive session (Textual). The only package that imports textual and plotext."""
