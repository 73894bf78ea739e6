"""The frame every part runs in: the single worker and its tick (`engine`), firing machine
triggers with persistence (`dispatch`), the options (`config`), time (`clock`), the one door
to lightningd (`effects`), logs, JSON-RPC errors, the rate limiter, and the `Context`
handed to every handler. Imports nothing else of `handlers`."""
