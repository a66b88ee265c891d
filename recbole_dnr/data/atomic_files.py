"""RecBole atomic files checked before RecBole reads them: header fields, columns per row, numbers
where ``:float`` says so, one row per (user, item); errors name file, line and column."""

import linecache
import math

import numpy as np

from recbole_dnr.errors import UserInputError


class AtomicFileError(UserInputError):
    """A malformed RecBole atomic file; the message names file, line and column."""


def validate_atomic_file(path, required, separator="\t"):
    """Check ``path``'s header has the ``required`` fields and every row the right number of
    columns, with numbers in the ``float`` fields among them; raise :class:`AtomicFileError` naming
    file, line and column (RecBole would fail later in pandas, without a line number)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split(separator)
        names = [h.split(":")[0] for h in header]
        missing = [r for r in required if r not in names]
        if missing:
            raise AtomicFileError(
                f"{path}:1: header lacks field(s) {missing}; found {header}. "
                "Expected e.g. user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float")
        numeric = [(i, header[i]) for i, n in enumerate(names) if n in required and header[i].endswith(":float")]
        pair = [names.index(r) for r in required[:2]]  # (user, item) columns
        keys = []
        for lineno, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split(separator)
            if len(fields) != len(header):
                raise AtomicFileError(f"{path}:{lineno}: expected {len(header)} columns separated by "
                                      f"{separator!r}, found {len(fields)}")
            for col, name in numeric:
                try:
                    value = float(fields[col])
                except ValueError:
                    raise AtomicFileError(f"{path}:{lineno}: column {col + 1} ({name}) is not a number: "
                                          f"{fields[col]!r}") from None
                if not math.isfinite(value):
                    raise AtomicFileError(f"{path}:{lineno}: column {col + 1} ({name}) is {fields[col]!r}; "
                                          "ratings and timestamps must be finite numbers")
            keys.append(hash((fields[pair[0]], fields[pair[1]])))
    _check_repeated_pairs(path, keys, pair, separator, required)


def _check_repeated_pairs(path, keys, pair, separator, required):
    """One row per (user, item): a repeat (an exact duplicate row or a re-rating) would put an item
    twice into a slate and give it two labels."""
    keys = np.asarray(keys, dtype=np.int64)
    uniq, counts = np.unique(keys, return_counts=True)
    for h in uniq[counts > 1]:
        rows = {}
        for idx in np.flatnonzero(keys == h):  # confirm (hash collisions are possible, if unlikely)
            line = linecache.getline(path, int(idx) + 2).rstrip("\n").split(separator)
            key = (line[pair[0]], line[pair[1]])
            if key in rows:
                linecache.clearcache()
                raise AtomicFileError(
                    f"{path}:{int(idx) + 2}: {required[0]} {key[0]} rated {required[1]} {key[1]} already on line "
                    f"{rows[key]}; the list protocol needs one row per (user, item): keep one (e.g. the latest) "
                    "and remove the others")
            rows[key] = int(idx) + 2
    linecache.clearcache()
