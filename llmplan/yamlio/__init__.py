"""YAML in, typed models out: load with line numbers, validate once, explain every error.

`load.load_model(path, Model)` is the only way user YAML enters the program. `document` keeps
the line of every node so that a pydantic error at `deployments.a.replicas` can say which
line it is on, and rejects duplicate keys (PyYAML silently keeps the last); `problems` turns
every failure into an `InputError` listing file, line, field path and what was expected,
with `values` saying what is wrong with a value and `model_paths` following a field path
through the model's types.
"""
