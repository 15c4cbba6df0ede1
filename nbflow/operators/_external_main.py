"""Runs one task's function in another Python interpreter; run as a script, never imported.

``python _external_main.py <folder>``: ``<folder>`` holds ``function.py`` (the function's source)
and ``call.pickle`` (its name, the file it came from, the line it starts on, and its arguments).
The result, or the exception's type, message and traceback, is written to ``result.pickle``.

Only the standard library is used, with syntax old interpreters read, because the interpreter
running this may have nothing else installed (not even nbflow).
"""

import os
import pickle
import sys
import traceback

PROTOCOL = 4  # what every Python 3 from 3.4 on reads


def _write(folder, payload):
    path = os.path.join(folder, "result.pickle")
    partial = path + ".partial"
    with open(partial, "wb") as out:
        pickle.dump(payload, out, protocol=PROTOCOL)
    os.replace(partial, path)


def main(folder):
    try:
        with open(os.path.join(folder, "call.pickle"), "rb") as handle:
            call = pickle.load(handle)
        with open(os.path.join(folder, "function.py"), encoding="utf-8") as handle:
            source = handle.read()
        # blank lines before the source keep the line numbers of tracebacks those of the user's file
        code = compile("\n" * (call["first_line"] - 1) + source, call["filename"], "exec")
        namespace = {"__name__": "__nbflow_task__"}
        exec(code, namespace)
        result = namespace[call["name"]](*call["args"], **call["kwargs"])
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the task
        _write(folder, {"ok": False, "type": type(exc).__name__, "message": str(exc),
                        "traceback": traceback.format_exc()})
        return 1
    try:
        _write(folder, {"ok": True, "value": result})
    except Exception as exc:  # noqa: BLE001
        _write(folder, {"ok": False, "type": type(exc).__name__,
                        "message": "the return value cannot be pickled: %s" % (exc,),
                        "traceback": traceback.format_exc()})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
