"""A stand-in for lightningd that runs real plugin processes.

lightningd and bitcoind cannot be installed where these tests run, so this
package plays lightningd's part: it spawns each plugin the way lightningd
does, speaks the plugin protocol over stdin/stdout, serves the
`lightning-rpc` Unix socket, and routes custom messages between nodes.
The facts it follows are in shared/reference/cln-plugin-protocol.md.
"""
