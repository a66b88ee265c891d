"""The configuration reference, docs/config.md, rendered from the option specs and the yamls.

``python -m recbole_dnr.reference`` rewrites it. One table for the pipeline (``overall.yaml``, by
its ``# ---`` sections), one per model class that declares ``options`` or ships a yaml (its own keys;
the rest it inherits). A row: key, type, default (the yaml), allowed (the spec), meaning (the yaml's
comment, else the spec's ``what``). tests/test_reference.py keeps the committed page equal to a render.
"""

import os
import re
import sys

import recbole
import yaml

from recbole_dnr.config import properties_dir
from recbole_dnr.options import OPTIONS, bounds
from recbole_dnr.registry import get_model, model_name, reranker_names

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "config.md")
_KEY_LINE = re.compile(r"^([A-Za-z_][\w]*):\s*(.*?)\s*(?:#\s?(.*))?$")
_TYPED = re.compile(r"^\((\w+)\)\s*(.*)$")
_KINDS = {"int": "int", "float": "float", "bool": "bool", "int_list": "list of int", "float_list": "list of float",
          "choice": "str"}


class Entry:
    """A key as one yaml states it: its default and comment (type and meaning)."""

    def __init__(self, key, default, comment):
        typed = _TYPED.match(comment)
        self.key, self.default = key, default
        self.type, self.meaning = (typed.group(1), typed.group(2)) if typed else ("", comment)


def read_yaml(path):
    """(sections, entries): ``sections`` [(title, prose, [keys])] by the ``# ---`` comments (one untitled
    section before the first; its prose is the file's opening comment), ``entries`` {key: :class:`Entry`}
    of the top-level keys."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    values = yaml.safe_load(text) or {}
    sections, entries, last = [["", "", []]], {}, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# ---"):
            title, _, prose = stripped[len("# ---"):].strip().partition(". ")  # a long title goes on below
            sections.append([title, prose, []])
            last = None
        elif line.startswith("#") and not sections[-1][2]:
            sections[-1][1] += " " + stripped.lstrip("# ")  # the section's prose, below its title
        elif stripped.startswith("#") and line[0].isspace() and last is not None:
            last.meaning += " " + stripped.lstrip("# ")  # a key comment's next line
        else:
            match = _KEY_LINE.match(line)
            last = None
            if match and match.group(1) in values:
                last = entries[match.group(1)] = Entry(match.group(1), values[match.group(1)], match.group(3) or "")
                sections[-1][2].append(match.group(1))
    return [(t, p.strip(), keys) for t, p, keys in sections if keys or not t], entries


def fmt(value):
    """A yaml value as a user writes it: ``~``, ``True``, ``[6]``, ``{max_norm: 5.0}``."""
    if value is None:
        return "~"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def allowed(spec):
    if spec is None:
        return ""
    if spec.kind == "choice":
        return " | ".join(spec.choices)
    return bounds(spec)


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(key, entry, spec):
    kind = (entry.type if entry and entry.type else "") or (_KINDS[spec.kind] if spec else "")
    if not kind and entry is not None and entry.default is not None:
        kind = type(entry.default).__name__
    default = fmt(entry.default) if entry is not None else ""
    meaning = (entry.meaning if entry and entry.meaning else "") or (spec.what if spec else "") or "RecBole's key"
    cells = [f"`{key}`", kind, f"`{default}`" if default else "", allowed(spec), meaning]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(rows):
    return ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|", *rows, ""]


def model_classes(extra=()):
    """Our model classes that declare ``options`` or ship a yaml, bases first, then by name;
    ``extra``: more classes (a test's)."""
    seen = {}
    models = [get_model(n) for n in reranker_names() if "<" not in n] + list(extra)
    for cls in models:
        for klass in reversed(cls.__mro__):
            if klass.__module__.startswith("recbole_dnr") or klass in extra:
                seen.setdefault(klass, None)
    named = set(reranker_names())
    listed = [k for k in seen if vars(k).get("options") or os.path.isfile(_model_yaml(k))]
    bases = [k for k in listed if model_name(k) not in named]  # abstract classes: in class order
    return bases + sorted((k for k in listed if k not in bases), key=model_name)


def _model_yaml(cls):
    return os.path.join(properties_dir(), "model", model_name(cls) + ".yaml")


def _anchor(name):
    return re.sub(r"[^a-z0-9_-]", "", name.lower().replace(" ", "-"))


def _spec_of_key(key, classes):
    """The one spec every class that declares ``key`` agrees on (OPTIONS first), else None."""
    specs = {vars(c)["options"][key] for c in classes if key in vars(c).get("options", {})}
    return OPTIONS.get(key) or (specs.pop() if len(specs) == 1 else None)


def _pipeline(classes):
    sections, entries = read_yaml(os.path.join(properties_dir(), "overall.yaml"))
    lines = ["## Pipeline", "", "`properties/overall.yaml`: every list model starts from these (RecBole's own "
             "defaults below them). A key a model declares too is listed again under that model.", ""]
    for title, prose, keys in sections:
        if title and keys:
            lines += [f"### {title[0].upper() + title[1:]}", ""] + ([prose, ""] if prose else [])
        lines += _table([_row(k, entries[k], _spec_of_key(k, classes)) for k in keys])
    undeclared = [k for k in OPTIONS if k not in entries]
    if undeclared:
        _, recbole_entries = read_yaml(os.path.join(os.path.dirname(recbole.__file__), "properties", "overall.yaml"))
        lines += ["### Checked, with RecBole's defaults", "",
                  "Keys RecBole's own `overall.yaml` sets; recbole_dnr checks them.", ""]
        lines += _table([_row(k, recbole_entries.get(k), OPTIONS[k]) for k in undeclared])
    return lines, entries


def _model_section(cls, classes, overall):
    name = model_name(cls)
    path = _model_yaml(cls)
    _, entries = read_yaml(path) if os.path.isfile(path) else ([], {})
    own = dict(vars(cls).get("options", {}))
    keys = list(entries) + [k for k in own if k not in entries]
    doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    lines = [f"## {name}", ""] + ([doc.replace("``", "`"), ""] if doc else [])
    bases = [k for k in cls.__mro__[1:] if k in classes]
    inherits = ", ".join(f"[{model_name(k)}](#{_anchor(model_name(k))})" for k in bases)
    lines += [f"Inherits the keys of {inherits + ' and ' if inherits else ''}the [pipeline](#pipeline)"
              + (f"; defaults from `properties/model/{name}.yaml`." if entries else "."), ""]
    specs = cls.option_specs({}) if hasattr(cls, "option_specs") else {}
    rows = []
    for key in keys:
        entry = entries.get(key) or overall.get(key)
        rows.append(_row(key, entry, own.get(key) or specs.get(key) or OPTIONS.get(key)))
    return lines + (_table(rows) if rows else ["No keys of its own.", ""])


def _recbole_yamls(classes):
    """Model yamls no class of ours goes by (a RecBole model's, when it reranks)."""
    ours = {model_name(c) for c in classes}
    folder = os.path.join(properties_dir(), "model")
    lines = []
    for file in sorted(os.listdir(folder)):
        if file.endswith(".yaml") and file[:-len(".yaml")] not in ours:
            sections, entries = read_yaml(os.path.join(folder, file))
            lines += [f"## {file[:-len('.yaml')]} (RecBole's model as a reranker)", "",
                      f"`properties/model/{file}`, loaded after RecBole's own yaml for it and "
                      "[RecBoleReranker](#recbolereranker)'s. " + sections[0][1], ""]
            lines += _table([_row(k, entries[k], None) for k in entries])
    return lines


def render(extra=()):
    """docs/config.md's text; ``extra``: more model classes (a test's)."""
    classes = model_classes(extra)
    pipeline, overall = _pipeline(classes)
    lines = ["# Configuration reference", "",
             "Generated by `python -m recbole_dnr.reference` from the yamls in `properties/` and the option "
             "specs (`recbole_dnr/options.py`, each model's `options`); do not edit by hand. Set any key in a "
             "yaml (`--config_files`) or as `--key=value`. *allowed* is what the config check accepts "
             "(docs/architecture.md, option checks).", ""]
    lines += pipeline
    for cls in classes:
        lines += _model_section(cls, classes, overall)
    lines += _recbole_yamls(classes)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv=None):
    """Rewrite docs/config.md (or the path given)."""
    path = (argv or sys.argv[1:] or [PAGE])[0]
    with open(path, "w", encoding="utf-8") as f:
        f.write(render())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
