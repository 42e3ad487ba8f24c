"""expyrun: run a Python experiment from a YAML config; keep what is needed to run it again."""

__version__ = "0.3.0.dev0"


def started() -> None:
    """End expyrun's start-up: turn the cyclic garbage collector back on (see __main__.py).

    Freezes the objects alive now first (gc.freeze), so they are never scanned again. Acts
    once: a no-op when the collector is on (a test calling `cli.main`, a second run in one
    process), so that objects made later are never frozen for good.
    """
    import gc

    if not gc.isenabled():
        gc.freeze()
        gc.enable()
