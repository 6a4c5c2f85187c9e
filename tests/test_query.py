"""Unit tests for octostored.query (no MLflow needed; see the agreement test for that)."""

from __future__ import annotations

import math
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octostored.model import Run
from octostored.query import FilterError, compile_filter, parse_order_by, search, sort_runs
from octostored.query.lexer import split_identifier
from octostored.query.parse import parse_filter

NAN, INF = float("nan"), float("inf")


def run(rid="r", **kw) -> Run:
    kw.setdefault("start_time", 1000)
    if "metrics" in kw:
        kw["metrics"] = {k: (v, 0, 0) for k, v in kw["metrics"].items()}
    return Run(rid, "0", **kw)


def ids(runs):
    return [r.run_id for r in runs]


def matches(filter_string, r) -> bool:
    pred = compile_filter(filter_string)
    assert pred.select([r]) == ([r] if pred(r) else [])  # both forms agree
    return pred(r)


# --- Parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,clause",
    [
        ("metrics.rmse < 0.7", ("metric", "rmse", "<", 0.7)),
        ("metric.rmse>=-1", ("metric", "rmse", ">=", -1.0)),
        ("metrics.x > .5", ("metric", "x", ">", 0.5)),
        ("metrics.x > 1E-3", ("metric", "x", ">", 0.001)),
        ("params.model = 'rf'", ("parameter", "model", "=", "rf")),
        ('param.model != "rf"', ("parameter", "model", "!=", "rf")),
        ("parameters.`my key` like 'a%'", ("parameter", "my key", "LIKE", "a%")),
        ("tags.`my key` ILIKE 'a%'", ("tag", "my key", "ILIKE", "a%")),
        ('tags."my key" = \'x\'', ("tag", "my key", "=", "x")),
        ("tag.mlflow.runName = 'x'", ("tag", "mlflow.runName", "=", "x")),
        ("tags.`a.b` IS NULL", ("tag", "a.b", "IS NULL", None)),
        ("tags.x is not null", ("tag", "x", "IS NOT NULL", None)),
        ("attributes.status = 'FINISHED'", ("attribute", "status", "=", "FINISHED")),
        ("attr.run_name = 'a'", ("attribute", "run_name", "=", "a")),
        ("run.user_id = 'a'", ("attribute", "user_id", "=", "a")),
        ("status = 'FAILED'", ("attribute", "status", "=", "FAILED")),
        ("`Run name` = 'x'", ("attribute", "run_name", "=", "x")),
        ("attributes.created > 5", ("attribute", "start_time", ">", 5)),
        ("attributes.end_time <= 5.5", ("attribute", "end_time", "<=", 5.5)),
        ("attributes.run_id IN ('a', \"b\")", ("attribute", "run_id", "IN", ("a", "b"))),
        ("run_id not in ('a')", ("attribute", "run_id", "NOT IN", ("a",))),
        ("datasets.context IN ('train',)", ("dataset", "context", "IN", ("train",))),
        ("dataset.digest = 'd'", ("dataset", "digest", "=", "d")),
        ("params.x = 'it''s'", ("parameter", "x", "=", "it''s")),  # MLflow does not unescape
        ("metrics.名前 > 1", ("metric", "名前", ">", 1.0)),
        ("metrics.created > 1", ("metric", "start_time", ">", 1.0)),  # MLflow's alias quirk
    ],
)
def test_parse(text, clause):
    (got,) = parse_filter(text)
    assert (got.kind, got.key, got.comparator, got.value) == clause


def test_parse_several_and_stray_ands():
    got = parse_filter("and metrics.a > 1 AND params.b = 'x' and  and tags.c != 'y' and")
    assert [c.key for c in got] == ["a", "b", "c"]
    assert parse_filter(None) == parse_filter("") == parse_filter("   ") == []


def test_split_identifier_matches_mlflow_string_rules():
    assert split_identifier("tags.`a b`") == ("tags", "a b")
    assert split_identifier("`tags`.x") == ("tags", "x")
    assert split_identifier('tags."a"."b"') == ("tags", 'a"."b')
    assert split_identifier("start_time") == ("", "start_time")


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("metrics.rmse <", "expected a value after '<'"),
        ("metrics.a < 1 or metrics.b > 2", "cannot use OR"),
        ("(metrics.a < 1)", "parentheses"),
        ("params.lr < '1'", "cannot use <"),
        ("metrics.a = '1'", "plain number"),
        ("params.a = rf", "quoted string"),
        ("params.a IN ('x')", "cannot use IN"),
        ("attributes.status IN ('x')", "take a list"),
        ("metrics.a IS NULL", "only work on params and tags"),
        ("foo.a = 'x'", "unknown key type 'foo'"),
        ("metrics .a > 1", "remove the space"),
        ("attributes.lifecycle_stage = 'x'", "not a run attribute"),
        ("datasets.source = 'x'", "datasets have no 'source'"),
        ("params.in = 'x'", "cannot follow '.'"),
        ("attributes.run_id IN ()", "one or more quoted strings"),
        ("attributes.run_id IN (1)", "one or more quoted strings"),
        ("attributes.run_id IN ('a'", "never closed"),
        ("attributes.run_id = ('a', 'b')", "needs IN or NOT IN"),
        ("attributes.run_id IN 'a'", "parenthesised list"),
        ("params.a NOT LIKE 'x'", "cannot use NOT LIKE"),
        ("metrics.a == 1", "cannot use =="),
        ("metrics.a < 1; params.b = 'x'", "expected AND between conditions"),
        ("params.a = 'x' params.b = 'y'", "expected AND between conditions"),
        ("tags.x IS NOT", "NULL or NOT NULL"),
        ("= 'a'", "expected a key"),
        ("tags.x", "expected a comparison"),
    ],
)
def test_errors_say_where_and_how(text, fragment):
    with pytest.raises(FilterError) as exc:
        compile_filter(text)
    msg = str(exc.value)
    assert fragment in msg
    assert msg.startswith("bad filter at ") and "\n" not in msg
    assert isinstance(exc.value, ValueError)


# --- Matching --------------------------------------------------------------------------


def test_metric_comparisons_and_nan():
    r = run(metrics={"a": 0.5, "n": NAN, "i": INF, "m": -INF})
    assert matches("metrics.a < 0.7", r) and not matches("metrics.a > 0.7", r)
    assert matches("metrics.a = 0.5", r) and matches("metrics.a != 1", r)
    # NaN is unordered: only != matches (as in both MLflow stores).
    for op in ("<", "<=", "=", ">=", ">"):
        assert not matches(f"metrics.n {op} 0", r)
    assert matches("metrics.n != 0", r)
    assert matches("metrics.i > 1e308", r) and matches("metrics.m < -1e308", r)


def test_missing_keys_never_match():
    r = run(params={"p": "x"}, tags={"t": "y"})
    for text in ("metrics.nope != 1", "params.nope != 'x'", "tags.nope != 'y'",
                 "params.nope LIKE '%'", "attributes.end_time != 1"):
        assert not matches(text, r), text
    assert matches("params.nope IS NULL", r) and not matches("params.p IS NULL", r)
    assert matches("tags.t IS NOT NULL", r) and not matches("tags.nope IS NOT NULL", r)


def test_strings_compare_exactly():
    r = run(params={"lr": "0.10", "m": "Random Forest"}, status="FINISHED")
    assert not matches("params.lr = '0.1'", r)  # strings, not numbers
    assert matches("params.m = 'Random Forest'", r) and not matches("params.m = 'random forest'", r)
    assert not matches("attributes.status = 'finished'", r)


@pytest.mark.parametrize(
    "value,pattern,like,ilike",
    [
        ("abc", "a%", True, True),
        ("abc", "A%", False, True),
        ("abc", "%c", True, True),
        ("abc", "_b_", True, True),
        ("abc", "ab", False, False),
        ("a.c", "a.c", True, True),
        ("abc", "a.c", False, False),  # '.' is literal, not a regex
        ("a(c", "a(%", True, True),
        ("a+c", "a+c", True, True),
        ("Élan", "é%", False, True),  # file store folds non-ASCII (SQLite would not)
        ("", "%", True, True),
        ("a\nb", "a%", True, True),
        ("a\nb", "%b", False, False),  # MLflow's regex: '.' stops at newlines
    ],
)
def test_like_is_mlflows_regex(value, pattern, like, ilike):
    r = run(tags={"t": value})
    assert matches(f"tags.t LIKE '{pattern}'", r) is like
    assert matches(f"tags.t ILIKE '{pattern}'", r) is ilike


def test_attributes():
    r = run("abc", run_name="my run", status="FAILED", start_time=10, end_time=None,
            user_id="ana", artifact_uri="file:///x/artifacts")
    assert matches("attributes.run_id IN ('abc', 'zzz')", r)
    assert not matches("attributes.run_id NOT IN ('abc')", r)
    assert matches("attributes.run_name LIKE 'my%'", r) and matches("`Run name` = 'my run'", r)
    assert matches("attributes.start_time >= 10", r) and matches("created < 10.5", r)
    assert not matches("attributes.end_time > 0", r) and not matches("attributes.end_time < 0", r)
    assert matches("attributes.user_id = 'ana'", r)
    assert matches("attributes.artifact_uri LIKE '%artifacts'", r)
    assert not matches("attributes.run_name = 'x'", run(run_name=None))


def test_datasets_match_any_input():
    r = run(inputs=[
        {"name": "train", "digest": "d1", "tags": {"mlflow.data.context": "training"}},
        {"name": "eval", "digest": "d2", "tags": [{"key": "mlflow.data.context", "value": "eval"}]},
        {"name": "raw", "digest": "d3", "tags": {}},
    ])
    assert matches("datasets.name = 'eval'", r) and matches("datasets.digest IN ('d3')", r)
    assert matches("datasets.name != 'train'", r)  # another input differs
    assert matches("datasets.context = 'eval'", r) and matches("datasets.context LIKE 'tr%'", r)
    assert not matches("datasets.context = 'raw'", r)
    assert not matches("datasets.name = 'x'", run())


def test_values_are_data_not_code():
    evil = "x') or True or ('"
    r = run(params={"p": evil})
    pred = compile_filter(f'params.p = "{evil}"')
    assert pred(r) and evil not in pred.source


def test_compile_is_cached():
    assert compile_filter("metrics.a < 1") is compile_filter("metrics.a < 1")


# --- Ordering --------------------------------------------------------------------------


def _mlflow_sort(runs, order_by):
    """SearchUtils.sort (file store), transcribed for Run records: the reference."""
    def value(r, kind, key):
        if kind == "metric":
            v = r.metrics.get(key)
            return None if v is None else v[0]
        if kind == "parameter":
            return r.params.get(key)
        if kind == "tag":
            return r.tags.get(key)
        return getattr(r, key)

    def sort_key(r, kind, key, asc):
        v = value(r, kind, key)
        none, nan = v is None, isinstance(v, float) and math.isnan(v)
        fill = (1 if asc else -1) * math.inf
        v = fill if none else -fill if nan else v
        return (none or nan, v) if asc else (not (none or nan), v)

    runs = sorted(runs, key=lambda r: (-r.start_time, r.run_id))
    for c in reversed(parse_order_by(order_by).clauses):
        runs = sorted(runs, key=lambda r: sort_key(r, c.kind, c.key, c.ascending),
                      reverse=not c.ascending)
    return runs


_metric = st.one_of(st.none(), st.sampled_from([NAN, INF, -INF, 0.0, -1.5, 2.0, 1e308]))
_param = st.one_of(st.none(), st.sampled_from(["", "a", "B", "b", "ab", "10", "9", "é", "z z"]))
_runs = st.lists(
    st.tuples(_metric, _param, _param, st.integers(0, 3), st.sampled_from(["FINISHED", "FAILED"])),
    max_size=25,
).map(lambda rows: [
    Run(f"{i:02d}{random.Random(i).random():.4f}", "0", start_time=t, status=s,
        metrics={} if m is None else {"m": (m, 0, 0)},
        params={} if p is None else {"p": p}, tags={} if q is None else {"q": q})
    for i, (m, p, q, t, s) in enumerate(rows)
])
_orders = st.lists(st.sampled_from([
    "metrics.m", "metrics.m DESC", "params.p", "params.p DESC", "tags.q ASC", "tags.q desc",
    "attributes.status DESC", "attributes.start_time", "attributes.run_id DESC",
]), max_size=3, unique=True)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_runs, _orders, st.integers(0, 30), st.integers(0, 5))
def test_sort_matches_mlflows_algorithm(runs, order_by, limit, offset):
    expected = ids(_mlflow_sort(runs, order_by))
    spec = parse_order_by(order_by)
    assert ids(sort_runs(runs, spec)) == expected
    assert ids(sort_runs(iter(runs), spec, limit=limit, offset=offset)) == \
        expected[offset: offset + limit]


def test_nan_and_missing_last_both_ways():
    rs = [run("a", metrics={"m": NAN}), run("b"), run("c", metrics={"m": 1.0}),
          run("d", metrics={"m": 2.0})]
    assert ids(sort_runs(rs, parse_order_by(["metrics.m"]))) == ["c", "d", "a", "b"]
    assert ids(sort_runs(rs, parse_order_by(["metrics.m DESC"]))) == ["d", "c", "a", "b"]


def test_default_order_and_missing_start_time():
    rs = [run("b", start_time=5), run("a", start_time=5), run("c", start_time=9),
          run("z", start_time=None)]
    assert ids(sort_runs(rs, parse_order_by(None))) == ["c", "a", "b", "z"]


def test_heap_path_equals_full_sort():
    rng = random.Random(7)
    rs = [run(f"{i:04d}", start_time=rng.randrange(50), params={"p": rng.choice("abcde")})
          for i in range(500)]
    spec = parse_order_by(["params.p DESC"])
    full = ids(sort_runs(rs, spec))
    assert ids(sort_runs(rs, spec, limit=10, offset=5)) == full[5:15]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(0, 2**32), _orders, st.integers(1, 12), st.integers(0, 4))
def test_first_clause_cut_equals_mlflows_order(seed, order_by, limit, offset):
    """A small page of many runs takes the cut (only runs whose first sort value can be on
    the page get the full key): ties at the cut, NaN, missing values and inf included."""
    rng = random.Random(seed)
    rs = [run(f"{i:03d}", start_time=rng.choice([1, 2, 3]),
              status=rng.choice(["FINISHED", "FAILED"]),
              metrics={} if rng.random() < 0.2 else {"m": rng.choice([NAN, INF, -INF, 0.0, 1.0,
                                                                      rng.random()])},
              params={} if rng.random() < 0.2 else {"p": rng.choice(["a", "b", "", "é"])},
              tags={} if rng.random() < 0.3 else {"q": rng.choice("xyz")})
          for i in range(rng.randrange(60, 200))]
    expected = ids(_mlflow_sort(rs, order_by))
    got = ids(sort_runs(rs, parse_order_by(order_by), limit=limit, offset=offset))
    assert got == expected[offset: offset + limit]


@pytest.mark.parametrize(
    "order_by,fragment",
    [
        (["metrics.a DESC NULLS LAST"], "unexpected"),
        (["metrics.a sideways"], "unexpected"),
        (["params.a, params.b"], "unexpected"),
        (["datasets.name"], "cannot be ordered by datasets"),
        (["attributes.lifecycle_stage"], "not a run attribute"),
        (["`Run name`"], "not a run attribute"),  # no such alias for order_by in MLflow
        ("metrics.a", "is a list of strings"),
        ([""], "expected a key"),
    ],
)
def test_order_errors(order_by, fragment):
    with pytest.raises(FilterError, match=fragment):
        parse_order_by(order_by)


# --- search() --------------------------------------------------------------------------


def test_search_views_paging_and_errors():
    rs = [run(f"r{i}", start_time=i, lifecycle_stage="deleted" if i % 3 == 0 else "active",
              metrics={"m": float(i)}) for i in range(10)]
    assert ids(search(rs)) == ["r8", "r7", "r5", "r4", "r2", "r1"]
    assert ids(search(rs, view="deleted")) == ids(search(rs, view=2)) == ["r9", "r6", "r3", "r0"]
    assert len(search(rs, view="ALL")) == 10 and len(search(rs, view="ACTIVE_ONLY")) == 6
    got = search(rs, "metrics.m > 1", ["metrics.m"], view="all", max_results=3, offset=2)
    assert ids(got) == ["r4", "r5", "r6"]
    with pytest.raises(FilterError, match="bad view"):
        search(rs, view="archived")


def test_speed_on_10k_runs(capsys):
    """Not asserted: prints the time to filter and sort 10,000 runs."""
    rng = random.Random(1)
    rs = [Run(f"{i:032x}", "1", start_time=rng.randrange(10**6),
              params={"model": rng.choice(["rf", "xgb", "svm"]), "lr": str(rng.random())},
              metrics={"rmse": (rng.random(), 0, 0)}, tags={"team": rng.choice("ab")})
          for i in range(10_000)]

    def best(fn, n=15):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times) * 1000

    pred = compile_filter("metrics.rmse < 0.7 and params.model = 'rf'")
    spec = parse_order_by(["metrics.rmse DESC"])
    lines = [
        f"filter 10k runs, 2 clauses: {best(lambda: pred.select(rs)):.2f} ms "
        f"({len(pred.select(rs))} hits)",
        f"sort 10k runs by metrics.rmse DESC: {best(lambda: sort_runs(rs, spec), 5):.2f} ms",
        f"top 50 of 10k runs: {best(lambda: sort_runs(rs, spec, limit=50), 5):.2f} ms",
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def test_imports_stay_light():
    """The daemon must never pull in mlflow, pandas or numpy through the query engine."""
    import subprocess
    import sys

    code = ("import sys, octostored.query; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('mlflow', 'pandas', 'numpy', 'sqlparse')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
