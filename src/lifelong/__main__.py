import signal

from lifelong.cli import main

try:
    code = main()
finally:  # the command has ended: a signal now has nothing to stop, and would only show a traceback
    for sig in (signal.SIGINT, signal.SIGTERM):  # from Python's exit handlers
        signal.signal(sig, signal.SIG_IGN)
raise SystemExit(code)
