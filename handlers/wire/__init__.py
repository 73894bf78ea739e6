"""What crosses the wire: framing (`framing`), every message's typed shape (`messages`) and
domain-separated signatures (`signing`). Imports only the frame."""
