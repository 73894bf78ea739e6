#!/usr/bin/env python3
"""A small real pyln plugin that subscribes to cl-hive's custom notifications (as a bot
or another plugin would) and records each as lightningd delivered it. It never prints
(pyln owns stdout). `listener-received` returns what came, in order."""
from pyln.client import Plugin

TOPICS = ("hive_action_proposed", "hive_action_awaiting_approval", "hive_action_decided",
          "hive_action_finished")

plugin = Plugin()
received = []


def _recorder(topic):
    def record(plugin, origin=None, **kwargs):
        # pyln binds the params as keyword arguments: {topic: payload}, plus the
        # top-level `origin` lightningd adds to a custom notification.
        received.append({"topic": topic, "origin": origin, "payload": kwargs.get(topic)})
    return record


for _topic in TOPICS:
    plugin.add_subscription(_topic, _recorder(_topic))


@plugin.method("listener-received")
def listener_received(plugin):
    """Every hive notification received so far, in order."""
    return {"received": received}


if __name__ == "__main__":
    plugin.run()
