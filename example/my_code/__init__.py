"""A small research codebase run by expyrun: data, a model, and experiments."""
