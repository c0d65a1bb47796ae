"""Locust scenarios: `locust -f loadtest` from the repository root (see README.md).

Locust imports every `*.py` file under this folder whose name does not start with `_`, each as a
top-level module, so the modules here use absolute imports and only `locustfile.py` registers
Locust hooks and defines User classes. The benchmark harness (`cardgame bench`, a lean asyncio
driver) is in `devtools/bench/`.
"""
