#!/usr/bin/env python3
"""Validate the Grafana dashboards and the PromQL of the alert rules.

Python 3 standard library only. Run from the repository root:

    python3 scripts/checks/dashboards.py

Checks:
- every grafana/dashboards/*.json parses, has a `uid` (unique across files),
  `schemaVersion` 39 and a `datasource` template variable of type datasource
  (query prometheus);
- panel ids are unique within a dashboard, rows' nested panels included;
- every panel and every target uses the datasource variable
  ({"type": "prometheus", "uid": "${datasource}"}), and so do query variables;
- every metric name in every PromQL expression (panel targets, query
  variables, and the `expr` of every rule in prometheus/alerts.yml) is listed
  in docs/METRICS.md (`_bucket`, `_sum`, `_count` stripped). `up` is always
  allowed (Prometheus makes it); `process_*` names only if the catalogue has
  them;
- every alert's runbook_url is docs/OPERATIONS.md#<anchor> of an existing
  section.

Exits 1 with one line per problem, 0 when clean.
"""
import glob
import json
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DASHBOARDS = os.path.join(ROOT, "grafana", "dashboards")
ALERTS = os.path.join(ROOT, "prometheus", "alerts.yml")
CATALOGUE = os.path.join(ROOT, "docs", "METRICS.md")
DS_UID = "${datasource}"

ALWAYS_ALLOWED = {"up"}

# PromQL words that are not metric names.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
    "bool", "and", "or", "unless", "inf", "nan", "atan2",
    # aggregations and functions, in case one is written without "(" next to it
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile",
}

problems = []


def problem(where, msg):
    problems.append(f"{where}: {msg}")


def load_catalogue():
    names = set()
    with open(CATALOGUE, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|", line)
            if m:
                names.add(m.group(1))
    if not names:
        problem(CATALOGUE, "no metric found in the catalogue tables")
    return names


def strip_grafana(expr):
    # Grafana variables and macros: ${x}, ${x:fmt}, $x, $__rate_interval, [[x]]
    expr = re.sub(r"\$\{[^}]*\}", "1m", expr)
    expr = re.sub(r"\$[A-Za-z_][A-Za-z0-9_]*", "1m", expr)
    expr = re.sub(r"\[\[[^\]]*\]\]", "x", expr)
    return expr


def metric_names(expr):
    """The metric names an expression selects (best effort, no full parser)."""
    e = strip_grafana(expr)
    # string literals (label values, label_replace arguments)
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)
    e = re.sub(r"'(?:[^'\\]|\\.)*'", "''", e)
    e = re.sub(r"`[^`]*`", "``", e)
    # label matchers and ranges/subqueries
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    # label lists of grouping / matching modifiers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    # comments
    e = re.sub(r"#[^\n]*", " ", e)
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call:  # a function or aggregation
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def check_names(where, expr, catalogue):
    if not isinstance(expr, str) or not expr.strip():
        problem(where, "empty expression")
        return 0
    found = metric_names(expr)
    if not found:
        problem(where, f"no metric in expression: {expr.strip()}")
    for name in sorted(found):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name in catalogue or base in catalogue:
            continue
        if name in ALWAYS_ALLOWED:
            continue
        problem(where, f"metric {name!r} is not in docs/METRICS.md")
    return len(found)


def variable_query_expr(var):
    q = var.get("query")
    if isinstance(q, dict):
        q = q.get("query", "")
    if not isinstance(q, str):
        return None
    m = re.match(r"^\s*label_values\s*\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", q, re.S)
    if m:
        return m.group(1)
    m = re.match(r"^\s*label_values\s*\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", q)
    if m:
        return ""  # a label across all series: no metric to check
    m = re.match(r"^\s*query_result\s*\((.*)\)\s*$", q, re.S)
    if m:
        return m.group(1)
    if re.match(r"^\s*(label_names|metrics)\s*\(", q):
        return ""
    return q


def is_ds_var(ds):
    return isinstance(ds, dict) and ds.get("uid") == DS_UID and ds.get("type") == "prometheus"


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def check_dashboard(path, catalogue, uids):
    rel = os.path.relpath(path, ROOT)
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError) as err:
        problem(rel, f"does not parse: {err}")
        return 0, 0
    uid = d.get("uid")
    if not uid or not isinstance(uid, str):
        problem(rel, "no uid")
    elif uid in uids:
        problem(rel, f"uid {uid!r} also used by {uids[uid]}")
    else:
        uids[uid] = rel
    if not d.get("title"):
        problem(rel, "no title")
    if d.get("schemaVersion") != 39:
        problem(rel, f"schemaVersion is {d.get('schemaVersion')!r}, expected 39")

    variables = (d.get("templating") or {}).get("list") or []
    dsvars = [v for v in variables if v.get("name") == "datasource"]
    if not dsvars:
        problem(rel, "no 'datasource' template variable")
    elif dsvars[0].get("type") != "datasource" or dsvars[0].get("query") != "prometheus":
        problem(rel, "the 'datasource' variable must be type datasource, query prometheus")
    names = [v.get("name") for v in variables]
    for n in set(names):
        if names.count(n) > 1:
            problem(rel, f"variable {n!r} defined twice")
    exprs = 0
    for v in variables:
        if v.get("type") != "query":
            continue
        where = f"{rel}: variable {v.get('name')!r}"
        if not is_ds_var(v.get("datasource")):
            problem(where, f"datasource is {v.get('datasource')!r}, not the datasource variable")
        q = variable_query_expr(v)
        if q:
            exprs += 1
            check_names(where, q, catalogue)

    ids = {}
    panels = 0
    for p in walk_panels(d.get("panels")):
        panels += 1
        pid = p.get("id")
        title = p.get("title", "?")
        where = f"{rel}: panel {pid!r} {title!r}"
        if not isinstance(pid, int):
            problem(where, "panel without an integer id")
        elif pid in ids:
            problem(where, f"id {pid} also used by panel {ids[pid]!r}")
        else:
            ids[pid] = title
        if p.get("type") == "row":
            continue
        if not is_ds_var(p.get("datasource")):
            problem(where, f"panel datasource is {p.get('datasource')!r}, not the datasource variable")
        targets = p.get("targets") or []
        if not targets:
            problem(where, "no targets")
        for t in targets:
            tw = f"{where} target {t.get('refId', '?')}"
            if not is_ds_var(t.get("datasource")):
                problem(tw, f"target datasource is {t.get('datasource')!r}, not the datasource variable")
            exprs += 1
            check_names(tw, t.get("expr"), catalogue)
    if panels == 0:
        problem(rel, "no panels")
    return panels, exprs


def rule_exprs(path):
    """(line, alert name, expr) of every rule; a small reader for the layout of
    Prometheus rule files (expr: on one line, or a | / > block)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    name = "?"
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*-?\s*(alert|record):\s*(\S.*?)\s*$", line)
        if m:
            name = m.group(2).strip("'\"")
        m = re.match(r"^(\s*)-?\s*expr:\s*(.*?)\s*$", line)
        if m:
            indent = len(m.group(1))
            value = m.group(2)
            start = i + 1
            if value[:1] in ("|", ">"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or
                                          len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i])
                    i += 1
                out.append((start, name, "\n".join(block)))
                continue
            if value[:1] in ("'", '"'):
                q = value[0]
                value = value[1:-1] if value.endswith(q) else value[1:]
                value = value.replace("''", "'") if q == "'" else value.replace('\\"', '"')
            out.append((start, name, value))
        i += 1
    return out


def check_runbooks():
    """Every alert has a runbook_url docs/OPERATIONS.md#anchor whose heading exists."""
    ops = os.path.join(ROOT, "docs", "OPERATIONS.md")
    anchors = set()
    try:
        with open(ops, encoding="utf-8") as f:
            in_code = False
            for line in f:
                if line.startswith("```"):
                    in_code = not in_code
                m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
                if m and not in_code:  # GitHub's heading anchors
                    slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
                    anchors.add(slug)
    except OSError:
        problem("docs/OPERATIONS.md", "missing")
        return
    with open(ALERTS, encoding="utf-8") as f:
        text = f.read()
    alerts = re.findall(r"^\s*-\s*alert:\s*(\S+)", text, re.M)
    urls = re.findall(r"^\s*runbook_url:\s*(\S+)", text, re.M)
    if len(urls) != len(alerts):
        problem("prometheus/alerts.yml", f"{len(alerts)} alerts but {len(urls)} runbook_url annotations")
    for url in urls:
        path, _, anchor = url.strip("'\"").partition("#")
        if path != "docs/OPERATIONS.md" or not anchor:
            problem("prometheus/alerts.yml", f"runbook_url {url} is not docs/OPERATIONS.md#<section>")
        elif anchor not in anchors:
            problem("prometheus/alerts.yml", f"runbook_url {url}: no such section in docs/OPERATIONS.md")


def main():
    catalogue = load_catalogue()
    uids = {}
    files = sorted(glob.glob(os.path.join(DASHBOARDS, "*.json")))
    if not files:
        problem(os.path.relpath(DASHBOARDS, ROOT), "no dashboards")
    panels = exprs = 0
    for path in files:
        p, e = check_dashboard(path, catalogue, uids)
        panels += p
        exprs += e
    rules = rule_exprs(ALERTS)
    if not rules:
        problem(os.path.relpath(ALERTS, ROOT), "no rule expressions found")
    for line, name, expr in rules:
        check_names(f"prometheus/alerts.yml:{line} {name}", expr, catalogue)
    check_runbooks()
    for p in problems:
        print(p)
    status = "FAIL" if problems else "ok"
    print(f"dashboards: {status}: {len(files)} dashboards, {panels} panels, {exprs} dashboard queries, "
          f"{len(rules)} rule expressions, {len(catalogue)} catalogue metrics, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
