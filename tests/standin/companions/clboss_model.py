"""CLBoss as ../../../shared/reference/companions.md describes it, with no plugin around it:
the stand-in script (clboss) and the core tests run this one model.

`clboss-unmanage nodeid tags` REPLACES the node's whole tag set (`""` hands the node back);
tags are a comma-separated string of lnfee, open, close, balance with no spaces; an unknown
tag is error -32602. `clboss-status` shows the sets under `unmanaged`, joined with ", ".
There is no clboss-ignore, clboss-unignore, clboss-manage or clboss-unmanaged-list."""

TAGS = ("lnfee", "open", "close", "balance")


class ModelError(Exception):
    """A JSON-RPC error the real plugin would raise."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


class Clboss:
    def __init__(self, version="0.16.3"):
        self.version = version
        self.unmanaged = {}

    def status(self):
        return {"info": {"version": self.version},
                "unmanaged": {n: ", ".join(sorted(t)) for n, t in sorted(self.unmanaged.items())}}

    def unmanage(self, nodeid, tags):
        if not isinstance(tags, str):
            raise ModelError(-32602, "tags: should be a string")
        wanted = set()
        for tag in tags.split(",") if tags else []:
            if tag not in TAGS:
                raise ModelError(-32602, "Invalid tag: '%s'" % tag)
            wanted.add(tag)
        if wanted:
            self.unmanaged[nodeid] = wanted
        else:
            self.unmanaged.pop(nodeid, None)
        return {}
