"""Run a past run again: `rerun` (here), `reproduce` (in its rebuilt environment).

- `commands`: rerun, reproduce, reproduce --check;
- `cache`: the environment cache (build, reuse, sync a named --env);
- `interpreters`: the Python to build an environment with;
- `pip`: the venv and pip-sync door, through `_command`;
- `differences`: how two requirement sets differ.
"""
