"""What `rag eval` writes besides its table: the Markdown report, its chart, and `--compare`.

The report lists every failed question with its category (see
`rag.eval.scoring.categorize`), the counts per category, and embeds one PNG bar
chart of the run's rate metrics, saved next to the report (`<report>.png`). When the
answers carry a confidence, a second chart, the risk–coverage curve (`rag.eval.coverage`),
is saved beside it (`<report>-risk-coverage.png`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.eval.coverage import risk_coverage
from rag.eval.runner import EvalResult
from rag.eval.scoring import CATEGORIES, abstention_table, by_kind
from rag.eval.sweeps import confidence_sweep, verification_sweep

# rates in [0, 1] worth a bar; counts and latencies are left to the table
CHART_PREFIXES = ("retrieval.", "answer.", "citation.", "abstention.", "faithfulness", "confidence.")
CHART_SKIP = ("questions", "per_answer", "dropped", "answers")
LOWER_IS_BETTER = frozenset({"citation.unsupported_rate", "abstention.answerable_abstained", "confidence.auc_rc",
                             "confidence.brier"})


def chart_metrics(result: EvalResult) -> dict[str, float]:
    return {k: float(v) for k, v in result.metrics.items()
            if k.startswith(CHART_PREFIXES) and not k.endswith(CHART_SKIP) and isinstance(v, (int, float))}


def write_chart(result: EvalResult, path: Path) -> Path:
    """A horizontal bar chart of the rate metrics (matplotlib, no display needed)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        from rag.core.errors import ModelNotInstalledError

        raise ModelNotInstalledError("matplotlib (for the report chart)", "pip install 'rag[eval]'") from exc
    values = chart_metrics(result)
    names = list(values)[::-1]
    fig = Figure(figsize=(7, 0.32 * len(names) + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = ["#c0504d" if n in LOWER_IS_BETTER else "#4f81bd" for n in names]
    bars = ax.barh(names, [values[n] for n in names], color=colours)
    ax.bar_label(bars, fmt="%.3f", padding=3, fontsize=8)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("score (red: lower is better)")
    ax.set_title(f"{result.dataset}: {result.config.get('mode', '')} k={result.config.get('k', '')}, "
                 f"{result.config.get('questions', '?')} questions", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def has_confidence(result: EvalResult) -> bool:
    return any(r.get("confidence") is not None for r in result.per_question)


def write_risk_coverage_chart(results: list[EvalResult], path: Path) -> Path:
    """The risk–coverage curves of one or more runs on one chart: precision of the answered questions against
    the share answered, most confident first (`rag.eval.coverage.risk_coverage`), one line a run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for result in results:
        points = risk_coverage(result.per_question)
        xs, ys = [0.0] + [p["coverage"] for p in points], [points[0]["precision"] if points else 0.0] + \
            [p["precision"] for p in points]
        auc = result.metrics.get("confidence.auc_rc")
        split = result.config.get("split")
        label = f"{result.dataset}{' ' + split if split else ''}" + (f" (AURC {auc:.3f})" if auc is not None else "")
        ax.step(xs, ys, where="post", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("coverage (share of all questions answered)")
    ax.set_ylabel("precision of the answered (strict)")
    ax.set_title("Answering only the most confident", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_report(result: EvalResult, path: Path) -> tuple[Path, Path]:
    """Write the Markdown report and its chart (same name, `.png`; with confidences also
    `<name>-risk-coverage.png`); returns the report's and the bar chart's paths."""
    path = Path(path)
    chart = write_chart(result, path.with_suffix(".png"))
    curve = None
    if has_confidence(result):
        curve = write_risk_coverage_chart([result], path.with_name(path.stem + "-risk-coverage.png"))
    path.write_text(render_report(result, chart.name, curve.name if curve else None), encoding="utf-8")
    return path, chart


def render_report(result: EvalResult, chart_name: str | None = None, curve_name: str | None = None) -> str:
    cfg = result.config
    lines = [f"# Evaluation: {result.dataset}", "",
             "Configuration: " + ", ".join(f"`{k}={v}`" for k, v in cfg.items() if v is not None), ""]
    if chart_name:
        lines += [f"![metrics]({chart_name})", ""]
    lines += ["## Metrics", "", "| metric | value |", "|---|---:|"]
    lines += [f"| `{k}` | {_cell(v)} |" for k, v in result.metrics.items()]
    kinds = by_kind(result.per_question)
    if kinds:
        cols = list(next(iter(kinds.values())))
        lines += ["", "## By kind", "",
                  "The questions of each `kind` apart (table cells, steps, definitions, answers under a heading, facts); "
                  "`recall@5` / `page_recall@5`: a gold document / a passage on a gold page in the top 5; rates over "
                  "the kind's answerable questions, `unanswerable_abstained` over its unanswerable ones; - = none.", "",
                  "| kind | " + " | ".join(f"`{c}`" for c in cols) + " |", "|---|" + "---:|" * len(cols)]
        lines += [f"| {name} | " + " | ".join("-" if v.get(c) is None else _cell(v[c]) for c in cols) + " |"
                  for name, v in kinds.items()]
    counts = result.failure_counts()
    failed = [r for r in result.per_question if r.get("category")]
    lines += ["", "## Failures by category", "", "| category | questions |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    lines += [f"| **total** | {len(failed)} of {len(result.per_question)} |", ""]
    steps = abstention_table(result.per_question)
    if steps:
        lines += ["## Abstentions by step", "",
                  "Which step of the answer path abstained (`Answer.abstain_step`): *relevance* = no passage relevant "
                  "enough, the model was not asked; *model* = the model said it does not know; "
                  "*answer_not_in_passages* = the short answer does not occur in the passages; *question_coverage* = "
                  "the cited passages lack the question's words; *verification* = the check after generation said "
                  "the cited sentence does not state the asked fact.", "",
                  "| step | answerable (wrong) | unanswerable (right) |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['answerable']} | {v['unanswerable']} |" for k, v in steps.items()]
        lines.append("")
    m = result.metrics
    if "citation.raw_precision" in m:
        lines += ["## Before and after repair", "",
                  "*raw* = the model's own reply (its `[n]` markers, its sentences); *shown* = what the user sees, "
                  "after unsupported sentences are dropped, dangling markers removed and uncited sentences cited. "
                  "Faithfulness by the repair's own support check is 1 on the shown text by construction; the "
                  "headline `faithfulness` is the raw reply judged by an independent measure (content words of "
                  "the cited passage's best sentence, negation agreeing).", "",
                  "| metric | raw | shown |", "|---|---:|---:|",
                  f"| citation precision (passage) | {_cell(m['citation.raw_precision'])} | {_cell(m['citation.precision'])} |",
                  f"| citation recall (passage) | {_cell(m['citation.raw_recall'])} | {_cell(m['citation.recall'])} |",
                  f"| faithfulness (independent measure) | {_cell(m.get('faithfulness', 0.0))} | – |",
                  f"| faithfulness (the repair's check) | {_cell(m.get('faithfulness_repair_check', 0.0))} | "
                  f"{_cell(m.get('faithfulness_shown', 0.0))} |", ""]
    if has_confidence(result):
        lines += ["## Risk and coverage", "",
                  "Answering only the questions whose `confidence` is at least a threshold: the share of all "
                  "questions answered (coverage) and the share of those answers that are right (precision; "
                  "strict accuracy, an answered unanswerable question is wrong), most confident first.", ""]
        if curve_name:
            lines += [f"![risk-coverage]({curve_name})", ""]
        lines += ["| confidence ≥ | coverage | precision |", "|---:|---:|---:|"]
        lines += [f"| {'-' if p['confidence'] is None else format(p['confidence'], '.3f')} | {p['coverage']:.4f} | "
                  f"{p['precision']:.4f} |" for p in _thin(risk_coverage(result.per_question))]
        lines.append("")
    if any(r.get("verify_p_yes") is not None for r in result.per_question):
        lines += ["## Verification threshold", ""]
        lines += _sweep_table("The same run recomputed at each threshold (0 = no verification): answers verification "
                              "withheld are put back, then answers whose P(yes) is under the threshold abstain. Valid "
                              "up to the run's own threshold.", "threshold", verification_sweep(result.per_question))
    if any(r.get("confidence") is not None for r in result.per_question):
        lines += ["## Confidence threshold", ""]
        lines += _sweep_table("The same run recomputed at each `answer.min_confidence` (0 = never): answers the "
                              "confidence withheld are put back, then every answer whose confidence is under the "
                              "threshold abstains.", "min_confidence", confidence_sweep(result.per_question))
    if cfg.get("retrieval_only"):
        lines += [f"*retrieval miss* = no gold document in the top {cfg.get('k')} passages.", ""]
    else:
        lines += ["Categories: *retrieval miss* = answer wrong (strict: not an exact match and token F1 under 0.8) "
                  "and no gold document among the passages; *model error* = answer wrong although a gold document "
                  "was retrieved; *citation error* = answer right but no citation points at a gold document's "
                  "passage holding the gold answer or its span (its gold page, where the set gives pages); "
                  "*wrong abstention* = abstained on an answerable question; *missed abstention* = answered an "
                  "unanswerable one.", ""]
    for category in CATEGORIES:
        rows = [r for r in failed if r["category"] == category]
        if rows:
            lines += [f"## {category} ({len(rows)})", ""]
            for row in rows:
                lines += _failure(row)
    return "\n".join(lines).rstrip() + "\n"


def _thin(points: list[dict], rows: int = 12) -> list[dict]:
    """At most about `rows` points of a curve, evenly spread, the last one always kept."""
    if len(points) <= rows:
        return points
    step = len(points) / rows
    picked = [points[int(i * step)] for i in range(rows)]
    return picked + ([points[-1]] if picked[-1] is not points[-1] else [])


def _sweep_table(intro: str, name: str, sweep: list[dict]) -> list[str]:
    """A threshold sweep (rag.eval.sweeps: `verification_sweep`, `confidence_sweep`) as Markdown."""
    keys = [k for k in sweep[0] if k != "threshold"]
    return [intro, "", f"| {name} | " + " | ".join(f"`{k}`" for k in keys) + " |", "|---:|" + "---:|" * len(keys),
            *(f"| {row['threshold']:.2f} | " + " | ".join(_cell(row[k]) for k in keys) + " |" for row in sweep), ""]


def _failure(row: dict) -> list[str]:
    out = [f"### {row['qid']}: {_inline(row['question'])}", ""]
    if row.get("history"):
        out.append(f"- after: {' / '.join(_inline(h) for h in row['history'])}")
    if row.get("standalone_question") and row["standalone_question"] != row["question"]:
        out.append(f"- rewritten: {_inline(row['standalone_question'])}")
    gold = row.get("gold") or []
    out.append(f"- gold: {' | '.join(_inline(g) for g in gold) if gold else '(unanswerable)'}"
               f" in {', '.join(row.get('gold_docs') or []) or '-'}")
    if "answer" in row:
        short = row.get("short_answer")
        step = f" (abstained at {row.get('abstain_step') or '?'}: {row.get('abstain_reason') or '-'})" \
            if row.get("abstained") else ""
        out.append(f"- answer{step}: {_inline(row['answer'])}")
        if row.get("raw_reply") and row.get("abstained"):
            out.append(f"- model's reply: {_inline(row['raw_reply'])}")
        if short and short != row["answer"]:
            out.append(f"- short answer: {_inline(short)}")
        out.append(f"- passages: {', '.join(row.get('passages') or []) or '-'} (gold rank {row.get('hit_rank') or '-'})")
        for c in row.get("citations", []):
            flags = ("correct" if c["correct"] else "not gold") + ("" if c["supported"] else ", unsupported")
            out.append(f"  - [{c['n']}] {c['source']} ({flags}, support {c['support']:.2f}): {_inline(c['quote'], 220)}")
    else:
        out.append(f"- retrieved: {', '.join(row.get('retrieved') or [])} (gold rank {row.get('hit_rank') or '-'})")
    return out + [""]


def _inline(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# --- compare ---------------------------------------------------------------------------------
def load_result(path: Path) -> EvalResult:
    from rag.core.errors import ConfigError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: write it with `rag eval ... --out {path}`") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not a `rag eval --out` JSON file ({exc.msg})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ConfigError(f"{path} has no 'metrics' object: is it a `rag eval --out` file?")
    return EvalResult.from_json(data)


def compare(a: EvalResult, b: EvalResult, names: tuple[str, str] = ("A", "B")) -> str:
    """A text table of every metric in either run: A, B and B - A."""
    keys = list(dict.fromkeys([*a.metrics, *b.metrics]))
    width = max((len(k) for k in keys), default=10)
    lines = [f"A = {names[0]} ({a.dataset}, {a.config.get('questions', '?')} questions)",
             f"B = {names[1]} ({b.dataset}, {b.config.get('questions', '?')} questions)",
             f"{'metric':<{width}}  {'A':>10}  {'B':>10}  {'B - A':>10}"]
    for key in keys:
        va, vb = a.metrics.get(key), b.metrics.get(key)
        delta = ""
        if _num(va) and _num(vb):
            delta = f"{vb - va:+d}" if isinstance(va, int) and isinstance(vb, int) else f"{vb - va:+.4f}"
        lines.append(f"{key:<{width}}  {_col(va):>10}  {_col(vb):>10}  {delta:>10}")
    return "\n".join(lines)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _col(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)
