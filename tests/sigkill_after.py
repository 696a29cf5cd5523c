"""Run a script and kill its process with SIGKILL as soon as a given function has returned N times.

    python tests/sigkill_after.py transformers.trainer:Trainer._save_checkpoint 1 glue/run_glue.py ARGS...

is ``python glue/run_glue.py ARGS...`` that dies, with no clean-up of any kind, right after writing its
first checkpoint: a crash at a known moment, for tests that resume the run and compare it with an
uninterrupted one. The function is named ``module:attribute.path`` and patched before the script starts.
"""

import functools
import importlib
import os
import runpy
import signal
import sys


def kill_after(target: str, calls: int) -> None:
    """Replace ``target`` (``module:Class.method`` or ``module:function``) by a wrapper that SIGKILLs the
    process when its ``calls``-th call returns."""
    module_name, path = target.split(":")
    *owners, name = path.split(".")
    owner = importlib.import_module(module_name)
    for attribute in owners:
        owner = getattr(owner, attribute)
    original, done = getattr(owner, name), []

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        done.append(1)
        if len(done) == calls:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)


if __name__ == "__main__":
    target, calls, script, *arguments = sys.argv[1:]
    kill_after(target, int(calls))
    sys.argv = [script, *arguments]
    runpy.run_path(script, run_name="__main__")
