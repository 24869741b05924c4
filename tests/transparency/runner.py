"""One CPython regression-test module, one process, one event per test.

Started by transparency.py (bare, or under `nestls run`) as

    python3.11 runner.py MODULE --events FILE --stacks FILE --timeout S
                         [--use RES,...] [--skip FILE] [--only ID ...]

It prepares the process as regrtest does (test.libregrtest's own
setup_tests: faulthandler, resources, timeouts, hooks; a fresh temporary
working directory), loads MODULE with unittest's loader and runs its tests
one by one. For every test it appends one JSON line to FILE:

    {"ev": "list", "ids": [...]}               every test, in run order
    {"ev": "start", "id": ID}
    {"ev": "end", "id": ID, "outcome": O, "secs": S, "detail": TEXT}
    {"ev": "fixture", "what": "setUpClass", "cls": "module.Class"}
    {"ev": "complete"}

O is pass, fail, error, skip, xfail or xpass (a test with subtests takes
the worst of them). Errors of class and module fixtures arrive as unittest
names them ("setUpClass (test.test_x.C)").

Hangs: faulthandler's watchdog is re-armed at every event with --timeout
seconds, so a test or fixture that hangs makes it write every thread's
stack to the --stacks file and exit; a fatal signal writes the stacks
there too (faulthandler.enable). transparency.py turns the open "start"
into a hang or crash and starts a new process with --skip listing what
already ran.

Only this process writes events: a forked child that falls back into the
unittest loop writes nothing.
"""

import argparse
import faulthandler
import importlib
import json
import os
import sys
import tempfile
import time
import unittest

DETAIL_MAX = 6000          # characters of failure text kept per test
EXIT_TIMEOUT = 60          # seconds the interpreter may take to shut down
RANK = {"pass": 0, "skip": 1, "xfail": 2, "xpass": 3, "fail": 4, "error": 5}


class Events:
    """Appends JSON lines to a file, reopened for every line, so that a test
    closing descriptors (closerange, dup2) cannot take it away."""

    def __init__(self, path):
        self.path = path
        self.pid = os.getpid()

    def write(self, **event):
        if os.getpid() != self.pid:
            return
        line = (json.dumps(event) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


class Watchdog:
    """faulthandler's timer, writing to the stacks file. The file is checked
    (and reopened) at every re-arm in case a test closed or replaced its
    descriptor."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self.file = None
        self.ino = None
        self._open()

    def _open(self):
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
        self.file = open(self.path, "a")
        os.set_inheritable(self.file.fileno(), False)
        self.ino = os.fstat(self.file.fileno()).st_ino
        faulthandler.enable(file=self.file, all_threads=True)

    def _check(self):
        try:
            ok = os.fstat(self.file.fileno()).st_ino == self.ino
        except (OSError, ValueError):
            ok = False
        if not ok:
            self._open()

    def arm(self, seconds=None):
        self._check()
        faulthandler.dump_traceback_later(seconds or self.timeout, exit=True, file=self.file)

    def cancel(self):
        faulthandler.cancel_dump_traceback_later()


def base_id(test):
    """The id a result is filed under: a subtest counts for its test."""
    case = getattr(test, "test_case", None)
    return case.id() if case is not None else test.id()


class EventResult(unittest.TestResult):
    def __init__(self, events, watchdog):
        super().__init__()
        self.events = events
        self.watchdog = watchdog
        self.current = None      # id of the test running now
        self.outcome = None
        self.details = []
        self.t0 = 0.0

    # -- test boundaries
    def startTest(self, test):
        super().startTest(test)
        self.current = test.id()
        self.outcome = "pass"
        self.details = []
        self.t0 = time.monotonic()
        self.events.write(ev="start", id=self.current)
        self.watchdog.arm()

    def stopTest(self, test):
        super().stopTest(test)
        self.watchdog.arm()
        if self.current != test.id():
            return
        self.events.write(ev="end", id=self.current, outcome=self.outcome,
                          secs=round(time.monotonic() - self.t0, 3),
                          detail="\n".join(self.details)[:DETAIL_MAX])
        self.current = None

    # -- outcomes
    def _note(self, test, outcome, text):
        ident = base_id(test)
        if self.current is None or ident != self.current:
            # A class or module fixture (_ErrorHolder): one event of its own.
            self.events.write(ev="end", id=test.id(), outcome=outcome, secs=0,
                              detail=text[:DETAIL_MAX])
            return
        if RANK[outcome] > RANK[self.outcome]:
            self.outcome = outcome
        if text:
            self.details.append(text)

    def addError(self, test, err):
        super().addError(test, err)
        self._note(test, "error", self._exc_info_to_string(err, test))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._note(test, "fail", self._exc_info_to_string(err, test))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "fail" if issubclass(err[0], test.failureException) else "error"
            self._note(subtest, kind, subtest.id() + "\n" + self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._note(test, "skip", "skipped: " + str(reason))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._note(test, "xfail", "")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._note(test, "xpass", "unexpected success")


class EventSuite(unittest.TestSuite):
    """A flat suite that reports when a class or module fixture starts, so a
    hang there is attributed to the fixture, not to a test."""

    def __init__(self, tests, events):
        super().__init__(tests)
        self.events = events

    def _handleClassSetUp(self, test, result):
        cls = test.__class__
        if cls != getattr(result, "_previousTestClass", None):
            self.events.write(ev="fixture", what="setUpClass",
                              cls=f"{cls.__module__}.{cls.__qualname__}")
        return super()._handleClassSetUp(test, result)

    def _tearDownPreviousClass(self, test, result):
        prev = getattr(result, "_previousTestClass", None)
        if prev is not None and (test is None or prev != test.__class__):
            self.events.write(ev="fixture", what="tearDownClass",
                              cls=f"{prev.__module__}.{prev.__qualname__}")
        return super()._tearDownPreviousClass(test, result)

    def _handleModuleTearDown(self, result):
        prev = getattr(result, "_previousTestClass", None)
        if prev is not None:
            self.events.write(ev="fixture", what="tearDownModule", cls=prev.__module__)
        return super()._handleModuleTearDown(result)


def flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from flatten(item)
        else:
            yield item


def prepare(use, timeout):
    """What regrtest does before it runs a test module, with its own code."""
    from test import support
    from test.libregrtest.cmdline import _parse_args
    from test.libregrtest.setup import setup_tests

    args = ["--timeout", str(timeout)]
    if use:
        args += ["-u", use]
    ns = _parse_args(args)
    setup_tests(ns)
    support.verbose = 0
    support.failfast = False
    support.set_match_tests(None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("module")
    ap.add_argument("--events", required=True)
    ap.add_argument("--stacks", required=True)
    ap.add_argument("--timeout", type=float, required=True)
    ap.add_argument("--use", default="")
    ap.add_argument("--skip")
    ap.add_argument("--only", nargs="*")
    opts = ap.parse_args()
    sys.argv[1:] = []   # tests that look at sys.argv see no runner options
    skip_path = os.path.abspath(opts.skip) if opts.skip else None  # before the chdir

    events = Events(os.path.abspath(opts.events))
    watchdog = Watchdog(os.path.abspath(opts.stacks), opts.timeout)
    watchdog.arm()       # covers the import and module set-up too

    prepare(opts.use, opts.timeout)
    faulthandler.enable(file=watchdog.file, all_threads=True)  # not stderr

    from test import support
    from test.support import os_helper

    workdir = os.path.join(os.environ.get("NL_TR_WORKDIR") or tempfile.gettempdir(),
                           f"test_python_{os.getpid()}")
    with os_helper.temp_cwd(workdir, quiet=True):
        loader = unittest.TestLoader()
        try:
            module = importlib.import_module(opts.module)
            tests = list(flatten(loader.loadTestsFromModule(module)))
        except unittest.SkipTest as exc:
            events.write(ev="list", ids=[opts.module])
            events.write(ev="end", id=opts.module, outcome="skip", secs=0,
                         detail="skipped: " + str(exc))
            events.write(ev="complete")
            return 0
        skip = set()
        if skip_path and os.path.exists(skip_path):
            with open(skip_path) as f:
                skip = {line.rstrip("\n") for line in f}
        events.write(ev="list", ids=[t.id() for t in tests])
        if opts.only:
            tests = [t for t in tests if t.id() in opts.only]
        tests = [t for t in tests if t.id() not in skip]

        result = EventResult(events, watchdog)
        EventSuite(tests, events).run(result)
        support.gc_collect()
        support.reap_children()
    events.write(ev="complete")
    watchdog.arm(EXIT_TIMEOUT)  # a hang at interpreter exit is reported too
    return 0


if __name__ == "__main__":
    sys.exit(main())
