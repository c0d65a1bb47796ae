"""The benchmark harness behind `cardgame bench`: end to end, the matchmaker alone, idle sockets.

Lean asyncio drivers (not Locust: the harness measures the servers, so its own cost must stay
small). Each benchmark prints its figures, writes them as JSON under bench-results/ and, with
--json, prints the JSON last. psutil (the `load` extra) reads CPU time and RSS of the servers.
"""
