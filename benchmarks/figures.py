"""Figures in the README and docs/ come from the file that wrote them, never from a hand copy.

A block in a Markdown page::

    <!-- from benchmarks/reports/samplers.md -->
    ...
    <!-- end from -->

holds that report as its script wrote it, less its title line, its sections from h4 down. A block naming the pipeline's
metrics file and a table, ``<!-- from reports/metrics.json: quality -->``, holds that table rendered
from the file (``TABLES`` below). After a benchmark or a `make repro`, ``make figures`` (this script)
rewrites every block; ``--check`` (tests/test_figures.py, so CI) fails naming each stale block. GitHub
shows the README as it is, which is why the figures live in the page and not in an include.

    .venv/bin/python benchmarks/figures.py            # rewrite every block from its source
    .venv/bin/python benchmarks/figures.py --check    # exit 1 naming each block that differs
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/*.md"]
BLOCK = re.compile(r"^<!-- from (?P<source>[^:>]+?)(?:: (?P<table>[\w-]+))? -->\n(?P<body>.*?)^<!-- end from -->$",
                   re.MULTILINE | re.DOTALL)


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def quality(metrics: dict) -> str:
    """The FSDD default's quality table: each model row beside the real-audio and ceiling rows."""
    q, c = metrics["quality"], metrics["classifier"]
    rows = [("real test audio (model input form)", None, None, q.get("real_dnsmos_ovrl"), "real"),
            ("Griffin-Lim of the true magnitude (ceiling)", q.get("ceiling_pesq_nb"), q.get("ceiling_stoi"),
             q.get("ceiling_dnsmos_ovrl"), "ceiling"),
            ("outer autoencoder only", q.get("outer_pesq_nb"), q.get("outer_stoi"), q.get("outer_dnsmos_ovrl"), "outer"),
            ("**full model** (`reconstruct`)", q.get("full_pesq_nb"), q.get("full_stoi"), q.get("full_dnsmos_ovrl"), "full"),
            ("**`generate`** (the learned prior)", None, None, q.get("generated_dnsmos_ovrl"), "generated")]
    lines = ["| audio | PESQ-NB | STOI | DNSMOS overall | clean classifier (balanced [95 %]) |", "|---|---|---|---|---|"]
    for name, pesq, stoi, dnsmos, key in rows:
        acc = c.get(f"clean_{key}_accuracy")
        low, high = c.get(f"clean_{key}_balanced_accuracy_low"), c.get(f"clean_{key}_balanced_accuracy_high")
        judged = fmt(acc, 3) + (f" ({fmt(c.get(f'clean_{key}_balanced_accuracy'), 3)} [{fmt(low, 3)}, {fmt(high, 3)}])"
                                if low is not None else "")
        lines.append(f"| {name} | {fmt(pesq)} | {fmt(stoi, 3)} | {fmt(dnsmos)} | {judged} |")
    return "\n".join(lines)


def models(metrics: dict) -> str:
    """What the two models cost and hold: parameters, training seconds, the inner VAE's rate."""
    o, i = metrics["outer"], metrics["inner"]
    return "\n".join([
        "| model | parameters | training seconds | latent | KL nats per clip | active dimensions |",
        "|---|---|---|---|---|---|",
        f"| outer autoencoder | {o['params']:,} | {o['train_seconds']:.0f} | {o['compression']:.0f}× compression | – | – |",
        f"| inner VAE | {i['params']:,} | {i['train_seconds']:.0f} | {i['latent_channels']} channels, "
        f"{i['latent_dims']} numbers | {i['kl']:.0f} | {i['active_dims']} ({i['active_channels']} channels) |"])


def generation(metrics: dict) -> str:
    """How new and how good the evaluate stage's generations are, beside real test clips."""
    g, q = metrics["generation"], metrics["quality"]
    return "\n".join([
        "| generations | latent novelty | audio novelty | coverage | KID ± se | NDB/k | recognised (clean judge) | DNSMOS overall |",
        "|---|---|---|---|---|---|---|---|",
        f"| real test clips (the reference) | 1.00 | 1.00 | 1.00 | {g['kid_real_test_vs_train']:.1f} ± "
        f"{g['kid_real_test_vs_train_se']:.1f} (against training clips) | {g['ndb_k_real_test']:.2f} | "
        f"{metrics['classifier']['clean_real_accuracy']:.3f} | {fmt(q.get('real_dnsmos_ovrl'))} |",
        f"| the learned prior, temperature {g['spread']:.2f} | {g['latent_novelty']:.2f} | {g['audio_novelty']:.2f} | "
        f"{g['audio_coverage']:.3f} | {g['kid']:.1f} ± {g['kid_se']:.1f} | {g['ndb_k']:.2f} | "
        f"{metrics['classifier']['clean_generated_accuracy']:.3f} | {fmt(q.get('generated_dnsmos_ovrl'))} |"])


TABLES: dict[str, Callable[[dict], str]] = {"quality": quality, "models": models, "generation": generation}


def render(source: str, table: str | None, repo: Path = REPO) -> str:
    """A block's body from its source, ending in a newline."""
    path = repo / source
    if not path.is_file():
        raise SystemExit(f"figures: {source} is missing (a block names it)")
    if table is not None:
        if path.suffix != ".json" or table not in TABLES:
            raise SystemExit(f"figures: no table {table!r} for {source}; known: {', '.join(TABLES)}")
        return TABLES[table](json.loads(path.read_text())) + "\n"
    if path.suffix != ".md":
        raise SystemExit(f"figures: {source} is not a Markdown report; name a table of a .json source")
    lines = path.read_text().splitlines()
    if lines and lines[0].startswith("# "):  # the report's title: the page has its own headings
        lines = lines[1:]
    # the report's sections sit under the page's: its top level becomes h4, the rest keep their depth
    levels = [len(m.group(1)) for m in (re.match(r"(#{1,6}) ", line) for line in lines) if m]
    shift = "#" * (4 - min(levels)) if levels and min(levels) < 4 else ""
    lines = [shift + line if re.match(r"#{1,6} ", line) else line for line in lines]
    return "\n".join(lines).strip("\n") + "\n"


def refresh(text: str, repo: Path = REPO) -> tuple[str, list[str]]:
    """``text`` with every block rewritten from its source, and the sources whose block changed."""
    stale: list[str] = []

    def one(match: re.Match) -> str:
        source, table = match["source"], match["table"]
        body = render(source, table, repo)
        if body != match["body"]:
            stale.append(source + (f": {table}" if table else ""))
        head = f"<!-- from {source}{': ' + table if table else ''} -->"
        return f"{head}\n{body}<!-- end from -->"

    return BLOCK.sub(one, text), stale


def pages(repo: Path = REPO) -> list[Path]:
    return sorted(p for pattern in PAGES for p in repo.glob(pattern))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each stale block")
    args = parser.parse_args(argv)
    stale_pages = []
    for page in pages():
        text = page.read_text()
        new, stale = refresh(text)
        rel = page.relative_to(REPO).as_posix()
        if stale and args.check:
            stale_pages.append(f"{rel}: {', '.join(stale)}")
        elif stale:
            page.write_text(new)
            print(f"{rel}: rewrote {', '.join(stale)}")
    if stale_pages:
        print("figures differ from the files they come from (run `make figures`):\n  " + "\n  ".join(stale_pages),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
