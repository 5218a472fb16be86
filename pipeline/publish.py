"""Commit what a retraining run produced (``dvc.lock`` and the reports git keeps) and push it to a
branch of the Git host, so later runs and other clones can find the outputs it pushed to the DVC
remote: ``dvc.lock`` names them, ``dvc pull`` at that commit fetches them.

    python -m pipeline.publish --branch retrain/1234     # then open a pull request from it
    python -m pipeline.publish --branch main             # where the repository pushes straight to main

Prints the commit it pushed, or ``nothing to publish`` (and pushes nothing) when the run changed
none of those files. Exit code 1 when git fails, with git's message.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from audiovae import layout

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ("dvc.lock", str(layout.REPORTS))  # git ignores the cached outputs under reports/ (DVC writes .gitignore)


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()


def publish(root: Path, branch: str, remote: str = "origin", message: str | None = None) -> str | None:
    """Commit the published files if they changed and push HEAD to ``remote``/``branch``; returns
    the commit, or None when there was nothing to publish."""
    _git(root, "add", "--all", "--", *PUBLISHED)
    if not _git(root, "diff", "--cached", "--name-only"):
        return None
    _git(root, "commit", "-q", "-m", message or "Retrain: dvc.lock and metrics of the new pipeline outputs")
    _git(root, "push", "-q", remote, f"HEAD:refs/heads/{branch}")
    return _git(root, "rev-parse", "HEAD")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.publish", description=__doc__.splitlines()[0])
    parser.add_argument("--branch", required=True, help="the branch to push to (a new one for a pull request, or main)")
    parser.add_argument("--remote", default="origin", help="the git remote (default: %(default)s)")
    parser.add_argument("--message", help="the commit message")
    args = parser.parse_args(argv)
    try:
        commit = publish(ROOT, args.branch, args.remote, args.message)
    except RuntimeError as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return 1
    print(f"pushed {commit} to {args.remote}/{args.branch}" if commit else "nothing to publish")
    return 0


if __name__ == "__main__":
    sys.exit(main())
