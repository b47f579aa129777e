"""The reliability soak behind bench/soak.py, one job a module: `plans` (what each client does next),
`clients` (doing it and polling health), `processes` (the service process and its /proc figures),
`recorder` (what the clients saw), `report` (the figures) and `run` (the run itself, `main`).
"""
