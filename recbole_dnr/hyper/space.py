"""Search spaces in RecBole's params-file format, one parameter a line::

    learning_rate loguniform -8,0        # exp(U(-8, 0)), as hyperopt's hp.loguniform
    hidden_size choice [64,128]
    dropout_prob uniform 0,0.5
    lambda_e quniform 0,10,2             # round(U(0, 10) / 2) * 2; integral bounds and step give ints

Blank lines and ``#`` comments are skipped. Choice values are Python literals (read with
``ast.literal_eval``; RecBole ``eval``s them).
"""

import ast
import math
from dataclasses import dataclass

from recbole_dnr.errors import UserInputError

KINDS = ("choice", "uniform", "quniform", "loguniform")


@dataclass(frozen=True)
class Param:
    """One searched parameter: ``kind`` in :data:`KINDS`; ``args`` the values (choice) or bounds."""

    name: str
    kind: str
    args: tuple

    @property
    def integral(self):
        """quniform with integral bounds and step: the values are ints (``hidden_size``, ``lambda_e``)."""
        return self.kind == "quniform" and all(float(a).is_integer() for a in self.args)

    def size(self):
        """Number of values (None when continuous)."""
        if self.kind == "choice":
            return len(self.args)
        if self.kind == "quniform":
            low, high, q = self.args
            return int(math.floor((high - low) / q + 1e-9)) + 1
        return None

    def grid(self):
        """Every value of a discrete parameter, in order."""
        if self.kind == "choice":
            return list(self.args)
        low, _, q = self.args
        return [self.cast(low + i * q) for i in range(self.size())]

    def edges(self):
        """The values a search can reach at the ends of the space: every choice; a range's two ends
        (quniform's last grid point, loguniform's ``exp`` of its bounds)."""
        if self.kind == "choice":
            return list(self.args)
        if self.kind == "quniform":
            values = self.grid()
            return [values[0], values[-1]]
        if self.kind == "loguniform":
            return [math.exp(a) for a in self.args]
        return list(self.args)

    def cast(self, value):
        return int(round(value)) if self.integral else value


def parse_line(line, where="params file"):
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    parts = text.split()
    if len(parts) < 3:
        raise UserInputError(f"{where}: '{text}' is not 'name type values' (e.g. learning_rate loguniform -8,0)")
    name, kind, value = parts[0], parts[1], "".join(parts[2:])
    if kind not in KINDS:
        raise UserInputError(f"{where}: parameter {name} has type '{kind}'; types are {', '.join(KINDS)}")
    if kind == "choice":
        try:
            values = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise UserInputError(f"{where}: {name} choice {value!r} is not a Python list literal, "
                                 f"e.g. [64,128] or ['gaussian','beta']") from None
        if not isinstance(values, (list, tuple)) or not values:
            raise UserInputError(f"{where}: {name} choice needs a non-empty list, got {value!r}")
        return Param(name, kind, tuple(values))
    want = 3 if kind == "quniform" else 2
    try:
        bounds = tuple(float(v) for v in value.split(","))
    except ValueError:
        bounds = ()
    if len(bounds) != want or bounds[0] > bounds[1] or (kind == "quniform" and bounds[2] <= 0):
        shape = "low,high,q with q > 0" if kind == "quniform" else "low,high"
        raise UserInputError(f"{where}: {name} {kind} needs {shape} (low <= high), got {value!r}")
    return Param(name, kind, bounds)


def read_params_file(path):
    """The :class:`Param` list of a RecBole params file; a clear error for a missing or bad one."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError as err:
        raise UserInputError(f"params file '{path}' cannot be read ({err.strerror}); give --params_file=<file> with "
                             f"one 'name type values' line per parameter") from None
    params = [p for i, line in enumerate(lines, 1) if (p := parse_line(line, f"{path}:{i}")) is not None]
    if not params:
        raise UserInputError(f"params file '{path}' names no parameter")
    names = [p.name for p in params]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserInputError(f"params file '{path}' names {dup} twice")
    return params
