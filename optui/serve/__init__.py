"""`optui serve`: the interactive session in a browser tab, closed by default.

textual-serve runs one session process per websocket; around it this package adds what a
shared GPU box needs: a token (refused before any session starts), an Origin check, a cap on
sessions, session processes that end with their websocket or the server, and a page that
requests nothing from the internet.
"""

from .server import SessionServer, serve

__all__ = ["SessionServer", "serve"]
