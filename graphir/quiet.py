"""Import TensorFlow without its start-up log noise (used by the CLI).

TF's C++ side logs through absl before ``absl::InitializeLog()`` runs, which ignores
``TF_CPP_MIN_LOG_LEVEL`` and writes straight to file descriptor 2 ("All log messages before
absl::InitializeLog()...", the oneDNN banner, the CPU feature guard). The only reliable way to hide it is
to point fd 2 at /dev/null while the shared libraries load.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_CPP_MIN_VLOG_LEVEL": "0",
    "ABSL_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
    "ONEDNN_VERBOSE": "0",
}


@contextmanager
def silence_fd2():
    """Redirect OS-level stderr to /dev/null for the duration (Python's ``sys.stderr`` included)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_environment() -> None:
    """Set the log-level environment variables TF reads at import time (user settings win)."""
    for k, v in _ENV.items():
        os.environ.setdefault(k, v)


def import_tf_quietly():
    """``import tensorflow`` with its start-up noise hidden; returns the module.

    Also lowers the Python-side ``tensorflow``/``absl`` loggers to ERROR so deprecation warnings from
    TF internals don't reach the user."""
    if "tensorflow" not in sys.modules:
        quiet_environment()
        with silence_fd2():
            import tensorflow  # noqa: F401
    import tensorflow as tf

    for name in ("tensorflow", "absl", "h5py", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TF
        pass
    tf.get_logger().setLevel(logging.ERROR)
    return tf
