#!/usr/bin/env python3
"""Stand-in for CLBoss: clboss-status, clboss-ignore/clboss-unignore, clboss-unmanage.

Control: `clboss-standin-mode mode=ok|fail|hang|die [method=] [code=] [message=]`,
`clboss-standin-calls [method=]`."""
from pyln.client import Plugin
from standin_control import Control

plugin = Plugin()
control = Control(plugin, "clboss")
ignored = set()
unmanaged = {}


@control.method("clboss-status")
def clboss_status(plugin, request):
    return {"info": {"version": "0.14.1-standin"}, "ignored": sorted(ignored),
            "unmanaged": {k: sorted(v) for k, v in unmanaged.items()}}


@control.method("clboss-ignore")
def clboss_ignore(plugin, request, nodeid):
    ignored.add(nodeid)
    return {"nodeid": nodeid, "ignored": True}


@control.method("clboss-unignore")
def clboss_unignore(plugin, request, nodeid):
    ignored.discard(nodeid)
    return {"nodeid": nodeid, "ignored": False}


@control.method("clboss-unmanage")
def clboss_unmanage(plugin, request, nodeid, tags=""):
    unmanaged[nodeid] = {t for t in tags.split(",") if t}
    return {"nodeid": nodeid, "unmanaged": sorted(unmanaged[nodeid])}


if __name__ == "__main__":
    plugin.run()
